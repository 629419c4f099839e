package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Database operation kinds of backups.
const (
	DatabaseOpBackup  = "backup"
	DatabaseOpRestore = "restore"
)

// Backup statuses: a backup is completed only once its stored object was read back and matched
// the checksum the node computed.
const (
	BackupQueued    = "queued"
	BackupRunning   = "running"
	BackupCompleted = "completed"
	BackupFailed    = "failed"
)

// Backup is one backup of a managed database.
type Backup struct {
	ID          string
	DatabaseID  string
	Kind        string // manual, scheduled, final
	Status      string
	Store       string // BackupStoreFile or BackupStoreS3: where the backup was written
	ObjectKey   string // its key in that store
	SizeBytes   *int64
	SHA256      *string
	Error       string
	CreatedAt   time.Time
	StartedAt   *time.Time
	CompletedAt *time.Time
}

const backupColumns = `b.id::text, b.database_id::text, b.kind, b.status, b.store, b.object_key, b.size_bytes, b.sha256, b.error, b.created_at, b.started_at, b.completed_at`

func scanBackup(row pgx.Row) (Backup, error) {
	var b Backup
	err := row.Scan(&b.ID, &b.DatabaseID, &b.Kind, &b.Status, &b.Store, &b.ObjectKey, &b.SizeBytes, &b.SHA256, &b.Error, &b.CreatedAt, &b.StartedAt, &b.CompletedAt)
	return b, translate(err)
}

// QueueBackup records a backup of a database of orgID (queued) and queues the operation that
// takes it, in one transaction.
func (s *Store) QueueBackup(ctx context.Context, orgID, databaseID, backupID, kind string, op NewOperation) (DatabaseEnqueued, error) {
	var enq DatabaseEnqueued
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if enq, err = enqueueDatabaseOperation(ctx, tx, orgID, databaseID, op); err != nil {
			return err
		}
		return insertBackup(ctx, tx, databaseID, backupID, kind)
	})
	return enq, translate(err)
}

// BackupObjectKey is the key of a backup's object in its store: <database>/<backup>.dump.
func BackupObjectKey(databaseID, backupID string) string {
	return databaseID + "/" + backupID + ".dump"
}

// insertBackup records a queued backup in the database's backup store of the moment, with its
// object key: it is read back from there whatever the database's store is later.
func insertBackup(ctx context.Context, tx pgx.Tx, databaseID, backupID, kind string) error {
	_, err := tx.Exec(ctx, `INSERT INTO database_backups (id, database_id, kind, store, object_key)
		SELECT $1, d.id, $3, d.backup_store, $4 FROM databases d WHERE d.id::text = $2`,
		backupID, databaseID, kind, BackupObjectKey(databaseID, backupID))
	return err
}

// BackupNotUsableError refuses a restore from a backup that did not complete.
type BackupNotUsableError struct{ Status string }

func (e *BackupNotUsableError) Error() string {
	return "the backup is " + e.Status + ": only a completed backup can be restored"
}

// QueueRestore queues the restore of backupID into its own database (of orgID). A backup of
// another database, or another organization's, is ErrNotFound; one that did not complete is a
// *BackupNotUsableError.
func (s *Store) QueueRestore(ctx context.Context, orgID, databaseID, backupID string, op NewOperation) (DatabaseEnqueued, error) {
	var enq DatabaseEnqueued
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, `SELECT b.status FROM database_backups b JOIN databases d ON d.id = b.database_id
			WHERE b.id::text = $1 AND b.database_id::text = $2 AND d.org_id::text = $3`, backupID, databaseID, orgID).Scan(&status)
		if err != nil {
			return translate(err)
		}
		if status != BackupCompleted {
			return &BackupNotUsableError{Status: status}
		}
		enq, err = enqueueDatabaseOperation(ctx, tx, orgID, databaseID, op)
		return err
	})
	return enq, translate(err)
}

