// Package operations is the one owner of an app's operations: it queues each request in the
// app's turn (Postgres, db.EnqueueOperation), builds the workflow's ID, task queue, search
// attributes, deadline and input, starts the workflow when the operation's turn comes, undoes
// a request whose workflow cannot be started, and cancels. API handlers, billing and the
// workflows' own ends reach operations only through it.
//
// Why a queue in Postgres rather than a per-app serializing workflow: the queue is data the API
// lists and cancels from and that other state changes join in one transaction (an environment
// change stores its variables and queues its rollout together; a delete refuses what comes
// after it). Each operation is still its own workflow in the Temporal UI. Nothing is lost or run
// twice across crashes: a queued operation is a committed row; its workflow's ID derives from
// the operation and is started with a reuse policy that refuses a second run; whoever finds the
// app's turn free (the API, the finishing workflow, the watcher) starts the head of the queue.
package operations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/google/uuid"

	"github.com/skypanel/skypanel/db"
	sptemporal "github.com/skypanel/skypanel/temporal"
	"github.com/skypanel/skypanel/workflows"
)

// Owner queues, starts and cancels app operations.
type Owner struct {
	Store    *db.Store
	Temporal client.Client
	Log      *slog.Logger
	// StartGrace overrides DefaultStartGrace (tests).
	StartGrace time.Duration
}

// Request is one operation someone asks for on an app.
type Request struct {
	OrgID string
	AppID string
	Kind  string // db.OpDeploy, db.OpScale, …
	// UserID is who asked; empty when the platform did, Via then says what ("billing").
	UserID string
	Via    string
	// Instances is a scale's instance count; Release a rollback's version; Description a
	// configuration rollout's (names of the changed variables, never values).
	Instances   int
	Release     int
	Description string
	// Reason says why the platform asked (a heal's shortfall); listed with the operation.
	Reason string
	// FromNodeID is the node a move takes the app off; Evacuate: that node is not to be asked
	// anything (it is dead).
	FromNodeID string
	Evacuate   bool
	// Commit is the exact commit a deploy builds ("" the branch's head): a deploy of a commit
	// that already waits or runs on the app is that one.
	Commit string
}

// ErrUnavailable: the workflow service could not start the operation, and nothing changed.
var ErrUnavailable = errors.New("the workflow service is unavailable")

// kind is how one operation kind is carried out.
type kind struct {
	workflow any
	// deadline bounds the whole run: passing it ends the operation failed, never stuck.
	deadline time.Duration
	input    func(r Request, operationID string) any
}

func appOperation(r Request, operationID string) any {
	return workflows.AppOperationInput{AppID: r.AppID, OperationID: operationID}
}

// kinds lists every operation an app queues. A deploy's deadline covers a 10-minute clone, a
// 30-minute build and the rollout.
var kinds = map[string]kind{
	db.OpDeploy: {workflow: workflows.DeployApp, deadline: time.Hour, input: func(r Request, id string) any {
		return workflows.DeployAppInput{AppID: r.AppID, DeploymentID: id}
	}},
	db.OpRestart: {workflow: workflows.RestartApp, deadline: 20 * time.Minute, input: appOperation},
	db.OpStart:   {workflow: workflows.StartApp, deadline: 20 * time.Minute, input: appOperation},
	db.OpStop:    {workflow: workflows.StopApp, deadline: 20 * time.Minute, input: appOperation},
	db.OpDelete:  {workflow: workflows.DeleteApp, deadline: 20 * time.Minute, input: appOperation},
	db.OpScale: {workflow: workflows.ScaleApp, deadline: 20 * time.Minute, input: func(r Request, id string) any {
		return workflows.ScaleAppInput{AppID: r.AppID, OperationID: id, Instances: r.Instances}
	}},
	db.OpRollback: {workflow: workflows.RollbackApp, deadline: 20 * time.Minute, input: func(r Request, id string) any {
		return workflows.RollbackAppInput{AppID: r.AppID, OperationID: id, Version: r.Release, UserID: r.UserID}
	}},
	db.OpSuspend: {workflow: workflows.SuspendApp, deadline: 20 * time.Minute, input: appOperation},
	db.OpResume:  {workflow: workflows.ResumeApp, deadline: 20 * time.Minute, input: appOperation},
	// A heal may rebuild the release's image from its commit when the node lost it.
	db.OpHeal: {workflow: workflows.HealApp, deadline: time.Hour, input: func(r Request, id string) any {
		return workflows.HealAppInput{AppID: r.AppID, OperationID: id, Reason: r.Reason}
	}},
	// A move starts the app on another node (a pull and a readiness probe per instance) and
	// drains it from the old one.
	db.OpMove: {workflow: workflows.MoveApp, deadline: 30 * time.Minute, input: func(r Request, id string) any {
		return workflows.MoveAppInput{AppID: r.AppID, OperationID: id, FromNodeID: r.FromNodeID, Evacuate: r.Evacuate}
	}},
	db.OpDomains: {workflow: workflows.UpdateAppDomains, deadline: 10 * time.Minute, input: appOperation},
	db.OpConfigure: {workflow: workflows.ConfigureApp, deadline: 20 * time.Minute, input: func(r Request, id string) any {
		return workflows.ConfigureAppInput{AppID: r.AppID, OperationID: id, UserID: r.UserID, Description: r.Description}
	}},
}

