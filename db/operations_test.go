package db_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/skypanel/skypanel/db"
)

// newOp is an operation of kind as the owner makes it (the workflow's input is its ids).
func newOp(kind string) db.NewOperation {
	id := uuid.NewString()
	return db.NewOperation{ID: id, Kind: kind, WorkflowType: "Op", WorkflowID: kind + "/" + id,
		Input: map[string]string{"OperationID": id}, RequestedVia: "test"}
}

// enqueue queues an operation of kind on the app and fails the test on a refusal.
func enqueue(t *testing.T, orgID, appID, kind string) db.Enqueued {
	t.Helper()
	enq, err := testStore.EnqueueOperation(context.Background(), orgID, appID, newOp(kind))
	if err != nil {
		t.Fatalf("queue %s: %v", kind, err)
	}
	return enq
}

// finish ends the operation as its workflow would, and returns the next one to start.
func finish(t *testing.T, op db.Operation, status string) *db.Operation {
	t.Helper()
	next, err := testStore.FinishOperation(context.Background(), op.AppID, op.WorkflowID, status, "")
	if err != nil {
		t.Fatalf("finish %s: %v", op.Kind, err)
	}
	return next
}

func activeKinds(t *testing.T, orgID, appID string) string {
	t.Helper()
	ops, err := testStore.ListActiveOperations(context.Background(), orgID, appID)
	if err != nil {
		t.Fatal(err)
	}
	out := ""
	for _, o := range ops {
		out += fmt.Sprintf("%s:%s:%d ", o.Kind, o.Status, o.Position)
	}
	return out
}

// Operations on a busy app wait in arrival order and run one at a time; each end hands the
// turn to the next.
func TestOperationsWaitTheirTurnInOrder(t *testing.T) {
	f := newFixture(t)
	runningWithRelease(t, f)
	first := enqueue(t, f.org, f.app.ID, db.OpRestart)
	if first.Start == nil || first.Start.ID != first.Operation.ID || first.Start.Status != db.OperationRunning {
		t.Fatalf("on an idle app the operation starts at once: %+v", first.Start)
	}
	scale := enqueue(t, f.org, f.app.ID, db.OpScale)
	deploy := enqueue(t, f.org, f.app.ID, db.OpDeploy)
	if scale.Start == nil || scale.Start.ID != first.Operation.ID || deploy.Operation.Position != 2 || scale.Operation.Position != 1 {
		t.Fatalf("behind a running one: start %+v, positions %d %d", scale.Start, scale.Operation.Position, deploy.Operation.Position)
	}
	if got, want := activeKinds(t, f.org, f.app.ID), "restart:running:0 scale:queued:1 deploy:queued:2 "; got != want {
		t.Errorf("queue %q, want %q", got, want)
	}
	next := finish(t, *first.Start, db.OperationSucceeded)
	if next == nil || next.ID != scale.Operation.ID || next.OrgID != f.org {
		t.Fatalf("after the restart: %+v, want the scale, of the app's organization (its workflow is tagged with it)", next)
	}
	// Finishing twice (a retried activity) changes nothing and names the same running one.
	if again := finish(t, *first.Start, db.OperationSucceeded); again == nil || again.ID != scale.Operation.ID {
		t.Fatalf("a repeated finish: %+v", again)
	}
	next = finish(t, *next, db.OperationFailed)
	if next == nil || next.ID != deploy.Operation.ID || next.DeploymentID == nil {
		t.Fatalf("after the scale: %+v, want the deploy", next)
	}
	if next = finish(t, *next, db.OperationSucceeded); next != nil {
		t.Fatalf("an empty queue started %+v", next)
	}
	if got := activeKinds(t, f.org, f.app.ID); got != "" {
		t.Errorf("queue %q after the last one", got)
	}
}

// A deploy supersedes the deploys still waiting (they name it); the running one is untouched.
func TestANewerDeploySupersedesTheWaitingOnes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	running := enqueue(t, f.org, f.app.ID, db.OpDeploy)
	second := enqueue(t, f.org, f.app.ID, db.OpDeploy)
	enqueue(t, f.org, f.app.ID, db.OpScale)
	third := enqueue(t, f.org, f.app.ID, db.OpDeploy)
	old, err := testStore.GetOperation(ctx, f.org, f.app.ID, second.Operation.ID)
	if err != nil {
		t.Fatal(err)
	}
	if old.Status != db.OperationSuperseded || old.SupersededBy == nil || *old.SupersededBy != third.Operation.ID {
		t.Errorf("the waiting deploy: %s superseded by %v, want superseded by %s", old.Status, old.SupersededBy, third.Operation.ID)
	}
	dep, err := testStore.GetDeployment(ctx, f.org, f.app.ID, second.Operation.ID)
	if err != nil {
		t.Fatal(err)
	}
	if dep.Status != db.DeploymentSuperseded || dep.SupersededBy == nil || *dep.SupersededBy != third.Operation.ID || dep.FinishedAt == nil {
		t.Errorf("its deployment: %+v", dep)
	}
	if got, want := activeKinds(t, f.org, f.app.ID), "deploy:running:0 scale:queued:1 deploy:queued:2 "; got != want {
		t.Errorf("queue %q, want %q", got, want)
	}
	if r, _ := testStore.GetOperation(ctx, f.org, f.app.ID, running.Operation.ID); r.Status != db.OperationRunning {
		t.Errorf("the running deploy: %s", r.Status)
	}
}

