package nodegateway

import (
	"bytes"
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	workerpb "go.temporal.io/api/worker/v1"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func testPolicy() policy {
	return policy{namespace: "default", tokens: taskTokens{key: bytes.Repeat([]byte{3}, 32)}}
}

func normalQueue(name string) *taskqueuepb.TaskQueue {
	return &taskqueuepb.TaskQueue{Name: name, Kind: enumspb.TASK_QUEUE_KIND_NORMAL}
}

// What an activity worker of node a's own queue sends is let through; the rest is refused,
// saying why.
func TestPolicyAdmitsOnlyTheNodesOwnActivityWork(t *testing.T) {
	p := testPolicy()
	own := p.tokens.wrap("a", []byte("token of a"))
	others := p.tokens.wrap("b", []byte("token of b"))
	cases := []struct {
		name   string
		req    any
		refuse string // "" when admitted, else a part of the reason
	}{
		{"system info", &workflowservice.GetSystemInfoRequest{}, ""},
		{"describe own namespace", &workflowservice.DescribeNamespaceRequest{Namespace: "default"}, ""},
		{"describe another namespace", &workflowservice.DescribeNamespaceRequest{Namespace: "other"}, "namespace"},
		{"describe by id", &workflowservice.DescribeNamespaceRequest{Id: "0d3f"}, "by name only"},
		{"poll own queue", &workflowservice.PollActivityTaskQueueRequest{Namespace: "default", TaskQueue: normalQueue("node-a")}, ""},
		{"poll own queue, kind unset", &workflowservice.PollActivityTaskQueueRequest{Namespace: "default", TaskQueue: &taskqueuepb.TaskQueue{Name: "node-a"}}, ""},
		{"poll another node's queue", &workflowservice.PollActivityTaskQueueRequest{Namespace: "default", TaskQueue: normalQueue("node-b")}, "node-b"},
		{"poll control", &workflowservice.PollActivityTaskQueueRequest{Namespace: "default", TaskQueue: normalQueue("control")}, "control"},
		{"poll a partition of its own queue", &workflowservice.PollActivityTaskQueueRequest{Namespace: "default", TaskQueue: normalQueue("/_sys/node-a/1")}, "/_sys/node-a/1"},
		{"poll own queue as sticky", &workflowservice.PollActivityTaskQueueRequest{Namespace: "default",
			TaskQueue: &taskqueuepb.TaskQueue{Name: "node-a", Kind: enumspb.TASK_QUEUE_KIND_STICKY}}, "Sticky"},
		{"poll in another namespace", &workflowservice.PollActivityTaskQueueRequest{Namespace: "other", TaskQueue: normalQueue("node-a")}, "namespace"},
		{"poll workflow tasks", &workflowservice.PollWorkflowTaskQueueRequest{Namespace: "default", TaskQueue: normalQueue("node-a")}, "not a call"},
		{"complete own task", &workflowservice.RespondActivityTaskCompletedRequest{Namespace: "default", TaskToken: own}, ""},
		{"fail own task", &workflowservice.RespondActivityTaskFailedRequest{Namespace: "default", TaskToken: own}, ""},
		{"cancel own task", &workflowservice.RespondActivityTaskCanceledRequest{Namespace: "default", TaskToken: own}, ""},
		{"heartbeat own task", &workflowservice.RecordActivityTaskHeartbeatRequest{Namespace: "default", TaskToken: own}, ""},
		{"complete another node's task", &workflowservice.RespondActivityTaskCompletedRequest{Namespace: "default", TaskToken: others}, "not handed to this node"},
		{"heartbeat another node's task", &workflowservice.RecordActivityTaskHeartbeatRequest{Namespace: "default", TaskToken: others}, "not handed to this node"},
		{"complete with Temporal's own token", &workflowservice.RespondActivityTaskCompletedRequest{Namespace: "default", TaskToken: []byte("raw")}, "not handed"},
		{"complete own task in another namespace", &workflowservice.RespondActivityTaskCompletedRequest{Namespace: "other", TaskToken: own}, "namespace"},
		{"complete by id", &workflowservice.RespondActivityTaskCompletedByIdRequest{Namespace: "default", WorkflowId: "w", ActivityId: "1"}, "not a call"},
		{"fail by id", &workflowservice.RespondActivityTaskFailedByIdRequest{Namespace: "default"}, "not a call"},
		{"heartbeat by id", &workflowservice.RecordActivityTaskHeartbeatByIdRequest{Namespace: "default"}, "not a call"},
		{"shut down own worker", &workflowservice.ShutdownWorkerRequest{Namespace: "default", TaskQueue: "node-a",
			WorkerHeartbeat: &workerpb.WorkerHeartbeat{TaskQueue: "node-a"}}, ""},
		{"shut down a sticky queue", &workflowservice.ShutdownWorkerRequest{Namespace: "default", StickyTaskQueue: "host:1234"}, "sticky"},
		{"shut down another node's worker", &workflowservice.ShutdownWorkerRequest{Namespace: "default", TaskQueue: "node-b"}, "node-b"},
		{"a heartbeat of another node's worker", &workflowservice.ShutdownWorkerRequest{Namespace: "default",
			WorkerHeartbeat: &workerpb.WorkerHeartbeat{TaskQueue: "node-b"}}, "node-b"},
		{"start a workflow", &workflowservice.StartWorkflowExecutionRequest{Namespace: "default"}, "not a call"},
		{"terminate a workflow", &workflowservice.TerminateWorkflowExecutionRequest{Namespace: "default"}, "not a call"},
		{"read a history", &workflowservice.GetWorkflowExecutionHistoryRequest{Namespace: "default"}, "not a call"},
		{"list workflows", &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default"}, "not a call"},
		{"delete a schedule", &workflowservice.DeleteScheduleRequest{Namespace: "default"}, "not a call"},
		{"worker heartbeats", &workflowservice.RecordWorkerHeartbeatRequest{Namespace: "default"}, "not a call"},
		{"signal a workflow", &workflowservice.SignalWorkflowExecutionRequest{Namespace: "default"}, "not a call"},
	}
	for _, c := range cases {
		why := p.admit("a", c.req)
		switch {
		case c.refuse == "" && why != "":
			t.Errorf("%s: refused (%s), want admitted", c.name, why)
		case c.refuse != "" && !strings.Contains(why, c.refuse):
			t.Errorf("%s: %q, want a refusal naming %q", c.name, why, c.refuse)
		}
	}
}

// What reaches the frontend: Temporal's token, the node's identity, no worker-command queue and
// no field this build does not know.
func TestPolicyRewritesWhatTheFrontendSees(t *testing.T) {
	p := testPolicy()
	respond := &workflowservice.RespondActivityTaskCompletedRequest{Namespace: "default",
		TaskToken: p.tokens.wrap("a", []byte("temporal token")), Identity: "skypanel-agent/b@host"}
	if why := p.admit("a", respond); why != "" {
		t.Fatal(why)
	}
	if string(respond.TaskToken) != "temporal token" || respond.Identity != "skypanel-agent/a" {
		t.Errorf("forwarded respond: token %q identity %q", respond.TaskToken, respond.Identity)
	}

	poll := &workflowservice.PollActivityTaskQueueRequest{Namespace: "default", TaskQueue: normalQueue("node-a"),
		Identity: "skypanel-agent/a@host-1", WorkerControlTaskQueue: "temporal-sys/worker-commands/default/x"}
	// Field 999: unknown to this build.
	poll.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 999, protowire.VarintType), 1))
	poll.TaskQueue.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 998, protowire.VarintType), 1))
	if why := p.admit("a", poll); why != "" {
		t.Fatal(why)
	}
	if poll.Identity != "skypanel-agent/a@host-1" || poll.WorkerControlTaskQueue != "" {
		t.Errorf("forwarded poll: identity %q control queue %q", poll.Identity, poll.WorkerControlTaskQueue)
	}
	if len(poll.ProtoReflect().GetUnknown()) > 0 || len(poll.TaskQueue.ProtoReflect().GetUnknown()) > 0 {
		t.Errorf("unknown fields forwarded: %v", poll)
	}
	raw, err := proto.Marshal(poll)
	if err != nil || bytes.Contains(raw, protowire.AppendTag(nil, 999, protowire.VarintType)) {
		t.Errorf("the forwarded poll still carries field 999: %x %v", raw, err)
	}
}
