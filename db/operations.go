package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Operation statuses: queued, then running once its workflow is started, then one of the end
// states.
const (
	OperationQueued     = "queued"
	OperationRunning    = "running"
	OperationSucceeded  = "succeeded"
	OperationFailed     = "failed"
	OperationCancelled  = "cancelled"
	OperationSuperseded = "superseded"
)

// Deployment end states an operation's end gives its deployment.
const (
	DeploymentCancelled  = "cancelled"
	DeploymentSuperseded = "superseded"
)

// MaxQueuedOperations is how many operations may wait behind an app's running one.
const MaxQueuedOperations = 20

// QueueFullError refuses an operation when the app's queue holds MaxQueuedOperations already.
type QueueFullError struct{ Limit int }

func (e *QueueFullError) Error() string {
	return fmt.Sprintf("%d operations already wait on this application: wait for some to finish, or cancel some", e.Limit)
}

// Operation is one request on an app, from the moment it is accepted to its end.
type Operation struct {
	ID           string
	AppID        string
	OrgID        string
	Kind         string
	WorkflowType string
	WorkflowID   string
	Input        json.RawMessage
	DeploymentID *string
	RequestedBy  *string // the user who asked; nil when the platform did (RequestedVia says how)
	RequestedVia string
	Requester    string // the user's e-mail, when listed
	Status       string
	Reason       string
	SupersededBy *string
	// Position is 0 for the running operation and 1, 2, … for those waiting, in order; it is
	// set only by ListActiveOperations.
	Position   int
	CreatedAt  time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time
}

// Active says whether the operation is still queued or running.
func (o Operation) Active() bool { return o.Status == OperationQueued || o.Status == OperationRunning }

// NewOperation is an operation to queue. Input is the workflow's input, made from the
// operation's id (the deployment's id too, for a deploy).
type NewOperation struct {
	ID           string
	Kind         string
	WorkflowType string
	WorkflowID   string
	Input        any
	RequestedBy  string // user id, or "" for the platform
	RequestedVia string // "api", "billing", "convergence"
	// Reason says why the platform asked (a heal's shortfall); the operation's end replaces it
	// when it gives one.
	Reason string
	// OncePerKind: when an operation of the same kind already waits or runs on the app, that
	// one is returned instead of queueing another.
	OncePerKind bool
	// Commit is the exact commit a deploy builds ("" the branch's head). A deploy of a commit
	// already waiting or running on the app returns that one instead of queueing another.
	Commit string
}

const operationColumns = `o.id, o.app_id, oa.org_id, o.kind, o.workflow_type, o.workflow_id, o.input, o.deployment_id, o.requested_by,
	o.requested_via, coalesce(u.email, ''), o.status, o.reason, o.superseded_by, o.created_at, o.started_at, o.finished_at`

const operationFrom = ` FROM app_operations o JOIN applications oa ON oa.id = o.app_id LEFT JOIN users u ON u.id = o.requested_by `

func scanOperation(row pgx.Row) (Operation, error) {
	var o Operation
	err := row.Scan(&o.ID, &o.AppID, &o.OrgID, &o.Kind, &o.WorkflowType, &o.WorkflowID, &o.Input, &o.DeploymentID, &o.RequestedBy,
		&o.RequestedVia, &o.Requester, &o.Status, &o.Reason, &o.SupersededBy, &o.CreatedAt, &o.StartedAt, &o.FinishedAt)
	return o, err
}

// Enqueued is what EnqueueOperation did: the operation as recorded, and the operation whose
// workflow the caller must start now (nil while another runs).
type Enqueued struct {
	Operation Operation
	Start     *Operation
}

// EnqueueOperation accepts an operation on an app of orgID in one transaction:
//   - an app that is being deleted takes nothing more (*InvalidStateError);
//   - on an idle app the operation is checked against the app's state at once, as it would
//     run now (*InvalidStateError), and started;
//   - on a busy app it waits, checked when its turn comes; at most MaxQueuedOperations wait
//     (*QueueFullError), but a delete and billing's own operations are always taken;
//   - a deploy supersedes the deploys still waiting; a delete cancels everything waiting.
func (s *Store) EnqueueOperation(ctx context.Context, orgID, appID string, op NewOperation) (Enqueued, error) {
	var out Enqueued
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		out, err = enqueueOperation(ctx, tx, orgID, appID, op)
		return err
	})
	return out, translate(err)
}