// A delete cancels everything waiting, and the app takes nothing more after it.
func TestDeleteDropsTheQueueBehindIt(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	runningWithRelease(t, f)
	running := enqueue(t, f.org, f.app.ID, db.OpRestart)
	deploy := enqueue(t, f.org, f.app.ID, db.OpDeploy)
	stop := enqueue(t, f.org, f.app.ID, db.OpStop)
	del := enqueue(t, f.org, f.app.ID, db.OpDelete)
	for _, op := range []db.Enqueued{deploy, stop} {
		got, _ := testStore.GetOperation(ctx, f.org, f.app.ID, op.Operation.ID)
		if got.Status != db.OperationCancelled || got.Reason == "" {
			t.Errorf("%s behind a delete: %s %q, want cancelled with a reason", got.Kind, got.Status, got.Reason)
		}
	}
	if dep, _ := testStore.GetDeployment(ctx, f.org, f.app.ID, deploy.Operation.ID); dep.Status != db.DeploymentCancelled {
		t.Errorf("the cancelled deploy's deployment: %s", dep.Status)
	}
	var invalid *db.InvalidStateError
	if _, err := testStore.EnqueueOperation(ctx, f.org, f.app.ID, newOp(db.OpRestart)); !errors.As(err, &invalid) {
		t.Errorf("an operation after a delete: %v, want refused", err)
	}
	next := finish(t, *running.Start, db.OperationSucceeded)
	if next == nil || next.ID != del.Operation.ID {
		t.Fatalf("after the running one: %+v, want the delete", next)
	}
	if app, _ := testStore.GetApplication(ctx, f.org, f.app.ID); app.Status != db.AppDeleting {
		t.Errorf("app %s while its delete runs", app.Status)
	}
}

// On an idle app an operation the state does not allow is refused at once and leaves no
// trace; on a busy app it is checked when its turn comes, ends failed with the reason, and
// the next one runs.
func TestOperationsTheStateDoesNotAllow(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	for _, kind := range []string{db.OpStop, db.OpStart, db.OpRestart, db.OpScale, db.OpRollback} {
		_, err := testStore.EnqueueOperation(ctx, f.org, f.app.ID, newOp(kind))
		var invalid *db.InvalidStateError
		if !errors.As(err, &invalid) {
			t.Errorf("%s of a never-deployed app: %v, want an invalid-state error", kind, err)
		}
	}
	if got := activeKinds(t, f.org, f.app.ID); got != "" {
		t.Errorf("refused operations were queued: %q", got)
	}

	runningWithRelease(t, f)
	restart := enqueue(t, f.org, f.app.ID, db.OpRestart)
	start := enqueue(t, f.org, f.app.ID, db.OpStart) // the app runs: refused when its turn comes
	scale := enqueue(t, f.org, f.app.ID, db.OpScale)
	next := finish(t, *restart.Start, db.OperationSucceeded)
	if next == nil || next.ID != scale.Operation.ID {
		t.Fatalf("after the restart: %+v, want the scale (the start is refused)", next)
	}
	got, _ := testStore.GetOperation(ctx, f.org, f.app.ID, start.Operation.ID)
	if got.Status != db.OperationFailed || got.Reason != "the application is already running" {
		t.Errorf("start of a running app at its turn: %s %q", got.Status, got.Reason)
	}
}

// At most MaxQueuedOperations wait; the next one is refused and changes nothing.
func TestAFullQueueRefuses(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	runningWithRelease(t, f)
	enqueue(t, f.org, f.app.ID, db.OpRestart)
	for range db.MaxQueuedOperations {
		enqueue(t, f.org, f.app.ID, db.OpRestart)
	}
	deploy := newOp(db.OpDeploy)
	_, err := testStore.EnqueueOperation(ctx, f.org, f.app.ID, deploy)
	var full *db.QueueFullError
	if !errors.As(err, &full) || full.Limit != db.MaxQueuedOperations {
		t.Fatalf("operation %d: %v, want a full queue", db.MaxQueuedOperations+2, err)
	}
	if _, err := testStore.GetDeployment(ctx, f.org, f.app.ID, deploy.ID); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("a refused deploy left a deployment: %v", err)
	}
	// Billing's suspension is still taken, and so is a delete, which drops the full queue.
	suspend := newOp(db.OpSuspend)
	suspend.OncePerKind = true
	if _, err := testStore.EnqueueOperation(ctx, f.org, f.app.ID, suspend); err != nil {
		t.Errorf("billing's suspension on a full queue: %v", err)
	}
	del := enqueue(t, f.org, f.app.ID, db.OpDelete)
	if del.Operation.Position != 1 {
		t.Errorf("the delete on a full queue waits at %d, want 1 (everything before it cancelled)", del.Operation.Position)
	}
}

