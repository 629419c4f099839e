package nodegateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/skypanel/skypanel/cmd/skypanel/devharness/devserver"
	"github.com/skypanel/skypanel/db"
	sptemporal "github.com/skypanel/skypanel/temporal"
)

// The gateway against a real Temporal dev server, with a test CA and the store's answers in
// memory (db's own tests cover the queries): a real SDK activity worker of node A completes
// its work through it, everything else node A asks is refused, only A's certificates connect,
// and revoking a node cuts it off at once and fails its work with a "node revoked" reason.
func TestGateway(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bed := startTestbed(ctx, t)
	a := bed.addNode(t, "node-a")
	b := bed.addNode(t, "node-b")

	t.Run("node A's own work goes through", func(t *testing.T) {
		w := bed.nodeWorker(t, a)
		out, err := bed.runStep(ctx, a.queue(), "flaky")
		if err != nil || out != "done on attempt 2" {
			t.Fatalf("a step on node A (failed once, heartbeating): %q %v", out, err)
		}
		w.Stop()
		// The SDK's start, polls, heartbeats, responds and stop: none of it was refused.
		if refused := bed.logs.matching("refused", "node_id="+a.id); len(refused) > 0 {
			t.Errorf("calls of node A's own worker were refused:\n%s", strings.Join(refused, "\n"))
		}
	})

	t.Run("anything else node A asks is refused", func(t *testing.T) {
		conn := bed.dial(t, &a.cert)
		svc := workflowservice.NewWorkflowServiceClient(conn)
		ns := bed.ts.Namespace()
		// A real task of node B, with the token the gateway handed B.
		run, err := bed.direct.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: sptemporal.ControlTaskQueue}, nodeStepWorkflow, nodeStepInput{Queue: b.queue(), Mode: "x"})
		if err != nil {
			t.Fatal(err)
		}
		bsvc := workflowservice.NewWorkflowServiceClient(bed.dial(t, &b.cert))
		task, err := bsvc.PollActivityTaskQueue(ctx, &workflowservice.PollActivityTaskQueueRequest{Namespace: ns, TaskQueue: normalQueue(b.queue()), Identity: "b"})
		if err != nil || len(task.GetTaskToken()) == 0 {
			t.Fatalf("node B's poll: %v %v", task, err)
		}
		result, _ := converter.GetDefaultDataConverter().ToPayloads("from B")

		calls := map[string]func() error{
			"PollActivityTaskQueue node-B": func() error {
				_, err := svc.PollActivityTaskQueue(ctx, &workflowservice.PollActivityTaskQueueRequest{Namespace: ns, TaskQueue: normalQueue(b.queue())})
				return err
			},
			"PollActivityTaskQueue control": func() error {
				_, err := svc.PollActivityTaskQueue(ctx, &workflowservice.PollActivityTaskQueueRequest{Namespace: ns, TaskQueue: normalQueue(sptemporal.ControlTaskQueue)})
				return err
			},
			"PollWorkflowTaskQueue control": func() error {
				_, err := svc.PollWorkflowTaskQueue(ctx, &workflowservice.PollWorkflowTaskQueueRequest{Namespace: ns, TaskQueue: normalQueue(sptemporal.ControlTaskQueue)})
				return err
			},
			"StartWorkflowExecution": func() error {
				_, err := svc.StartWorkflowExecution(ctx, &workflowservice.StartWorkflowExecutionRequest{Namespace: ns, WorkflowId: "evil", RequestId: uuid.NewString(),
					WorkflowType: &commonWorkflowType, TaskQueue: normalQueue(sptemporal.ControlTaskQueue)})
				return err
			},
			"TerminateWorkflowExecution": func() error {
				_, err := svc.TerminateWorkflowExecution(ctx, &workflowservice.TerminateWorkflowExecutionRequest{Namespace: ns, WorkflowExecution: execution(run.GetID())})
				return err
			},
			"GetWorkflowExecutionHistory": func() error {
				_, err := svc.GetWorkflowExecutionHistory(ctx, &workflowservice.GetWorkflowExecutionHistoryRequest{Namespace: ns, Execution: execution(run.GetID())})
				return err
			},
			"ListWorkflowExecutions": func() error {
				_, err := svc.ListWorkflowExecutions(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: ns})
				return err
			},
			"DeleteSchedule": func() error {
				_, err := svc.DeleteSchedule(ctx, &workflowservice.DeleteScheduleRequest{Namespace: ns, ScheduleId: "skypanel-billing"})
				return err
			},
			"RespondActivityTaskCompleted with node B's token": func() error {
				_, err := svc.RespondActivityTaskCompleted(ctx, &workflowservice.RespondActivityTaskCompletedRequest{Namespace: ns, TaskToken: task.GetTaskToken(), Result: result})
				return err
			},
			"RecordActivityTaskHeartbeat with node B's token": func() error {
				_, err := svc.RecordActivityTaskHeartbeat(ctx, &workflowservice.RecordActivityTaskHeartbeatRequest{Namespace: ns, TaskToken: task.GetTaskToken()})
				return err
			},
			"RespondActivityTaskFailed with a forged token": func() error {
				_, err := svc.RespondActivityTaskFailed(ctx, &workflowservice.RespondActivityTaskFailedRequest{Namespace: ns, TaskToken: []byte("forged")})
				return err
			},
			"RespondActivityTaskCompletedById": func() error {
				_, err := svc.RespondActivityTaskCompletedById(ctx, &workflowservice.RespondActivityTaskCompletedByIdRequest{Namespace: ns,
					WorkflowId: run.GetID(), ActivityId: "5", Result: result})
				return err
			},
			"DescribeNamespace of another namespace": func() error {
				_, err := svc.DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: "temporal-system"})
				return err
			},
			"OperatorService.ListSearchAttributes": func() error {
				_, err := operatorservice.NewOperatorServiceClient(conn).ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
				return err
			},
		}
		for name, call := range calls {
			if err := call(); status.Code(err) != codes.PermissionDenied {
				t.Errorf("%s with node A's certificate: %v, want PermissionDenied", name, err)
			}
		}
		if got := bed.logs.matching("refused", "node_id="+a.id, "method=StartWorkflowExecution"); len(got) != 1 {
			t.Errorf("the refused start is logged %d times with node_id and method, want once: %v", len(got), bed.logs.all())
		}
		// The token was B's all along: B completes the task with it.
		if _, err := bsvc.RespondActivityTaskCompleted(ctx, &workflowservice.RespondActivityTaskCompletedRequest{Namespace: ns, TaskToken: task.GetTaskToken(), Result: result}); err != nil {
			t.Fatalf("node B completes its own task: %v", err)
		}
		var out string
		if err := run.Get(ctx, &out); err != nil || out != "from B" {
			t.Errorf("node B's workflow: %q %v", out, err)
		}
	})

	t.Run("only the CA's current, unexpired node certificates connect", func(t *testing.T) {
		otherCA, _ := GenerateAuthority(time.Now())
		foreign, _ := bed.certificate(t, otherCA, a.id, time.Now(), time.Hour)
		expired, expiredSerial := bed.certificate(t, bed.ca, a.id, time.Now().Add(-31*24*time.Hour), DefaultCertificateLifetime)
		bed.store.issue(a.id, expiredSerial, time.Time{})
		unrecorded, _ := bed.certificate(t, bed.ca, a.id, time.Now(), time.Hour)
		for name, cert := range map[string]*tls.Certificate{"no certificate": nil, "another CA's": &foreign, "an expired one": &expired} {
			_, err := workflowservice.NewWorkflowServiceClient(bed.dial(t, cert)).GetSystemInfo(ctx, &workflowservice.GetSystemInfoRequest{})
			if status.Code(err) != codes.Unavailable {
				t.Errorf("%s: %v, want the connection refused (Unavailable)", name, err)
			}
		}
		// The server logs a refused handshake after the client has heard of it.
		bed.logs.waitFor(t, 3, "refused a connection", "remote_addr=127.0.0.1:")
		plain, err := grpc.NewClient(bed.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer plain.Close()
		if _, err := workflowservice.NewWorkflowServiceClient(plain).GetSystemInfo(ctx, &workflowservice.GetSystemInfoRequest{}); status.Code(err) != codes.Unavailable {
			t.Errorf("without TLS: %v, want Unavailable", err)
		}
		_, err = workflowservice.NewWorkflowServiceClient(bed.dial(t, &unrecorded)).GetSystemInfo(ctx, &workflowservice.GetSystemInfoRequest{})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "not issued") {
			t.Errorf("a certificate the store never recorded: %v, want PermissionDenied", err)
		}

		// A connection outlives the certificate it was opened with: its calls do not.
		shortLived, shortSerial := bed.certificate(t, bed.ca, a.id, time.Now(), time.Hour)
		bed.store.issue(a.id, shortSerial, time.Time{})
		svc := workflowservice.NewWorkflowServiceClient(bed.dial(t, &shortLived))
		if _, err := svc.GetSystemInfo(ctx, &workflowservice.GetSystemInfoRequest{}); err != nil {
			t.Fatalf("a certificate valid for an hour: %v", err)
		}
		bed.clockAhead.Store(int64(2 * time.Hour))
		_, err = svc.GetSystemInfo(ctx, &workflowservice.GetSystemInfoRequest{})
		bed.clockAhead.Store(0)
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "expired") {
			t.Errorf("a call on a connection whose certificate expired since: %v, want Unauthenticated", err)
		}
		bed.store.issue(a.id, a.serial, time.Time{}) // a's own certificate is current again

		c := bed.addNode(t, "node-c")
		renewed, renewedSerial := bed.certificate(t, bed.ca, c.id, time.Now(), time.Hour)
		bed.store.issue(c.id, renewedSerial, time.Now().Add(-time.Hour)) // c.cert superseded an hour ago
		_, err = workflowservice.NewWorkflowServiceClient(bed.dial(t, &c.cert)).GetSystemInfo(ctx, &workflowservice.GetSystemInfoRequest{})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "superseded") {
			t.Errorf("a certificate superseded past the grace: %v, want PermissionDenied", err)
		}
		latest, latestSerial := bed.certificate(t, bed.ca, c.id, time.Now(), time.Hour)
		bed.store.issue(c.id, latestSerial, time.Now()) // renewed superseded just now
		for name, cert := range map[string]*tls.Certificate{"the current one": &latest, "the one it replaced just now": &renewed} {
			if _, err := workflowservice.NewWorkflowServiceClient(bed.dial(t, cert)).GetSystemInfo(ctx, &workflowservice.GetSystemInfoRequest{}); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	})

	t.Run("a revoke made elsewhere cuts an open poll within seconds", func(t *testing.T) {
		svc := workflowservice.NewWorkflowServiceClient(bed.dial(t, &b.cert))
		polled := bed.openPoll(ctx, svc, b)
		bed.waitForLiveCall(t, b.id)
		bed.store.revoke(b.id) // another API replica's revoke: only the store knows
		select {
		case err := <-polled:
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("the open poll of node B: %v, want PermissionDenied", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("node B's open poll was not cut within 10 s of its revocation elsewhere")
		}
		if _, err := svc.GetSystemInfo(ctx, &workflowservice.GetSystemInfoRequest{}); status.Code(err) != codes.PermissionDenied {
			t.Errorf("node B's next call: %v, want PermissionDenied", err)
		}
		// A node revoked elsewhere while it had no call here is refused at its first.
		d := bed.addNode(t, "node-d")
		bed.store.revoke(d.id)
		_, err := workflowservice.NewWorkflowServiceClient(bed.dial(t, &d.cert)).GetSystemInfo(ctx, &workflowservice.GetSystemInfoRequest{})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "revoked") {
			t.Errorf("the first call of a node revoked elsewhere: %v, want PermissionDenied", err)
		}
	})

	t.Run("revoking node A cuts it off and fails its work as revoked", func(t *testing.T) {
		w := bed.nodeWorker(t, a)
		defer w.Stop()
		held, err := bed.direct.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: sptemporal.ControlTaskQueue}, nodeStepWorkflow, nodeStepInput{Queue: a.queue(), Mode: "hold"})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-holding:
		case <-time.After(30 * time.Second):
			t.Fatal("node A's worker never started the held step")
		}
		svc := workflowservice.NewWorkflowServiceClient(bed.dial(t, &a.cert))
		polled := bed.openPoll(ctx, svc, a)
		bed.waitForLiveCall(t, a.id)

		revokedAt := time.Now()
		bed.store.revoke(a.id)
		bed.gw.Revoke(a.id, "node-a")
		select {
		case err := <-polled:
			if status.Code(err) != codes.PermissionDenied || time.Since(revokedAt) > 2*time.Second {
				t.Errorf("the open poll of node A, %s after the revoke: %v, want PermissionDenied at once", time.Since(revokedAt), err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("node A's open poll outlived its revocation by 10 s")
		}
		if _, err := svc.PollActivityTaskQueue(ctx, &workflowservice.PollActivityTaskQueueRequest{Namespace: bed.ts.Namespace(), TaskQueue: normalQueue(a.queue())}); status.Code(err) != codes.PermissionDenied {
			t.Errorf("node A's next poll: %v, want PermissionDenied", err)
		}
		// The step node A held fails at once, as revoked, and the workflow with it.
		expectRevoked(ctx, t, "the step node A held", held)
		if wait := time.Since(revokedAt); wait > 10*time.Second {
			t.Errorf("the held step failed %s after the revoke", wait)
		}
		// Work that reaches A's queue after the revoke fails the same way, without waiting out
		// its pickup timeout.
		later, err := bed.direct.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: sptemporal.ControlTaskQueue}, nodeStepWorkflow, nodeStepInput{Queue: a.queue(), Mode: "x"})
		if err != nil {
			t.Fatal(err)
		}
		expectRevoked(ctx, t, "a step queued for node A after the revoke", later)
	})
}

