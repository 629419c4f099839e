package nodegateway

import (
	"fmt"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	sptemporal "github.com/skypanel/skypanel/temporal"
)

// policy is what a node may ask of Temporal: exactly what an activity worker on its own queue
// needs, and nothing else. admit checks a call and rewrites what the frontend will see (task
// tokens unwrapped, the identity pinned to the node); it returns why it refuses, or "".
//
// Allowed, and why:
//   - GetSystemInfo: the SDK's first call (server capabilities); it names no namespace or data.
//   - DescribeNamespace of the gateway's namespace, by name: the worker reads its limits and
//     capabilities at start.
//   - PollActivityTaskQueue of node-<own id> in the gateway's namespace: the node's work.
//   - RespondActivityTaskCompleted, RespondActivityTaskFailed, RespondActivityTaskCanceled and
//     RecordActivityTaskHeartbeat with a task token this gateway handed to this node.
//   - ShutdownWorker for node-<own id>, without a sticky queue: the SDK says so when the worker
//     stops, and a server that supports it ends the worker's open polls at once.
//
// Everything else is refused, the *ById responds among them (they name any workflow's
// activity by id). The agent runs no workflow worker (DisableWorkflowWorker) and sends no
// worker heartbeats (WorkerHeartbeatInterval < 0), so the SDK makes no other call.
type policy struct {
	namespace string
	tokens    taskTokens
}

func (p policy) admit(nodeID string, req any) string {
	queue := sptemporal.NodeTaskQueue(nodeID)
	if m, ok := req.(proto.Message); ok {
		// Fields this build does not know are dropped, not forwarded: a newer frontend might
		// give them a meaning no check here applies.
		dropUnknownFields(m.ProtoReflect())
	}
	switch r := req.(type) {
	case *workflowservice.GetSystemInfoRequest:
		return ""
	case *workflowservice.DescribeNamespaceRequest:
		if r.GetId() != "" {
			return "namespaces are described by name only"
		}
		return p.checkNamespace(r.GetNamespace())
	case *workflowservice.PollActivityTaskQueueRequest:
		if why := p.checkNamespace(r.GetNamespace()); why != "" {
			return why
		}
		tq := r.GetTaskQueue()
		if tq.GetName() != queue {
			return fmt.Sprintf("poll of task queue %q: a node polls only its own, %s", tq.GetName(), queue)
		}
		if kind := tq.GetKind(); kind != enumspb.TASK_QUEUE_KIND_NORMAL && kind != enumspb.TASK_QUEUE_KIND_UNSPECIFIED {
			return fmt.Sprintf("poll of a %s task queue", kind)
		}
		// Where the server would send this worker's commands: nodes take none.
		r.WorkerControlTaskQueue = ""
		r.Identity = pinnedIdentity(nodeID, r.GetIdentity())
		return ""
	case *workflowservice.RespondActivityTaskCompletedRequest:
		return p.admitTaskToken(nodeID, r.GetNamespace(), &r.TaskToken, &r.Identity)
	case *workflowservice.RespondActivityTaskFailedRequest:
		return p.admitTaskToken(nodeID, r.GetNamespace(), &r.TaskToken, &r.Identity)
	case *workflowservice.RespondActivityTaskCanceledRequest:
		return p.admitTaskToken(nodeID, r.GetNamespace(), &r.TaskToken, &r.Identity)
	case *workflowservice.RecordActivityTaskHeartbeatRequest:
		return p.admitTaskToken(nodeID, r.GetNamespace(), &r.TaskToken, &r.Identity)
	case *workflowservice.ShutdownWorkerRequest:
		if why := p.checkNamespace(r.GetNamespace()); why != "" {
			return why
		}
		if r.GetStickyTaskQueue() != "" {
			return "a node has no sticky task queue"
		}
		if tq := r.GetTaskQueue(); tq != "" && tq != queue {
			return fmt.Sprintf("shutdown of a worker of task queue %q, not %s", tq, queue)
		}
		if hb := r.GetWorkerHeartbeat(); hb != nil && hb.GetTaskQueue() != queue {
			return fmt.Sprintf("a worker heartbeat of task queue %q, not %s", hb.GetTaskQueue(), queue)
		}
		r.Identity = pinnedIdentity(nodeID, r.GetIdentity())
		return ""
	}
	return "not a call an activity worker of the node's own queue makes"
}

func (p policy) checkNamespace(ns string) string {
	if ns != p.namespace {
		return fmt.Sprintf("namespace %q: nodes work in %q only", ns, p.namespace)
	}
	return ""
}

// admitTaskToken unwraps the token of a respond or heartbeat in place.
func (p policy) admitTaskToken(nodeID, namespace string, token *[]byte, identity *string) string {
	if why := p.checkNamespace(namespace); why != "" {
		return why
	}
	original, err := p.tokens.unwrap(nodeID, *token)
	if err != nil {
		return err.Error()
	}
	*token = original
	*identity = pinnedIdentity(nodeID, *identity)
	return ""
}

// pinnedIdentity is the worker identity histories show for a node's work: what the agent said
// (skypanel-agent/<node id>@<host>) when it names the caller, else the caller's node id, so a
// node cannot pass its work off as another's.
func pinnedIdentity(nodeID, claimed string) string {
	prefix := "skypanel-agent/" + nodeID + "@"
	if strings.HasPrefix(claimed, prefix) && len(claimed) <= 200 {
		return claimed
	}
	return "skypanel-agent/" + nodeID
}

// dropUnknownFields clears the fields m's schema does not declare, in m and every message it
// holds.
func dropUnknownFields(m protoreflect.Message) {
	if len(m.GetUnknown()) > 0 {
		m.SetUnknown(nil)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			list := v.List()
			for i := range list.Len() {
				dropUnknownFields(list.Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				dropUnknownFields(mv.Message())
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			dropUnknownFields(v.Message())
		}
		return true
	})
}
