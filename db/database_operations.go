package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// A database's operations (provision, delete, backup, restore; billing's suspend and resume) wait in a queue of
// its own and run one at a time in arrival order, under the same owner as apps' operations
// (temporal/operations): the same rules as app_operations, without deploys' superseding.

// Database operation kinds.
const (
	DatabaseOpProvision = "provision"
	DatabaseOpDelete    = "delete"
)

// DatabaseOperation is one request on a database, from its acceptance to its end.
type DatabaseOperation struct {
	ID           string
	DatabaseID   string
	OrgID        string
	Kind         string
	WorkflowType string
	WorkflowID   string
	Input        json.RawMessage
	RequestedBy  *string
	RequestedVia string
	Status       string
	Reason       string
	CreatedAt    time.Time
	StartedAt    *time.Time
	FinishedAt   *time.Time
}

const databaseOperationColumns = `o.id::text, o.database_id::text, od.org_id::text, o.kind, o.workflow_type, o.workflow_id, o.input, o.requested_by::text,
	o.requested_via, o.status, o.reason, o.created_at, o.started_at, o.finished_at`

const databaseOperationFrom = ` FROM database_operations o JOIN databases od ON od.id = o.database_id `

func scanDatabaseOperation(row pgx.Row) (DatabaseOperation, error) {
	var o DatabaseOperation
	err := row.Scan(&o.ID, &o.DatabaseID, &o.OrgID, &o.Kind, &o.WorkflowType, &o.WorkflowID, &o.Input, &o.RequestedBy,
		&o.RequestedVia, &o.Status, &o.Reason, &o.CreatedAt, &o.StartedAt, &o.FinishedAt)
	return o, err
}

// DatabaseEnqueued is what enqueueing did: the operation as recorded, and the one whose
// workflow the caller must start now (nil while another runs).
type DatabaseEnqueued struct {
	Operation DatabaseOperation
	Start     *DatabaseOperation
}

// EnqueueDatabaseOperation queues an operation on a database of orgID: a database being
// deleted takes nothing more, a delete is refused while apps are linked (ErrDatabaseLinked),
// at most MaxQueuedOperations wait (a delete is always taken).
func (s *Store) EnqueueDatabaseOperation(ctx context.Context, orgID, databaseID string, op NewOperation) (DatabaseEnqueued, error) {
	var out DatabaseEnqueued
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		out, err = enqueueDatabaseOperation(ctx, tx, orgID, databaseID, op)
		return err
	})
	return out, translate(err)
}