func expectRevoked(ctx context.Context, t *testing.T, what string, run client.WorkflowRun) {
	t.Helper()
	waitCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err := run.Get(waitCtx, nil)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != ErrTypeNodeRevoked || !appErr.NonRetryable() || !strings.Contains(appErr.Error(), "node revoked: an administrator revoked node node-a") {
		t.Errorf("%s: %v, want a non-retryable NodeRevoked failure naming node-a", what, err)
	}
}

// testbed is a Temporal dev server, a gateway in front of it and a control worker that runs
// the test's workflow, started directly on the frontend as the control plane does.
type testbed struct {
	ts     *devserver.Server
	direct client.Client
	ca     *Authority
	store  *fakeStandings
	gw     *Gateway
	addr   string
	logs   *recordedLogs
	// clockAhead moves the gateway's clock (not the TLS handshake's) forward.
	clockAhead atomic.Int64
}

type testNode struct {
	id     string
	cert   tls.Certificate
	serial string
}

func (n testNode) queue() string { return sptemporal.NodeTaskQueue(n.id) }

func startTestbed(ctx context.Context, t *testing.T) *testbed {
	t.Helper()
	ts, err := devserver.Start(ctx, devserver.Options{UIPort: -1, SearchAttributes: []string{}})
	if err != nil {
		t.Fatalf("start the Temporal dev server (make deps installs it): %v", err)
	}
	t.Cleanup(func() { ts.Stop(context.Background()) }) //nolint:errcheck
	quiet := sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	direct, err := client.Dial(client.Options{HostPort: ts.Address(), Namespace: ts.Namespace(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(direct.Close)
	control := worker.New(direct, sptemporal.ControlTaskQueue, worker.Options{})
	control.RegisterWorkflow(nodeStepWorkflow)
	if err := control.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(control.Stop)

	ca, err := GenerateAuthority(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	bed := &testbed{ts: ts, direct: direct, ca: ca, store: &fakeStandings{nodes: map[string]*fakeNode{}}, logs: &recordedLogs{}}
	bed.gw, err = New(Options{Frontend: ts.Address(), Namespace: ts.Namespace(), Authority: ca, Standings: bed.store,
		CheckInterval: 200 * time.Millisecond, Log: slog.New(recordingHandler{logs: bed.logs}),
		now: func() time.Time { return time.Now().Add(time.Duration(bed.clockAhead.Load())) }})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bed.addr = l.Addr().String()
	serveCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- bed.gw.Serve(serveCtx, l) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Error(err)
		}
		bed.gw.Close() //nolint:errcheck
	})
	return bed
}

// addNode registers a node with the store and gives it a current certificate.
func (bed *testbed) addNode(t *testing.T, name string) testNode {
	t.Helper()
	n := testNode{id: uuid.NewString()}
	bed.store.add(n.id, name)
	n.cert, n.serial = bed.certificate(t, bed.ca, n.id, time.Now(), time.Hour)
	bed.store.issue(n.id, n.serial, time.Time{})
	return n
}

// certificate is what a node's agent would hold: its own key and the CA's certificate for it.
func (bed *testbed) certificate(t *testing.T, ca *Authority, nodeID string, now time.Time, lifetime time.Duration) (tls.Certificate, string) {
	t.Helper()
	key := newKey(t)
	issued, err := ca.IssueNode(nodeID, csrFor(t, key, nodeID), now, lifetime)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(issued.PEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return cert, issued.Serial
}

func (bed *testbed) tlsConfig(cert *tls.Certificate) *tls.Config {
	cfg := &tls.Config{RootCAs: bed.ca.Pool(), MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

// dial is a raw connection to the gateway, as an attacker holding cert would make.
func (bed *testbed) dial(t *testing.T, cert *tls.Certificate) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(bed.addr, grpc.WithTransportCredentials(credentials.NewTLS(bed.tlsConfig(cert))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// nodeWorker is node n's agent as far as Temporal goes: an SDK activity worker on its own queue,
// through the gateway, configured as the agent is (no workflow worker, no worker heartbeats).
func (bed *testbed) nodeWorker(t *testing.T, n testNode) worker.Worker {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: bed.addr, Namespace: bed.ts.Namespace(),
		ConnectionOptions: client.ConnectionOptions{TLS: bed.tlsConfig(&n.cert)}, WorkerHeartbeatInterval: -1,
		Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatalf("node %s dials the gateway: %v", n.id, err)
	}
	t.Cleanup(c.Close)
	w := worker.New(c, n.queue(), worker.Options{DisableWorkflowWorker: true, WorkerStopTimeout: time.Second})
	w.RegisterActivityWithOptions(nodeStep, activity.RegisterOptions{Name: "NodeStep"})
	if err := w.Start(); err != nil {
		t.Fatalf("node %s's worker: %v", n.id, err)
	}
	return w
}

// runStep runs the test workflow's one step on queue and returns its result.
func (bed *testbed) runStep(ctx context.Context, queue, mode string) (string, error) {
	run, err := bed.direct.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: sptemporal.ControlTaskQueue}, nodeStepWorkflow, nodeStepInput{Queue: queue, Mode: mode})
	if err != nil {
		return "", err
	}
	var out string
	err = run.Get(ctx, &out)
	return out, err
}

// openPoll starts a long poll of n's own (empty) queue and returns where its end is reported.
func (bed *testbed) openPoll(ctx context.Context, svc workflowservice.WorkflowServiceClient, n testNode) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := svc.PollActivityTaskQueue(ctx, &workflowservice.PollActivityTaskQueueRequest{Namespace: bed.ts.Namespace(), TaskQueue: normalQueue(n.queue())})
		done <- err
	}()
	return done
}

// waitForLiveCall returns once the gateway forwards a call of the node.
func (bed *testbed) waitForLiveCall(t *testing.T, nodeID string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(bed.gw.calls.nodes(), nodeID) {
		if time.Now().After(deadline) {
			t.Fatalf("no call of node %s reached the gateway within 10 s", nodeID)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var commonWorkflowType = commonpb.WorkflowType{Name: "nodeStepWorkflow"}

func execution(workflowID string) *commonpb.WorkflowExecution {
	return &commonpb.WorkflowExecution{WorkflowId: workflowID}
}

type nodeStepInput struct {
	Queue string
	Mode  string
}

// nodeStepWorkflow runs one step on a node's queue, as the platform's workflows do.
func nodeStepWorkflow(ctx workflow.Context, in nodeStepInput) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue: in.Queue, ScheduleToStartTimeout: time.Minute, StartToCloseTimeout: time.Minute, HeartbeatTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 100 * time.Millisecond, MaximumAttempts: 3},
	})
	var out string
	err := workflow.ExecuteActivity(ctx, "NodeStep", in.Mode).Get(ctx, &out)
	return out, err
}

