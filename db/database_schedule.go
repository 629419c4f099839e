package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// BackupSchedule is a database's scheduled-backup settings.
type BackupSchedule struct {
	IntervalSeconds int // 0: no scheduled backups
	Retention       int // how many scheduled backups are kept
}

// SetDatabaseBackupSchedule changes the backup schedule of an organization's database that is
// provisioning, available or suspended (its schedule's runs are skipped meanwhile), and answers the settings it had (to put back if the Temporal
// Schedule cannot follow) and the database as it is now. A database being deleted, or gone, is
// an InvalidStateError or ErrNotFound.
func (s *Store) SetDatabaseBackupSchedule(ctx context.Context, orgID, databaseID string, to BackupSchedule) (BackupSchedule, Database, error) {
	var before BackupSchedule
	var after Database
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, `SELECT status, backup_interval_seconds, backup_retention FROM databases
			WHERE id::text = $1 AND org_id::text = $2 AND status <> 'deleted' FOR UPDATE`, databaseID, orgID).
			Scan(&status, &before.IntervalSeconds, &before.Retention)
		if err != nil {
			return translate(err)
		}
		if status != DatabaseAvailable && status != DatabaseProvisioning && status != DatabaseSuspended {
			return &InvalidStateError{Reason: fmt.Sprintf("the database is %s: its backup schedule cannot change now", status)}
		}
		if _, err := tx.Exec(ctx, `UPDATE databases SET backup_interval_seconds = $2, backup_retention = $3, updated_at = now()
			WHERE id::text = $1`, databaseID, to.IntervalSeconds, to.Retention); err != nil {
			return translate(err)
		}
		after, err = scanDatabase(tx.QueryRow(ctx, `SELECT `+databaseColumns+databaseFrom+` WHERE d.id::text = $1`, databaseID))
		return err
	})
	if err != nil {
		var invalid *InvalidStateError
		if errors.Is(err, ErrNotFound) || errors.As(err, &invalid) {
			return BackupSchedule{}, Database{}, err
		}
		return BackupSchedule{}, Database{}, fmt.Errorf("set the backup schedule of database %s: %w", databaseID, err)
	}
	return before, after, nil
}