func enqueueDatabaseOperation(ctx context.Context, tx pgx.Tx, orgID, databaseID string, op NewOperation) (DatabaseEnqueued, error) {
	var status string
	if err := tx.QueryRow(ctx, `SELECT status FROM databases WHERE id::text = $1 AND org_id::text = $2 AND status <> 'deleted' FOR UPDATE`,
		databaseID, orgID).Scan(&status); err != nil {
		return DatabaseEnqueued{}, translate(err)
	}
	var queued int
	var deleting bool
	if err := tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'queued'), coalesce(bool_or(kind = 'delete'), false)
		FROM database_operations WHERE database_id::text = $1 AND status IN ('queued', 'running')`, databaseID).Scan(&queued, &deleting); err != nil {
		return DatabaseEnqueued{}, fmt.Errorf("read the queue of database %s: %w", databaseID, err)
	}
	if deleting || status == DatabaseDeleting {
		return DatabaseEnqueued{}, &InvalidStateError{Reason: "the database is being deleted"}
	}
	if status == DatabaseSuspended && (op.Kind == DatabaseOpBackup || op.Kind == DatabaseOpRestore) {
		return DatabaseEnqueued{}, &InvalidStateError{Reason: suspendedDatabaseReason}
	}
	if op.Kind == DatabaseOpDelete {
		var linked int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM app_database_links WHERE database_id::text = $1`, databaseID).Scan(&linked); err != nil {
			return DatabaseEnqueued{}, fmt.Errorf("links of database %s: %w", databaseID, err)
		}
		if linked > 0 {
			return DatabaseEnqueued{}, ErrDatabaseLinked
		}
	} else if queued >= MaxQueuedOperations {
		return DatabaseEnqueued{}, &QueueFullError{Limit: MaxQueuedOperations}
	}
	input, err := json.Marshal(op.Input)
	if err != nil {
		return DatabaseEnqueued{}, fmt.Errorf("encode the input of %s: %w", op.WorkflowID, err)
	}
	var requestedBy *string
	if op.RequestedBy != "" {
		requestedBy = &op.RequestedBy
	}
	via := op.RequestedVia
	if via == "" {
		via = "api"
	}
	if _, err := tx.Exec(ctx, `INSERT INTO database_operations (id, database_id, kind, workflow_type, workflow_id, input, requested_by, requested_via, reason)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		op.ID, databaseID, op.Kind, op.WorkflowType, op.WorkflowID, input, requestedBy, via, op.Reason); err != nil {
		return DatabaseEnqueued{}, fmt.Errorf("queue database operation: %w", err)
	}
	if op.Kind == DatabaseOpDelete {
		if _, err := tx.Exec(ctx, `UPDATE database_operations SET status = 'cancelled', reason = 'cancelled: the database is being deleted', finished_at = now()
			WHERE database_id = $1 AND id <> $2 AND status = 'queued'`, databaseID, op.ID); err != nil {
			return DatabaseEnqueued{}, fmt.Errorf("cancel the waiting operations of database %s: %w", databaseID, err)
		}
	}
	start, err := promoteNextDatabaseOperation(ctx, tx, databaseID)
	if err != nil {
		return DatabaseEnqueued{}, err
	}
	recorded, err := scanDatabaseOperation(tx.QueryRow(ctx, `SELECT `+databaseOperationColumns+databaseOperationFrom+` WHERE o.id = $1`, op.ID))
	if err != nil {
		return DatabaseEnqueued{}, fmt.Errorf("read database operation %s: %w", op.ID, err)
	}
	return DatabaseEnqueued{Operation: recorded, Start: start}, nil
}

// promoteNextDatabaseOperation gives the database's turn to its first waiting operation when
// none runs, and returns the one that runs (nil when none waits).
func promoteNextDatabaseOperation(ctx context.Context, tx pgx.Tx, databaseID string) (*DatabaseOperation, error) {
	next, err := scanDatabaseOperation(tx.QueryRow(ctx, `SELECT `+databaseOperationColumns+databaseOperationFrom+`
		WHERE o.database_id::text = $1 AND o.status IN ('queued', 'running') ORDER BY (o.status = 'running') DESC, o.seq LIMIT 1 FOR UPDATE OF o`, databaseID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the queue of database %s: %w", databaseID, err)
	}
	if next.Status == OperationRunning {
		return &next, nil
	}
	if _, err := tx.Exec(ctx, `UPDATE database_operations SET status = 'running', started_at = now() WHERE id = $1`, next.ID); err != nil {
		return nil, fmt.Errorf("start database operation %s: %w", next.ID, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE databases SET active_workflow_id = $2,
			status = CASE WHEN $3 = 'delete' AND status <> 'suspended' THEN 'deleting' ELSE status END, updated_at = now()
		WHERE id::text = $1`, databaseID, next.WorkflowID, next.Kind); err != nil {
		return nil, fmt.Errorf("start database operation %s: %w", next.ID, err)
	}
	next.Status = OperationRunning
	return &next, nil
}

func lockDatabase(ctx context.Context, tx pgx.Tx, databaseID string) error {
	var id string
	return translate(tx.QueryRow(ctx, `SELECT id::text FROM databases WHERE id::text = $1 FOR UPDATE`, databaseID).Scan(&id))
}