// holding reports that node A's worker started the held step.
var holding = make(chan struct{}, 1)

// nodeStep is the node's activity: "flaky" fails its first attempt, "hold" heartbeats until it
// is stopped, anything else answers at once.
func nodeStep(ctx context.Context, mode string) (string, error) {
	activity.RecordHeartbeat(ctx, "started")
	switch mode {
	case "flaky":
		if activity.GetInfo(ctx).Attempt == 1 {
			return "", errors.New("the first attempt fails")
		}
		return fmt.Sprintf("done on attempt %d", activity.GetInfo(ctx).Attempt), nil
	case "hold":
		select {
		case holding <- struct{}{}:
		default:
		}
		for ctx.Err() == nil {
			activity.RecordHeartbeat(ctx, "holding")
			time.Sleep(100 * time.Millisecond)
		}
		return "", ctx.Err()
	}
	return "done", nil
}

// fakeStandings is the store's answers in memory.
type fakeStandings struct {
	mu    sync.Mutex
	nodes map[string]*fakeNode
}

type fakeNode struct {
	name      string
	revokedAt *time.Time
	certs     map[string]*time.Time // serial → superseded at
}

func (f *fakeStandings) add(id, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes[id] = &fakeNode{name: name, certs: map[string]*time.Time{}}
}