// workflowName is the name the worker registers a workflow function under (its function name).
func workflowName(fn any) string {
	name := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
	return name[strings.LastIndexByte(name, '.')+1:]
}

// deadlines is each workflow type's deadline, by the name the worker registers it under.
var deadlines = func() map[string]time.Duration {
	m := make(map[string]time.Duration, len(kinds))
	for _, k := range kinds {
		m[workflowName(k.workflow)] = k.deadline
	}
	return m
}()

// deadlineOf is the deadline of a recorded operation's workflow type.
func deadlineOf(workflowType string) time.Duration {
	if d, ok := deadlines[workflowType]; ok {
		return d
	}
	return 20 * time.Minute
}

// New makes the operation for r, with a fresh id. It is only recorded by Submit's enqueue.
func New(r Request) (db.NewOperation, error) {
	k, ok := kinds[r.Kind]
	if !ok {
		return db.NewOperation{}, fmt.Errorf("unknown operation kind %q", r.Kind)
	}
	id := newID()
	workflowID := workflows.OperationWorkflowID(r.Kind, r.AppID, id)
	if r.Kind == db.OpDeploy {
		workflowID = workflows.DeployWorkflowID(r.AppID, id)
	}
	via := r.Via
	if via == "" {
		via = "api"
	}
	return db.NewOperation{
		ID: id, Kind: r.Kind, WorkflowType: workflowName(k.workflow), WorkflowID: workflowID,
		Input: k.input(r, id), RequestedBy: r.UserID, RequestedVia: via, Reason: r.Reason, Commit: r.Commit,
		// The platform asks again at every billing run (or convergence check) while things
		// stay as they are: one waiting suspension, resumption or heal of an app is enough; so
		// is one move (a drain asked again finds the move the first one queued).
		OncePerKind: r.UserID == "" && (r.Kind == db.OpSuspend || r.Kind == db.OpResume || r.Kind == db.OpHeal || r.Kind == db.OpMove),
	}, nil
}

func newID() string { return uuid.NewString() }

// EnqueueFor queues an operation the platform asks for (via: "billing") and returns its id.
func (o *Owner) EnqueueFor(ctx context.Context, orgID, appID, kind, via string) (string, error) {
	op, err := o.Enqueue(ctx, Request{OrgID: orgID, AppID: appID, Kind: kind, Via: via})
	if err != nil {
		return "", err
	}
	return op.ID, nil
}

// EnqueueMove queues a move of the app off fromNodeID that the platform asks for (via:
// "drain") and returns its id.
func (o *Owner) EnqueueMove(ctx context.Context, orgID, appID, fromNodeID string, evacuate bool, via string) (string, error) {
	op, err := o.Enqueue(ctx, Request{OrgID: orgID, AppID: appID, Kind: db.OpMove, Via: via, FromNodeID: fromNodeID, Evacuate: evacuate})
	if err != nil {
		return "", err
	}
	return op.ID, nil
}

// Enqueue queues r on its app and starts it when the app is idle. See Submit.
func (o *Owner) Enqueue(ctx context.Context, r Request) (db.Operation, error) {
	return o.Submit(ctx, r, func(op db.NewOperation) (db.Enqueued, error) {
		return o.Store.EnqueueOperation(ctx, r.OrgID, r.AppID, op)
	}, nil)
}

