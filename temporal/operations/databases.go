package operations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/db"
	sptemporal "github.com/skypanel/skypanel/temporal"
	"github.com/skypanel/skypanel/workflows"
)

// A managed database's operations queue in the database's own turn (db.EnqueueDatabaseOperation)
// and are started, finished and swept by the same owner as apps'.

// DatabaseRequest is one operation someone asks for on a database.
type DatabaseRequest struct {
	OrgID      string
	DatabaseID string
	Kind       string // db.DatabaseOp*
	UserID     string
	Via        string
	// BackupID is the backup a backup operation takes, or a restore restores.
	BackupID string
}

// databaseKind is how one database operation kind is carried out.
type databaseKind struct {
	workflow any
	deadline time.Duration
}

// databaseKinds lists every operation a database queues. A backup or a restore of a large
// database streams its dump for a long time (their activities heartbeat meanwhile).
var databaseKinds = map[string]databaseKind{
	// Provisioning waits for the first start (an initdb), bounded by the readiness activity.
	db.DatabaseOpProvision: {workflow: workflows.ProvisionDatabase, deadline: 20 * time.Minute},
	db.DatabaseOpDelete:    {workflow: workflows.DeleteDatabase, deadline: 20 * time.Minute},
	db.DatabaseOpBackup:    {workflow: workflows.BackupDatabase, deadline: 6 * time.Hour},
	db.DatabaseOpRestore:   {workflow: workflows.RestoreDatabase, deadline: 6 * time.Hour},
	// Billing's: a stop (the engine's clean shutdown) and a start waited healthy.
	db.DatabaseOpSuspend: {workflow: workflows.SuspendDatabase, deadline: 20 * time.Minute},
	db.DatabaseOpResume:  {workflow: workflows.ResumeDatabase, deadline: 20 * time.Minute},
}

func init() {
	for _, k := range databaseKinds {
		deadlines[workflowName(k.workflow)] = k.deadline
	}
}

// NewDatabaseOperation makes the operation for r, with a fresh id.
func NewDatabaseOperation(r DatabaseRequest) (db.NewOperation, error) {
	k, ok := databaseKinds[r.Kind]
	if !ok {
		return db.NewOperation{}, fmt.Errorf("unknown database operation kind %q", r.Kind)
	}
	id := newID()
	via := r.Via
	if via == "" {
		via = "api"
	}
	return db.NewOperation{
		ID: id, Kind: r.Kind, WorkflowType: workflowName(k.workflow),
		WorkflowID:  workflows.DatabaseOperationWorkflowID(r.Kind, r.DatabaseID, id),
		Input:       workflows.DatabaseOperationInput{DatabaseID: r.DatabaseID, OperationID: id, BackupID: r.BackupID},
		RequestedBy: r.UserID, RequestedVia: via,
	}, nil
}