// issue records serial as the node's current certificate; the one it had is superseded at
// supersededAt (now when zero).
func (f *fakeStandings) issue(id, serial string, supersededAt time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if supersededAt.IsZero() {
		supersededAt = time.Now()
	}
	for s, at := range f.nodes[id].certs {
		if at == nil {
			f.nodes[id].certs[s] = &supersededAt
		}
	}
	f.nodes[id].certs[serial] = nil
}

func (f *fakeStandings) revoke(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	f.nodes[id].revokedAt = &now
}

func (f *fakeStandings) NodeStanding(_ context.Context, nodeID, serial string) (db.NodeStanding, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.nodes[nodeID]
	if !ok {
		return db.NodeStanding{}, db.ErrNotFound
	}
	superseded, known := n.certs[serial]
	return db.NodeStanding{Name: n.name, Revoked: n.revokedAt != nil, CertificateKnown: known, SupersededAt: superseded}, nil
}

func (f *fakeStandings) RevokedNodesAmong(_ context.Context, ids []string) ([]db.RevokedNode, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []db.RevokedNode
	for _, id := range ids {
		if n, ok := f.nodes[id]; !ok {
			out = append(out, db.RevokedNode{ID: id, RevokedAt: time.Now()})
		} else if n.revokedAt != nil {
			out = append(out, db.RevokedNode{ID: id, Name: n.name, RevokedAt: *n.revokedAt})
		}
	}
	return out, nil
}