// enqueueOperation is EnqueueOperation inside the caller's transaction (an environment change
// stores its variables and queues its rollout in one).
func enqueueOperation(ctx context.Context, tx pgx.Tx, orgID, appID string, op NewOperation) (Enqueued, error) {
	var status, gitURL, gitBranch string
	var current *string
	err := tx.QueryRow(ctx, `SELECT status, git_url, git_branch, current_deployment_id
		FROM applications WHERE id::text = $1 AND org_id = $2 FOR UPDATE`, appID, orgID).
		Scan(&status, &gitURL, &gitBranch, &current)
	if err != nil {
		return Enqueued{}, translate(err)
	}
	queued, running, deleting, err := queueState(ctx, tx, appID)
	if err != nil {
		return Enqueued{}, err
	}
	if deleting || status == AppDeleting {
		return Enqueued{}, &InvalidStateError{Reason: "the application is being deleted"}
	}
	if op.OncePerKind {
		same, err := scanOperation(tx.QueryRow(ctx, `SELECT `+operationColumns+operationFrom+`
			WHERE o.app_id = $1 AND o.kind = $2 AND o.status IN ('queued', 'running') ORDER BY o.seq LIMIT 1`, appID, op.Kind))
		if err == nil {
			return Enqueued{Operation: same}, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return Enqueued{}, fmt.Errorf("read the queue of app %s: %w", appID, err)
		}
	}
	if op.Kind == OpDeploy && op.Commit != "" {
		same, err := scanOperation(tx.QueryRow(ctx, `SELECT `+operationColumns+operationFrom+`
			JOIN deployments d ON d.id = o.deployment_id
			WHERE o.app_id = $1 AND o.kind = 'deploy' AND o.status IN ('queued', 'running') AND d.requested_commit = $2
			ORDER BY o.seq LIMIT 1`, appID, op.Commit))
		if err == nil {
			return Enqueued{Operation: same}, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return Enqueued{}, fmt.Errorf("read the queue of app %s: %w", appID, err)
		}
	}
	if queued+running == 0 {
		if err := checkOperationAllowed(op.Kind, status, current != nil); err != nil {
			return Enqueued{}, err
		}
	}
	// A delete is always taken (it cancels everything waiting), and so is the platform's own
	// suspension or resumption (at most one of each waits): money does not wait for a turn
	// that a customer's requests could keep full.
	if queued >= MaxQueuedOperations && op.Kind != OpDelete && !op.OncePerKind {
		return Enqueued{}, &QueueFullError{Limit: MaxQueuedOperations}
	}
	input, err := json.Marshal(op.Input)
	if err != nil {
		return Enqueued{}, fmt.Errorf("encode the input of %s: %w", op.WorkflowID, err)
	}
	var requestedBy, deploymentID *string
	if op.RequestedBy != "" {
		requestedBy = &op.RequestedBy
	}
	via := op.RequestedVia
	if via == "" {
		via = "api"
	}
	if op.Kind == OpDeploy {
		deploymentID = &op.ID
		if _, err := tx.Exec(ctx, `INSERT INTO deployments (id, app_id, workflow_id, git_url, git_branch, created_by, requested_commit)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, op.ID, appID, op.WorkflowID, gitURL, gitBranch, requestedBy, op.Commit); err != nil {
			return Enqueued{}, fmt.Errorf("record deployment: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO app_operations (id, app_id, kind, workflow_type, workflow_id, input, deployment_id, requested_by, requested_via, reason)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		op.ID, appID, op.Kind, op.WorkflowType, op.WorkflowID, input, deploymentID, requestedBy, via, op.Reason); err != nil {
		return Enqueued{}, fmt.Errorf("queue operation: %w", err)
	}
	switch op.Kind {
	case OpDeploy:
		// Only the newest waiting deploy is worth building: it builds the branch's latest commit.
		if err := endWaiting(ctx, tx, appID, op.ID, `kind = 'deploy'`, OperationSuperseded,
			"superseded by the newer deployment "+op.ID, &op.ID); err != nil {
			return Enqueued{}, err
		}
	case OpDelete:
		if err := endWaiting(ctx, tx, appID, op.ID, `true`, OperationCancelled,
			"cancelled: the application is being deleted", nil); err != nil {
			return Enqueued{}, err
		}
	}
	start, err := promoteNext(ctx, tx, appID)
	if err != nil {
		return Enqueued{}, err
	}
	recorded, err := scanOperation(tx.QueryRow(ctx, `SELECT `+operationColumns+operationFrom+` WHERE o.id = $1`, op.ID))
	if err != nil {
		return Enqueued{}, fmt.Errorf("read operation %s: %w", op.ID, err)
	}
	if recorded.Status == OperationQueued {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM app_operations WHERE app_id = $1 AND status = 'queued' AND seq <= (
				SELECT seq FROM app_operations WHERE id = $2)`, appID, op.ID).Scan(&recorded.Position); err != nil {
			return Enqueued{}, fmt.Errorf("read the queue of app %s: %w", appID, err)
		}
	}
	return Enqueued{Operation: recorded, Start: start}, nil
}

