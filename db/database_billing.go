package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// A database is billed while it runs for its owner: from when it becomes available until it
// is deleted or suspended (docs/databases.md, Billing). Its usage is one "instance" at its
// plan's price per hour, in the same usage segments and ledger as apps.

// DatabaseSuspended: the organization's wallet cannot pay for the database; its container is
// stopped, its volume and data kept, until funds are added.
const DatabaseSuspended = "suspended"

// Database operation kinds billing asks for.
const (
	DatabaseOpSuspend = "suspend"
	DatabaseOpResume  = "resume"
)

// suspendedDatabaseReason refuses what needs a suspended database's engine (a backup, a
// restore, a final backup): its container is stopped.
const suspendedDatabaseReason = "the database is suspended: its organization's wallet cannot pay for it, so its container is stopped (its data is kept). Add funds and it resumes by itself"

// databaseBilled tells whether a database in status costs money: it runs for its owner (a
// delete's final backup included).
func databaseBilled(status string) bool {
	return status == DatabaseAvailable || status == DatabaseDeleting
}

// syncDatabaseUsage makes the database's open usage segment match its state now, in tx: open
// while it is billed, at its plan's price. Call it in every transaction that changes a
// database's status; time is the transaction's.
func syncDatabaseUsage(ctx context.Context, tx pgx.Tx, databaseID string) error {
	var status, name, orgID string
	var price int64
	err := tx.QueryRow(ctx, `SELECT d.status, d.name, d.org_id, p.price_per_hour_minor
		FROM databases d JOIN database_plans p ON p.id = d.plan_id WHERE d.id::text = $1`, databaseID).Scan(&status, &name, &orgID, &price)
	gone := errors.Is(err, pgx.ErrNoRows)
	if err != nil && !gone {
		return fmt.Errorf("read database %s for usage: %w", databaseID, err)
	}
	billed := !gone && databaseBilled(status)
	var openID, openPrice int64
	err = tx.QueryRow(ctx, `SELECT id, price_per_hour FROM usage_segments WHERE database_id::text = $1 AND ended_at IS NULL FOR UPDATE`, databaseID).
		Scan(&openID, &openPrice)
	hasOpen := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("read usage of database %s: %w", databaseID, err)
	}
	if hasOpen && billed && openPrice == price {
		return nil
	}
	if hasOpen {
		if _, err := tx.Exec(ctx, `UPDATE usage_segments SET ended_at = now() WHERE id = $1`, openID); err != nil {
			return fmt.Errorf("close usage of database %s: %w", databaseID, err)
		}
	}
	if !billed {
		return nil
	}
	_, err = tx.Exec(ctx, `INSERT INTO usage_segments (subject_kind, database_id, database_name, org_id, instances, price_per_hour, currency, started_at)
		VALUES ('database', $1, $2, $3, 1, $4, (SELECT currency FROM wallets WHERE org_id = $3), now())`, databaseID, name, orgID, price)
	if err != nil {
		return fmt.Errorf("open usage of database %s: %w", databaseID, err)
	}
	return nil
}

// DatabasesWithStatus lists the ids of an organization's databases in status (available,
// suspended), oldest first.
func (s *Store) DatabasesWithStatus(ctx context.Context, orgID, status string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id::text FROM databases WHERE org_id::text = $1 AND status = $2 ORDER BY created_at, id`, orgID, status)
	if err != nil {
		return nil, fmt.Errorf("list %s databases: %w", status, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// DatabaseOperationPending tells whether an operation of kind waits or runs in the database's
// queue.
func (s *Store) DatabaseOperationPending(ctx context.Context, databaseID, kind string) (bool, error) {
	var pending bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM database_operations
		WHERE database_id::text = $1 AND kind = $2 AND status IN ('queued', 'running'))`, databaseID, kind).Scan(&pending)
	if err != nil {
		return false, fmt.Errorf("queue of database %s: %w", databaseID, err)
	}
	return pending, nil
}

// DatabaseUsageOpen tells whether the database has an open usage segment (it is being billed).
func (s *Store) DatabaseUsageOpen(ctx context.Context, databaseID string) (bool, error) {
	var open bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM usage_segments WHERE database_id::text = $1 AND ended_at IS NULL)`, databaseID).Scan(&open)
	if err != nil {
		return false, fmt.Errorf("usage of database %s: %w", databaseID, err)
	}
	return open, nil
}