// ListBackups lists a database's backups, newest first. The database must be orgID's.
func (s *Store) ListBackups(ctx context.Context, orgID, databaseID string) ([]Backup, error) {
	// A deleted database's final backup is listed (and downloadable) until it expires.
	var id string
	if err := s.pool.QueryRow(ctx, `SELECT id::text FROM databases WHERE id::text = $1 AND org_id::text = $2`, databaseID, orgID).Scan(&id); err != nil {
		return nil, translate(err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+backupColumns+` FROM database_backups b WHERE b.database_id::text = $1
		ORDER BY b.created_at DESC, b.id`, databaseID)
	if err != nil {
		return nil, fmt.Errorf("list backups of database %s: %w", databaseID, err)
	}
	return collect(rows, scanBackup)
}

// BackupByID reads a backup (workflows).
func (s *Store) BackupByID(ctx context.Context, backupID string) (Backup, error) {
	return scanBackup(s.pool.QueryRow(ctx, `SELECT `+backupColumns+` FROM database_backups b WHERE b.id::text = $1`, backupID))
}

// StartBackup marks a queued backup running (again, after a retry).
func (s *Store) StartBackup(ctx context.Context, backupID string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE database_backups SET status = 'running', started_at = coalesce(started_at, now())
		WHERE id::text = $1 AND status IN ('queued', 'running')`, backupID)
	if err != nil {
		return fmt.Errorf("start backup %s: %w", backupID, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// CompleteBackup records a backup whose stored object was verified.
func (s *Store) CompleteBackup(ctx context.Context, backupID string, size int64, sha256Hex string) error {
	_, err := s.pool.Exec(ctx, `UPDATE database_backups SET status = 'completed', size_bytes = $2, sha256 = $3, error = '', completed_at = now()
		WHERE id::text = $1`, backupID, size, sha256Hex)
	if err != nil {
		return fmt.Errorf("complete backup %s: %w", backupID, err)
	}
	return nil
}

// FailBackup records why a backup failed.
func (s *Store) FailBackup(ctx context.Context, backupID, reason string) error {
	_, err := s.pool.Exec(ctx, `UPDATE database_backups SET status = 'failed', error = $2, completed_at = now()
		WHERE id::text = $1 AND status <> 'completed'`, backupID, reason)
	if err != nil {
		return fmt.Errorf("fail backup %s: %w", backupID, err)
	}
	return nil
}

// ErrBackupNotForNode refuses a node a backup of a database it does not run.
var ErrBackupNotForNode = errors.New("the backup is not of a database placed on this node")

// BackupForNode returns backup backupID of databaseID when the database is placed on nodeID
// (ErrBackupNotForNode otherwise, ErrNotFound for no such backup of that database): a node
// uploads and downloads only its own databases' backups.
func (s *Store) BackupForNode(ctx context.Context, databaseID, backupID, nodeID string) (Backup, error) {
	var placed bool
	b, err := scanBackup(s.pool.QueryRow(ctx, `SELECT `+backupColumns+` FROM database_backups b WHERE b.id::text = $1 AND b.database_id::text = $2`,
		backupID, databaseID))
	if err != nil {
		return Backup{}, err
	}
	if placed, err = s.DatabasePlacedFor(ctx, databaseID, nodeID); err != nil {
		return Backup{}, err
	}
	if !placed {
		return Backup{}, ErrBackupNotForNode
	}
	return b, nil
}

// ScheduledBackupsBeyond lists the database's completed scheduled backups past its newest keep
// ones (oldest last): what retention removes.
func (s *Store) ScheduledBackupsBeyond(ctx context.Context, databaseID string, keep int) ([]Backup, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+backupColumns+` FROM database_backups b WHERE b.database_id::text = $1 AND b.kind = 'scheduled'
		AND b.status = 'completed' ORDER BY b.created_at DESC, b.id OFFSET $2`, databaseID, keep)
	if err != nil {
		return nil, fmt.Errorf("scheduled backups of database %s: %w", databaseID, err)
	}
	return collect(rows, scanBackup)
}

// DeleteBackup removes a backup's row (its stored object goes first).
func (s *Store) DeleteBackup(ctx context.Context, backupID string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM database_backups WHERE id::text = $1`, backupID)
	if err != nil {
		return fmt.Errorf("delete backup %s: %w", backupID, err)
	}
	return nil
}

// QueueDelete queues a database's deletion and, unless finalBackupID is empty, records the
// final backup it takes first, in one transaction (a linked database is ErrDatabaseLinked).
func (s *Store) QueueDelete(ctx context.Context, orgID, databaseID, finalBackupID string, op NewOperation) (DatabaseEnqueued, error) {
	var enq DatabaseEnqueued
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if finalBackupID != "" {
			var status string
			err := tx.QueryRow(ctx, `SELECT status FROM databases WHERE id::text = $1 AND org_id::text = $2 AND status <> 'deleted' FOR UPDATE`,
				databaseID, orgID).Scan(&status)
			if err != nil {
				return translate(err)
			}
			if status == DatabaseSuspended {
				return &InvalidStateError{Reason: suspendedDatabaseReason + "; or delete it without a final backup (final_backup=false)"}
			}
		}
		var err error
		if enq, err = enqueueDatabaseOperation(ctx, tx, orgID, databaseID, op); err != nil || finalBackupID == "" {
			return err
		}
		return insertBackup(ctx, tx, databaseID, finalBackupID, "final")
	})
	return enq, translate(err)
}

// BackupOfOrg returns a backup of a database of orgID (deleted databases' included).
func (s *Store) BackupOfOrg(ctx context.Context, orgID, databaseID, backupID string) (Backup, error) {
	return scanBackup(s.pool.QueryRow(ctx, `SELECT `+backupColumns+` FROM database_backups b JOIN databases d ON d.id = b.database_id
		WHERE b.id::text = $1 AND b.database_id::text = $2 AND d.org_id::text = $3`, backupID, databaseID, orgID))
}

// ExpiredFinalBackups lists the final backups of deleted databases taken before cutoff: what
// the retention of final backups removes.
func (s *Store) ExpiredFinalBackups(ctx context.Context, cutoff time.Time) ([]Backup, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+backupColumns+` FROM database_backups b JOIN databases d ON d.id = b.database_id
		WHERE b.kind = 'final' AND d.status = 'deleted' AND b.created_at < $1 ORDER BY b.created_at`, cutoff)
	if err != nil {
		return nil, fmt.Errorf("expired final backups: %w", err)
	}
	return collect(rows, scanBackup)
}