// queueState counts the app's waiting and running operations and says whether one of them is
// a delete. The caller holds the app's row lock.
func queueState(ctx context.Context, tx pgx.Tx, appID string) (queued, running int, deleting bool, err error) {
	err = tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'queued'), count(*) FILTER (WHERE status = 'running'),
			coalesce(bool_or(kind = 'delete'), false)
		FROM app_operations WHERE app_id::text = $1 AND status IN ('queued', 'running')`, appID).Scan(&queued, &running, &deleting)
	if err != nil {
		return 0, 0, false, fmt.Errorf("read the queue of app %s: %w", appID, err)
	}
	return queued, running, deleting, nil
}

// endWaiting ends the app's waiting operations that match where (other than except) with
// status and reason, and their deployments alike.
func endWaiting(ctx context.Context, tx pgx.Tx, appID, except, where, status, reason string, supersededBy *string) error {
	rows, err := tx.Query(ctx, `UPDATE app_operations SET status = $3, reason = $4, superseded_by = $5, finished_at = now()
		WHERE app_id = $1 AND id <> $2 AND status = 'queued' AND `+where+` RETURNING deployment_id`,
		appID, except, status, reason, supersededBy)
	if err != nil {
		return fmt.Errorf("end waiting operations of app %s: %w", appID, err)
	}
	deployments, err := collect(rows, func(row pgx.Row) (*string, error) {
		var id *string
		err := row.Scan(&id)
		return id, err
	})
	if err != nil {
		return err
	}
	for _, id := range deployments {
		if id == nil {
			continue
		}
		if err := endDeployment(ctx, tx, *id, status, reason, supersededBy); err != nil {
			return err
		}
	}
	return nil
}

// endDeployment gives a deployment that never ran (or was cancelled while it built) its end.
func endDeployment(ctx context.Context, tx pgx.Tx, deploymentID, operationStatus, reason string, supersededBy *string) error {
	status := DeploymentFailed
	switch operationStatus {
	case OperationCancelled:
		status = DeploymentCancelled
	case OperationSuperseded:
		status = DeploymentSuperseded
	}
	_, err := tx.Exec(ctx, `UPDATE deployments SET status = $2, failure_reason = $3, superseded_by = $4, finished_at = now()
		WHERE id = $1 AND status NOT IN ('succeeded', 'failed', 'cancelled', 'superseded')`, deploymentID, status, reason, supersededBy)
	if err != nil {
		return fmt.Errorf("end deployment %s: %w", deploymentID, err)
	}
	return nil
}

// promoteNext gives the app's turn to its first waiting operation when none runs, and returns
// the operation that runs (nil when none waits). An operation the app's state no longer allows
// (a stop queued behind another stop) ends failed with the reason and the next one is tried.
// When one runs already it is returned as it is: its workflow may not have been started yet
// (a crash between the two), and starting it again is harmless.
func promoteNext(ctx context.Context, tx pgx.Tx, appID string) (*Operation, error) {
	for {
		next, err := scanOperation(tx.QueryRow(ctx, `SELECT `+operationColumns+operationFrom+`
			WHERE o.app_id = $1 AND o.status IN ('queued', 'running') ORDER BY (o.status = 'running') DESC, o.seq LIMIT 1 FOR UPDATE OF o`, appID))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read the queue of app %s: %w", appID, err)
		}
		if next.Status == OperationRunning {
			return &next, nil
		}
		var status string
		var current *string
		if err := tx.QueryRow(ctx, `SELECT status, current_deployment_id FROM applications WHERE id = $1 FOR UPDATE`, appID).
			Scan(&status, &current); err != nil {
			return nil, translate(err)
		}
		if refused := checkOperationAllowed(next.Kind, status, current != nil); refused != nil {
			if err := finishOperation(ctx, tx, next, OperationFailed, refused.Error()); err != nil {
				return nil, err
			}
			continue
		}
		if _, err := tx.Exec(ctx, `UPDATE app_operations SET status = 'running', started_at = now() WHERE id = $1`, next.ID); err != nil {
			return nil, fmt.Errorf("start operation %s: %w", next.ID, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE applications SET active_workflow_id = $2,
				status = CASE WHEN $3 = 'delete' THEN 'deleting' ELSE status END, updated_at = now()
			WHERE id = $1`, appID, next.WorkflowID, next.Kind); err != nil {
			return nil, fmt.Errorf("start operation %s: %w", next.ID, err)
		}
		next.Status = OperationRunning
		return &next, nil
	}
}