func (f *fakeStandings) NodesRevokedSince(_ context.Context, since time.Time) ([]db.RevokedNode, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []db.RevokedNode
	for id, n := range f.nodes {
		if n.revokedAt != nil && !n.revokedAt.Before(since) {
			out = append(out, db.RevokedNode{ID: id, Name: n.name, RevokedAt: *n.revokedAt})
		}
	}
	return out, nil
}

// recordedLogs keeps the gateway's log lines as "message key=value …".
type recordedLogs struct {
	mu    sync.Mutex
	lines []string
}

func (l *recordedLogs) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

// matching lists the lines holding every part.
func (l *recordedLogs) matching(parts ...string) []string {
	var out []string
	for _, line := range l.all() {
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(line, p) }) {
			out = append(out, line)
		}
	}
	return out
}

// waitFor returns once count lines hold every part, and fails the test after 5 s.
func (l *recordedLogs) waitFor(t *testing.T, count int, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(l.matching(parts...)) < count {
		if time.Now().After(deadline) {
			t.Errorf("fewer than %d log lines with %q within 5 s: %v", count, parts, l.all())
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type recordingHandler struct {
	logs  *recordedLogs
	attrs []slog.Attr
}

func (h recordingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h recordingHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	write := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(write)
	h.logs.mu.Lock()
	h.logs.lines = append(h.logs.lines, b.String())
	h.logs.mu.Unlock()
	return nil
}

func (h recordingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return recordingHandler{logs: h.logs, attrs: append(slices.Clone(h.attrs), attrs...)}
}

func (h recordingHandler) WithGroup(string) slog.Handler { return h }