// A waiting operation can be cancelled and never runs; an ended one cannot; a running one is
// returned as it is (the owner decides); another organization sees none of it.
func TestCancelAWaitingOperation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	runningWithRelease(t, f)
	running := enqueue(t, f.org, f.app.ID, db.OpRestart)
	deploy := enqueue(t, f.org, f.app.ID, db.OpDeploy)
	scale := enqueue(t, f.org, f.app.ID, db.OpScale)

	other := newFixture(t)
	if _, err := testStore.CancelQueuedOperation(ctx, other.org, f.app.ID, deploy.Operation.ID, "x"); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("another organization's cancel: %v", err)
	}
	op, err := testStore.CancelQueuedOperation(ctx, f.org, f.app.ID, deploy.Operation.ID, "cancelled by a@example.com")
	if err != nil || op.Status != db.OperationCancelled {
		t.Fatalf("cancel: %+v %v", op, err)
	}
	if dep, _ := testStore.GetDeployment(ctx, f.org, f.app.ID, deploy.Operation.ID); dep.Status != db.DeploymentCancelled || dep.FailureReason != "cancelled by a@example.com" {
		t.Errorf("its deployment: %s %q", dep.Status, dep.FailureReason)
	}
	var ended *db.OperationNotActiveError
	if _, err := testStore.CancelQueuedOperation(ctx, f.org, f.app.ID, deploy.Operation.ID, "again"); !errors.As(err, &ended) {
		t.Errorf("cancelling it again: %v", err)
	}
	if op, err := testStore.CancelQueuedOperation(ctx, f.org, f.app.ID, running.Operation.ID, "x"); err != nil || op.Status != db.OperationRunning {
		t.Errorf("cancel of the running one: %+v %v, want it returned running", op, err)
	}
	if next := finish(t, *running.Start, db.OperationSucceeded); next == nil || next.ID != scale.Operation.ID {
		t.Errorf("after the running one: %+v, want the scale (the deploy was cancelled)", next)
	}
}

// An operation whose workflow could not be started is removed with its deployment; a queue
// left without a running operation (a crash) is found and moves on.
func TestAbandonedOperationAndAStalledQueue(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	runningWithRelease(t, f)
	first := enqueue(t, f.org, f.app.ID, db.OpDeploy)
	second := enqueue(t, f.org, f.app.ID, db.OpScale)
	if err := testStore.AbandonOperation(ctx, *first.Start); err != nil {
		t.Fatal(err)
	}
	if _, err := testStore.GetDeployment(ctx, f.org, f.app.ID, first.Operation.ID); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("the abandoned deploy's deployment: %v", err)
	}
	if app, _ := testStore.GetApplication(ctx, f.org, f.app.ID); app.ActiveWorkflowID != nil {
		t.Errorf("the app still names the abandoned workflow")
	}
	stalled, err := testStore.AppsWaitingWithoutRunning(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, id := range stalled {
		found = found || id == f.app.ID
	}
	if !found {
		t.Fatalf("the stalled queue is not listed: %v", stalled)
	}
	next, err := testStore.NextOperation(ctx, f.app.ID)
	if err != nil || next == nil || next.ID != second.Operation.ID {
		t.Fatalf("next: %+v %v, want the scale", next, err)
	}
}

// Many requests at once on an idle app: exactly one runs, the others wait in the order they
// were accepted.
func TestConcurrentRequestsGetOneTurnEach(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	runningWithRelease(t, f)
	const n = 8
	results := make(chan db.Enqueued, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			enq, err := testStore.EnqueueOperation(ctx, f.org, f.app.ID, newOp(db.OpRestart))
			errs <- err
			results <- enq
		}()
	}
	starts := map[string]bool{}
	positions := map[int]bool{}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		enq := <-results
		if enq.Start != nil {
			starts[enq.Start.ID] = true
		}
		positions[enq.Operation.Position] = true
	}
	if len(starts) != 1 {
		t.Errorf("%d different operations were given the turn, want 1", len(starts))
	}
	for p := range n {
		if !positions[p] {
			t.Errorf("no request got position %d: %v", p, positions)
		}
	}
}

// The platform asks again at each billing run: one waiting suspension of an app is enough.
func TestPlatformOperationsAreQueuedOncePerKind(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	runningWithRelease(t, f)
	enqueue(t, f.org, f.app.ID, db.OpRestart)
	op := newOp(db.OpSuspend)
	op.OncePerKind = true
	first, err := testStore.EnqueueOperation(ctx, f.org, f.app.ID, op)
	if err != nil {
		t.Fatal(err)
	}
	again := newOp(db.OpSuspend)
	again.OncePerKind = true
	second, err := testStore.EnqueueOperation(ctx, f.org, f.app.ID, again)
	if err != nil || second.Operation.ID != first.Operation.ID {
		t.Errorf("a second suspension: %+v %v, want the first one", second.Operation, err)
	}
	if got, want := activeKinds(t, f.org, f.app.ID), "restart:running:0 suspend:queued:1 "; got != want {
		t.Errorf("queue %q, want %q", got, want)
	}
}