// finishOperation ends an operation (and its deployment, when it did not get to record its
// own end) and frees the app for the next one.
func finishOperation(ctx context.Context, tx pgx.Tx, op Operation, status, reason string) error {
	if _, err := tx.Exec(ctx, `UPDATE app_operations SET status = $2, reason = CASE WHEN $3 = '' THEN reason ELSE $3 END, finished_at = now()
		WHERE id = $1`, op.ID, status, reason); err != nil {
		return fmt.Errorf("finish operation %s: %w", op.ID, err)
	}
	// Any operation of the owner's that succeeds (a deploy, a restart, …) gives a degraded app
	// a fresh start: the platform heals it again.
	if status == OperationSucceeded && op.Kind != OpHeal {
		if _, err := tx.Exec(ctx, `UPDATE applications SET degraded_reason = '', degraded_at = NULL WHERE id = $1 AND degraded_reason <> ''`,
			op.AppID); err != nil {
			return fmt.Errorf("clear degraded state of app %s: %w", op.AppID, err)
		}
	}
	if op.DeploymentID != nil && status != OperationSucceeded {
		if err := endDeployment(ctx, tx, *op.DeploymentID, status, reason, nil); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, `UPDATE applications SET active_workflow_id = NULL WHERE id = $1 AND active_workflow_id = $2`, op.AppID, op.WorkflowID)
	return err
}

// FinishOperation records the end of the operation whose workflow is workflowID (a no-op when
// it is recorded already, so a retry is harmless) and gives the app's turn to the next one,
// which it returns for the caller to start (nil when none waits).
func (s *Store) FinishOperation(ctx context.Context, appID, workflowID, status, reason string) (*Operation, error) {
	var next *Operation
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The app's row first, as EnqueueOperation takes it: an operation queued meanwhile is
		// either seen here and started, or sees this one ended and starts itself.
		if err := lockApp(ctx, tx, appID); err != nil {
			return err
		}
		op, err := scanOperation(tx.QueryRow(ctx, `SELECT `+operationColumns+operationFrom+` WHERE o.workflow_id = $1 FOR UPDATE OF o`, workflowID))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			// The app is gone (a delete's own record goes with it), or the workflow was started
			// before operations were queued.
		case err != nil:
			return fmt.Errorf("read operation of %s: %w", workflowID, err)
		case op.Status == OperationRunning:
			if err := finishOperation(ctx, tx, op, status, reason); err != nil {
				return err
			}
		}
		// A move that ended without its switch (failed, cancelled) releases the room it
		// reserved on its destination.
		if _, err := tx.Exec(ctx, `UPDATE applications SET active_workflow_id = CASE WHEN active_workflow_id = $2 THEN NULL ELSE active_workflow_id END,
				moving_to = NULL WHERE id::text = $1 AND (active_workflow_id = $2 OR moving_to IS NOT NULL)`, appID, workflowID); err != nil {
			return fmt.Errorf("free app %s: %w", appID, err)
		}
		next, err = promoteNext(ctx, tx, appID)
		return err
	})
	if errors.Is(translate(err), ErrNotFound) {
		return nil, nil
	}
	return next, translate(err)
}