// Submit records r through enqueue (which may store more in the same transaction) and starts
// the app's turn. When the new operation should have started at once and its workflow cannot
// be started, the operation is removed and undo (may be nil) puts back what enqueue stored
// beside it: the request then changed nothing (ErrUnavailable). An operation queued behind
// another is accepted whatever Temporal's state: its turn comes when the one ahead ends.
func (o *Owner) Submit(ctx context.Context, r Request, enqueue func(db.NewOperation) (db.Enqueued, error), undo func(context.Context) error) (db.Operation, error) {
	op, err := New(r)
	if err != nil {
		return db.Operation{}, err
	}
	enq, err := enqueue(op)
	if err != nil {
		return db.Operation{}, err
	}
	if enq.Operation.ID == "" {
		return db.Operation{}, nil // enqueue stored its change without an operation
	}
	log := o.Log.With("app_id", r.AppID, "operation", r.Kind, "operation_id", op.ID, "workflow_id", op.WorkflowID)
	if enq.Start == nil {
		log.InfoContext(ctx, "operation queued")
		return enq.Operation, nil
	}
	if err := o.start(ctx, *enq.Start); err != nil {
		if enq.Start.ID != op.ID {
			// The head of the queue was not started (it will be, by the watcher); ours waits.
			log.ErrorContext(ctx, "start the operation ahead", "ahead_workflow_id", enq.Start.WorkflowID, "error", err)
			return enq.Operation, nil
		}
		log.ErrorContext(ctx, "start workflow", "error", err)
		undoCtx := context.WithoutCancel(ctx)
		if abandonErr := o.Store.AbandonOperation(undoCtx, *enq.Start); abandonErr != nil {
			log.ErrorContext(ctx, "abandon operation", "error", abandonErr)
		}
		if undo != nil {
			if undoErr := undo(undoCtx); undoErr != nil {
				log.ErrorContext(ctx, "undo operation's change", "error", undoErr)
			}
		}
		return db.Operation{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if enq.Start.ID == op.ID {
		enq.Operation.Status = db.OperationRunning
	}
	log.InfoContext(ctx, "operation accepted", "started", enq.Operation.Status == db.OperationRunning)
	return enq.Operation, nil
}

// start starts the workflow of an operation whose turn it is. Starting one that was started
// before (a retry, two processes finding the same free turn) finds it and does nothing: the
// reuse policy refuses to run a workflow ID twice, even once the first run has closed.
func (o *Owner) start(ctx context.Context, op db.Operation) error {
	_, err := o.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       op.WorkflowID,
		TaskQueue:                sptemporal.ControlTaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowExecutionTimeout: deadlineOf(op.WorkflowType),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			sptemporal.AppIDKey.ValueSet(op.AppID), sptemporal.OrgIDKey.ValueSet(op.OrgID)),
	}, op.WorkflowType, json.RawMessage(op.Input))
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("start %s: %w", op.WorkflowID, err)
	}
	o.Log.InfoContext(ctx, "operation started", "app_id", op.AppID, "operation", op.Kind, "operation_id", op.ID, "workflow_id", op.WorkflowID)
	return nil
}

// Finish records how the operation of workflowID ended and starts the app's next operation.
func (o *Owner) Finish(ctx context.Context, appID, workflowID, status, reason string) error {
	next, err := o.Store.FinishOperation(ctx, appID, workflowID, status, reason)
	if err != nil {
		return fmt.Errorf("finish operation of %s: %w", workflowID, err)
	}
	if next == nil {
		return nil
	}
	return o.start(ctx, *next)
}

// NotCancellableError refuses to cancel an operation that runs and cannot be stopped.
type NotCancellableError struct{ Reason string }

func (e *NotCancellableError) Error() string { return e.Reason }