// FinishDatabaseOperation records the end of the operation whose workflow is workflowID (a
// no-op when recorded already) and gives the database's turn to the next one, which it
// returns for the caller to start.
func (s *Store) FinishDatabaseOperation(ctx context.Context, databaseID, workflowID, status, reason string) (*DatabaseOperation, error) {
	var next *DatabaseOperation
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockDatabase(ctx, tx, databaseID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE database_operations SET status = $2, reason = CASE WHEN $3 = '' THEN reason ELSE $3 END, finished_at = now()
			WHERE workflow_id = $1 AND status = 'running'`, workflowID, status, reason); err != nil {
			return fmt.Errorf("finish database operation of %s: %w", workflowID, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE databases SET active_workflow_id = NULL WHERE id::text = $1 AND active_workflow_id = $2`,
			databaseID, workflowID); err != nil {
			return fmt.Errorf("free database %s: %w", databaseID, err)
		}
		var err error
		next, err = promoteNextDatabaseOperation(ctx, tx, databaseID)
		return err
	})
	if errors.Is(translate(err), ErrNotFound) {
		return nil, nil
	}
	return next, translate(err)
}

// NextDatabaseOperation gives the database's turn to its first waiting operation when none
// runs, and returns the one that runs (nil when none waits).
func (s *Store) NextDatabaseOperation(ctx context.Context, databaseID string) (*DatabaseOperation, error) {
	var next *DatabaseOperation
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockDatabase(ctx, tx, databaseID); err != nil {
			return err
		}
		var err error
		next, err = promoteNextDatabaseOperation(ctx, tx, databaseID)
		return err
	})
	if errors.Is(translate(err), ErrNotFound) {
		return nil, nil
	}
	return next, translate(err)
}

// AbandonDatabaseOperation removes an operation whose workflow could not be started right
// after it was accepted; a provision takes its database along (the request changed nothing).
func (s *Store) AbandonDatabaseOperation(ctx context.Context, op DatabaseOperation) error {
	return translate(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM database_operations WHERE id = $1`, op.ID); err != nil {
			return err
		}
		if op.Kind == DatabaseOpProvision {
			_, err := tx.Exec(ctx, `DELETE FROM databases WHERE id::text = $1 AND status = 'provisioning'`, op.DatabaseID)
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE databases SET active_workflow_id = NULL,
				status = CASE WHEN status = 'deleting' THEN 'available' ELSE status END
			WHERE id::text = $1 AND active_workflow_id = $2`, op.DatabaseID, op.WorkflowID)
		return err
	}))
}

// ListDatabaseOperations lists a database's operations, newest first (at most limit).
func (s *Store) ListDatabaseOperations(ctx context.Context, orgID, databaseID string, limit int) ([]DatabaseOperation, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+databaseOperationColumns+databaseOperationFrom+`
		WHERE o.database_id::text = $1 AND od.org_id::text = $2 ORDER BY o.seq DESC LIMIT $3`, databaseID, orgID, limit)
	if err != nil {
		return nil, fmt.Errorf("list operations of database %s: %w", databaseID, err)
	}
	return collect(rows, scanDatabaseOperation)
}

// RunningDatabaseOperations lists the database operations running since before startedBefore.
func (s *Store) RunningDatabaseOperations(ctx context.Context, startedBefore time.Time) ([]DatabaseOperation, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+databaseOperationColumns+databaseOperationFrom+`
		WHERE o.status = 'running' AND o.started_at < $1 ORDER BY o.seq`, startedBefore)
	if err != nil {
		return nil, fmt.Errorf("list running database operations: %w", err)
	}
	return collect(rows, scanDatabaseOperation)
}

// DatabasesWaitingWithoutRunning lists the databases with waiting operations and none running.
func (s *Store) DatabasesWaitingWithoutRunning(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT q.database_id::text FROM database_operations q
		WHERE q.status = 'queued' AND NOT EXISTS (
			SELECT 1 FROM database_operations r WHERE r.database_id = q.database_id AND r.status = 'running')`)
	if err != nil {
		return nil, fmt.Errorf("list stalled database queues: %w", err)
	}
	return collect(rows, func(row pgx.Row) (string, error) {
		var id string
		err := row.Scan(&id)
		return id, err
	})
}

// HoldsDatabaseTurn reports whether workflowID carries the database's running operation.
func (s *Store) HoldsDatabaseTurn(ctx context.Context, databaseID, workflowID string) (bool, error) {
	var held bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM database_operations
		WHERE database_id::text = $1 AND workflow_id = $2 AND status = 'running')`, databaseID, workflowID).Scan(&held)
	if err != nil {
		return false, fmt.Errorf("turn of database %s: %w", databaseID, err)
	}
	return held, nil
}