// NextOperation gives the app's turn to its first waiting operation when none runs, and
// returns the one that runs (nil when none waits): how a queue whose start was lost resumes.
func (s *Store) NextOperation(ctx context.Context, appID string) (*Operation, error) {
	var next *Operation
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockApp(ctx, tx, appID); err != nil {
			return err
		}
		var err error
		next, err = promoteNext(ctx, tx, appID)
		return err
	})
	if errors.Is(translate(err), ErrNotFound) {
		return nil, nil
	}
	return next, translate(err)
}

// lockApp takes the app's row lock, which serializes every change of its queue.
func lockApp(ctx context.Context, tx pgx.Tx, appID string) error {
	var id string
	err := tx.QueryRow(ctx, `SELECT id::text FROM applications WHERE id::text = $1 FOR UPDATE`, appID).Scan(&id)
	if err != nil {
		return translate(err)
	}
	return nil
}

// AbandonOperation removes an operation whose workflow could not be started right after it was
// accepted, with its deployment: the request then changed nothing. It only applies to an
// operation that started at once, so nothing else waited behind it.
func (s *Store) AbandonOperation(ctx context.Context, op Operation) error {
	return translate(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM app_operations WHERE id = $1`, op.ID); err != nil {
			return err
		}
		if op.DeploymentID != nil {
			if _, err := tx.Exec(ctx, `DELETE FROM deployments WHERE id = $1`, *op.DeploymentID); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `UPDATE applications SET active_workflow_id = NULL,
				status = CASE WHEN status = 'deleting' THEN CASE WHEN current_deployment_id IS NULL THEN 'created' ELSE 'running' END ELSE status END
			WHERE id = $1 AND active_workflow_id = $2`, op.AppID, op.WorkflowID)
		return err
	}))
}

// OperationNotActiveError refuses to cancel an operation that has ended already.
type OperationNotActiveError struct{ Status string }

func (e *OperationNotActiveError) Error() string {
	return "the operation has ended already (" + e.Status + ")"
}

// CancelQueuedOperation cancels an operation of an app of orgID while it waits: it then never
// runs. It returns the operation as it is after the call: cancelled, or running (the caller
// decides whether a running one can be stopped), or an *OperationNotActiveError.
func (s *Store) CancelQueuedOperation(ctx context.Context, orgID, appID, operationID, reason string) (Operation, error) {
	var op Operation
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockApp(ctx, tx, appID); err != nil {
			return err
		}
		var err error
		op, err = scanOperation(tx.QueryRow(ctx, `SELECT `+operationColumns+operationFrom+`
			WHERE o.id::text = $1 AND o.app_id::text = $2 AND oa.org_id = $3 FOR UPDATE OF o`, operationID, appID, orgID))
		if err != nil {
			return translate(err)
		}
		switch op.Status {
		case OperationRunning:
			return nil
		case OperationQueued:
		default:
			return &OperationNotActiveError{Status: op.Status}
		}
		if err := finishOperation(ctx, tx, op, OperationCancelled, reason); err != nil {
			return err
		}
		op.Status, op.Reason = OperationCancelled, reason
		return nil
	})
	return op, translate(err)
}

// ListActiveOperations lists the running and waiting operations of an app of orgID, the
// running one first, each with its position.
func (s *Store) ListActiveOperations(ctx context.Context, orgID, appID string) ([]Operation, error) {
	if _, err := s.GetApplication(ctx, orgID, appID); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+operationColumns+operationFrom+`
		WHERE o.app_id::text = $1 AND o.status IN ('queued', 'running') ORDER BY (o.status = 'running') DESC, o.seq`, appID)
	if err != nil {
		return nil, fmt.Errorf("list operations of %s: %w", appID, err)
	}
	ops, err := collect(rows, scanOperation)
	if err != nil {
		return nil, err
	}
	position := 1
	for i := range ops {
		if ops[i].Status == OperationQueued {
			ops[i].Position = position
			position++
		}
	}
	return ops, nil
}

// ListEndedOperations returns the app's last limit operations that ended, newest first. The
// app must belong to orgID.
func (s *Store) ListEndedOperations(ctx context.Context, orgID, appID string, limit int) ([]Operation, error) {
	if _, err := s.GetApplication(ctx, orgID, appID); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+operationColumns+operationFrom+`
		WHERE o.app_id::text = $1 AND o.status NOT IN ('queued', 'running') ORDER BY o.seq DESC LIMIT $2`, appID, limit)
	if err != nil {
		return nil, fmt.Errorf("list ended operations of %s: %w", appID, err)
	}
	return collect(rows, scanOperation)
}

// GetOperation returns one operation of an app of orgID, whatever its status.
func (s *Store) GetOperation(ctx context.Context, orgID, appID, operationID string) (Operation, error) {
	op, err := scanOperation(s.pool.QueryRow(ctx, `SELECT `+operationColumns+operationFrom+`
		WHERE o.id::text = $1 AND o.app_id::text = $2 AND oa.org_id = $3`, operationID, appID, orgID))
	return op, translate(err)
}

// OperationByWorkflowID returns the operation a workflow carries out.
func (s *Store) OperationByWorkflowID(ctx context.Context, workflowID string) (Operation, error) {
	op, err := scanOperation(s.pool.QueryRow(ctx, `SELECT `+operationColumns+operationFrom+` WHERE o.workflow_id = $1`, workflowID))
	return op, translate(err)
}

// RunningOperations lists the operations running since before startedBefore: the ones whose
// workflow the platform checks on (started at all? ended without saying so?).
func (s *Store) RunningOperations(ctx context.Context, startedBefore time.Time) ([]Operation, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+operationColumns+operationFrom+`
		WHERE o.status = 'running' AND o.started_at < $1 ORDER BY o.seq`, startedBefore)
	if err != nil {
		return nil, fmt.Errorf("list running operations: %w", err)
	}
	return collect(rows, scanOperation)
}

// AppsWaitingWithoutRunning lists the apps with waiting operations and none running: their
// queue lost its turn (a crash between two operations) and must move on.
func (s *Store) AppsWaitingWithoutRunning(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT q.app_id::text FROM app_operations q
		WHERE q.status = 'queued' AND NOT EXISTS (
			SELECT 1 FROM app_operations r WHERE r.app_id = q.app_id AND r.status = 'running')`)
	if err != nil {
		return nil, fmt.Errorf("list stalled queues: %w", err)
	}
	return collect(rows, func(row pgx.Row) (string, error) {
		var id string
		err := row.Scan(&id)
		return id, err
	})
}

// HoldsTurn reports whether workflowID carries the app's running operation: the one workflow
// that may change the app now. A workflow started by any other way than the app's queue holds
// no turn.
func (s *Store) HoldsTurn(ctx context.Context, appID, workflowID string) (bool, error) {
	var held bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM app_operations
		WHERE app_id::text = $1 AND workflow_id = $2 AND status = 'running')`, appID, workflowID).Scan(&held)
	if err != nil {
		return false, fmt.Errorf("turn of app %s: %w", appID, err)
	}
	return held, nil
}

// AppStateMark is a value that changes whenever the app's recorded state does: the app row,
// and the start or end of any of its operations. A cache of what runs on the node for the app
// (the instance listing) is dropped when the mark moves.
func (s *Store) AppStateMark(ctx context.Context, appID string) (string, error) {
	var mark string
	err := s.pool.QueryRow(ctx, `SELECT concat_ws('|', a.updated_at, a.status, a.instances, a.current_deployment_id,
			(SELECT concat_ws('|', count(*), max(seq), max(started_at), max(finished_at)) FROM app_operations o WHERE o.app_id = a.id))
		FROM applications a WHERE a.id::text = $1`, appID).Scan(&mark)
	return mark, translate(err)
}