// Cancel cancels an operation of an app of orgID. A waiting one ends cancelled and never runs.
// A running deploy that still clones or builds is stopped through its workflow (it ends
// cancelled shortly after, the previous release serving throughout); the operation is
// returned still running. Anything else running is a *NotCancellableError. who names the
// requester in the reason.
func (o *Owner) Cancel(ctx context.Context, orgID, appID, operationID, who string) (db.Operation, error) {
	op, err := o.Store.CancelQueuedOperation(ctx, orgID, appID, operationID, "cancelled by "+who+" before it ran")
	if err != nil || op.Status != db.OperationRunning {
		return op, err
	}
	if op.Kind != db.OpDeploy {
		return op, &NotCancellableError{Reason: "a running " + op.Kind + " cannot be cancelled (only a deploy can, while it clones or builds): it ends on its own"}
	}
	handle, err := o.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: op.WorkflowID, UpdateName: workflows.CancelDeployUpdate, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = handle.Get(ctx, nil)
	}
	var appErr *temporal.ApplicationError
	var notFound *serviceerror.NotFound
	switch {
	case err == nil:
		o.Log.InfoContext(ctx, "deploy cancellation requested", "app_id", appID, "operation_id", op.ID, "workflow_id", op.WorkflowID)
		return op, nil
	case errors.As(err, &appErr) && appErr.Type() == workflows.ErrTypeNotCancellable:
		return op, &NotCancellableError{Reason: appErr.Message()}
	case errors.As(err, &notFound):
		return op, &NotCancellableError{Reason: "the deploy has just ended"}
	}
	o.Log.ErrorContext(ctx, "cancel deploy", "app_id", appID, "workflow_id", op.WorkflowID, "error", err)
	return op, fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// DefaultStartGrace is how long a running operation's workflow may take to appear after the
// turn was given (the giver starts it right after its commit) before the sweep starts it itself.
const DefaultStartGrace = 10 * time.Second

// Watch keeps every app's queue moving until ctx ends, checking every interval (Sweep).
func (o *Owner) Watch(ctx context.Context, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		if err := o.Sweep(ctx); err != nil && ctx.Err() == nil {
			o.Log.WarnContext(ctx, "operations watch", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// Sweep finishes what a crash or a deadline left: it starts the workflow of a running
// operation that never got one (a crash between the turn and the start), ends an operation
// whose workflow closed without recording its end (deadline passed, terminated), and gives the
// turn to the head of every queue that has none running. Every step is idempotent, so several
// control workers may sweep at once.
func (o *Owner) Sweep(ctx context.Context) error {
	grace := o.StartGrace
	if grace <= 0 {
		grace = DefaultStartGrace
	}
	running, err := o.Store.RunningOperations(ctx, time.Now().Add(-grace))
	if err != nil {
		return err
	}
	var errs []error
	for _, op := range running {
		if err := o.checkRunning(ctx, op); err != nil {
			errs = append(errs, err)
		}
	}
	if err := o.sweepDatabases(ctx, grace); err != nil {
		errs = append(errs, err)
	}
	apps, err := o.Store.AppsWaitingWithoutRunning(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, appID := range apps {
		next, err := o.Store.NextOperation(ctx, appID)
		if err == nil && next != nil {
			err = o.start(ctx, *next)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("app %s: %w", appID, err))
		}
	}
	return errors.Join(errs...)
}

func (o *Owner) checkRunning(ctx context.Context, op db.Operation) error {
	desc, err := o.Temporal.DescribeWorkflowExecution(ctx, op.WorkflowID, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		o.Log.WarnContext(ctx, "operation had its turn but no workflow: starting it", "app_id", op.AppID, "operation_id", op.ID, "workflow_id", op.WorkflowID)
		return o.start(ctx, op)
	}
	if err != nil {
		return fmt.Errorf("describe %s: %w", op.WorkflowID, err)
	}
	status, reason, closed := closedOutcome(desc.GetWorkflowExecutionInfo().GetStatus(), op.Kind, op.WorkflowType)
	if !closed {
		return nil
	}
	o.Log.WarnContext(ctx, "operation's workflow closed without recording its end", "app_id", op.AppID, "operation_id", op.ID,
		"workflow_id", op.WorkflowID, "status", status, "reason", reason)
	return o.Finish(ctx, op.AppID, op.WorkflowID, status, reason)
}

// closedOutcome is how an operation whose workflow has status ended: what to record
// (succeeded, failed with why, cancelled), or closed false while it runs.
func closedOutcome(status enumspb.WorkflowExecutionStatus, kind, workflowType string) (string, string, bool) {
	switch status {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return "", "", false
	case enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		return db.OperationFailed, fmt.Sprintf("the %s passed its deadline of %s and was stopped", kind, deadlineOf(workflowType)), true
	case enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		return db.OperationFailed, "the " + kind + "'s workflow was terminated", true
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		return db.OperationCancelled, "the " + kind + "'s workflow was cancelled", true
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return db.OperationSucceeded, "", true
	}
	return db.OperationFailed, "the " + kind + "'s workflow ended without recording its end", true
}