// SubmitDatabase records r through enqueue (which may store more in the same transaction: a
// new database's row) and starts the database's turn. When the new operation should have
// started at once and its workflow cannot be started, the operation is removed (a provision
// takes its database along) and the request changed nothing (ErrUnavailable).
func (o *Owner) SubmitDatabase(ctx context.Context, r DatabaseRequest, enqueue func(db.NewOperation) (db.DatabaseEnqueued, error)) (db.DatabaseOperation, error) {
	op, err := NewDatabaseOperation(r)
	if err != nil {
		return db.DatabaseOperation{}, err
	}
	enq, err := enqueue(op)
	if err != nil {
		return db.DatabaseOperation{}, err
	}
	log := o.Log.With("database_id", r.DatabaseID, "operation", r.Kind, "operation_id", op.ID, "workflow_id", op.WorkflowID)
	if enq.Start == nil {
		log.InfoContext(ctx, "database operation queued")
		return enq.Operation, nil
	}
	if err := o.startDatabase(ctx, *enq.Start); err != nil {
		if enq.Start.ID != op.ID {
			log.ErrorContext(ctx, "start the database operation ahead", "ahead_workflow_id", enq.Start.WorkflowID, "error", err)
			return enq.Operation, nil
		}
		log.ErrorContext(ctx, "start workflow", "error", err)
		if abandonErr := o.Store.AbandonDatabaseOperation(context.WithoutCancel(ctx), *enq.Start); abandonErr != nil {
			log.ErrorContext(ctx, "abandon database operation", "error", abandonErr)
		}
		return db.DatabaseOperation{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if enq.Start.ID == op.ID {
		enq.Operation.Status = db.OperationRunning
	}
	log.InfoContext(ctx, "database operation accepted", "started", enq.Operation.Status == db.OperationRunning)
	return enq.Operation, nil
}

// QueueDatabaseBackup queues a backup the platform asks for (kind "scheduled", via
// "schedule") in the database's queue and returns its operation id.
func (o *Owner) QueueDatabaseBackup(ctx context.Context, orgID, databaseID, kind, via string) (string, error) {
	backupID := newID()
	op, err := o.SubmitDatabase(ctx, DatabaseRequest{OrgID: orgID, DatabaseID: databaseID, Kind: db.DatabaseOpBackup, Via: via, BackupID: backupID},
		func(op db.NewOperation) (db.DatabaseEnqueued, error) {
			return o.Store.QueueBackup(ctx, orgID, databaseID, backupID, kind, op)
		})
	if err != nil {
		return "", err
	}
	return op.ID, nil
}

// QueueDatabaseOperation queues an operation the platform asks for (billing's suspend or
// resume, via "billing") in the database's queue and returns its operation id.
func (o *Owner) QueueDatabaseOperation(ctx context.Context, orgID, databaseID, kind, via string) (string, error) {
	op, err := o.SubmitDatabase(ctx, DatabaseRequest{OrgID: orgID, DatabaseID: databaseID, Kind: kind, Via: via},
		func(op db.NewOperation) (db.DatabaseEnqueued, error) {
			return o.Store.EnqueueDatabaseOperation(ctx, orgID, databaseID, op)
		})
	if err != nil {
		return "", err
	}
	return op.ID, nil
}

// startDatabase starts the workflow of a database operation whose turn it is (a second start
// finds the first, as for apps).
func (o *Owner) startDatabase(ctx context.Context, op db.DatabaseOperation) error {
	_, err := o.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       op.WorkflowID,
		TaskQueue:                sptemporal.ControlTaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowExecutionTimeout: deadlineOf(op.WorkflowType),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			sptemporal.DatabaseIDKey.ValueSet(op.DatabaseID), sptemporal.OrgIDKey.ValueSet(op.OrgID)),
	}, op.WorkflowType, json.RawMessage(op.Input))
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("start %s: %w", op.WorkflowID, err)
	}
	o.Log.InfoContext(ctx, "database operation started", "database_id", op.DatabaseID, "operation", op.Kind, "operation_id", op.ID, "workflow_id", op.WorkflowID)
	return nil
}

// FinishDatabase records how the database operation of workflowID ended and starts the
// database's next operation.
func (o *Owner) FinishDatabase(ctx context.Context, databaseID, workflowID, status, reason string) error {
	next, err := o.Store.FinishDatabaseOperation(ctx, databaseID, workflowID, status, reason)
	if err != nil {
		return fmt.Errorf("finish database operation of %s: %w", workflowID, err)
	}
	if next == nil {
		return nil
	}
	return o.startDatabase(ctx, *next)
}

// sweepDatabases is Sweep for the databases' queues.
func (o *Owner) sweepDatabases(ctx context.Context, grace time.Duration) error {
	running, err := o.Store.RunningDatabaseOperations(ctx, time.Now().Add(-grace))
	if err != nil {
		return err
	}
	var errs []error
	for _, op := range running {
		desc, err := o.Temporal.DescribeWorkflowExecution(ctx, op.WorkflowID, "")
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			o.Log.WarnContext(ctx, "database operation had its turn but no workflow: starting it", "database_id", op.DatabaseID, "workflow_id", op.WorkflowID)
			errs = append(errs, o.startDatabase(ctx, op))
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("describe %s: %w", op.WorkflowID, err))
			continue
		}
		status, reason, closed := closedOutcome(desc.GetWorkflowExecutionInfo().GetStatus(), op.Kind, op.WorkflowType)
		if !closed {
			continue
		}
		o.Log.WarnContext(ctx, "database operation's workflow closed without recording its end", "database_id", op.DatabaseID,
			"workflow_id", op.WorkflowID, "status", status, "reason", reason)
		errs = append(errs, o.FinishDatabase(ctx, op.DatabaseID, op.WorkflowID, status, reason))
	}
	waiting, err := o.Store.DatabasesWaitingWithoutRunning(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, id := range waiting {
		next, err := o.Store.NextDatabaseOperation(ctx, id)
		if err == nil && next != nil {
			err = o.startDatabase(ctx, *next)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("database %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}
