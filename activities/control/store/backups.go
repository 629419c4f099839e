package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/activities/control/backups"
	"github.com/skypanel/skypanel/db"
)

// ErrTypeBackupCorrupt: the stored backup's bytes do not match its checksum.
const ErrTypeBackupCorrupt = "BackupCorrupt"

// BackupRef names a backup of a database.
type BackupRef struct {
	DatabaseID string
	BackupID   string
}

// StartBackup marks the backup running.
func (a *Activities) StartBackup(ctx context.Context, in BackupRef) error {
	if err := a.Store.StartBackup(ctx, in.BackupID); err != nil {
		if errors.Is(err, db.ErrNotFound) {
			return temporal.NewNonRetryableApplicationError("the backup is no longer queued", "BackupNotFound", nil)
		}
		return err
	}
	return nil
}

// VerifyBackupInput is what the node says it sent.
type VerifyBackupInput struct {
	DatabaseID string
	BackupID   string
	SizeBytes  int64
	SHA256     string
}

// VerifyBackup reads the stored object back and completes the backup only if its size and
// SHA-256 are the ones the node computed while it streamed the dump: a store that lost or
// changed bytes never yields a "completed" backup.
func (a *Activities) VerifyBackup(ctx context.Context, in VerifyBackupInput) error {
	store, err := a.storeOf(ctx, in.BackupID)
	if err != nil {
		return err
	}
	size, sum, err := store.Checksum(ctx, in.DatabaseID, in.BackupID)
	if errors.Is(err, backups.ErrNotStored) {
		return temporal.NewNonRetryableApplicationError("the backup store holds no object for the backup: the upload was lost", ErrTypeBackupCorrupt, nil)
	}
	if err != nil {
		return err
	}
	if size != in.SizeBytes || sum != in.SHA256 {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"the stored backup does not match what the node sent (stored %d bytes, sha256 %s; sent %d bytes, sha256 %s)",
			size, sum, in.SizeBytes, in.SHA256), ErrTypeBackupCorrupt, nil)
	}
	return a.Store.CompleteBackup(ctx, in.BackupID, size, sum)
}

// FailBackupInput says why a backup failed.
type FailBackupInput struct {
	DatabaseID string
	BackupID   string
	Reason     string
}

// FailBackup records the failure and removes whatever the store holds of the backup.
func (a *Activities) FailBackup(ctx context.Context, in FailBackupInput) error {
	store, err := a.storeOf(ctx, in.BackupID)
	if errors.Is(err, db.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := store.Remove(ctx, in.DatabaseID, in.BackupID); err != nil {
		return err
	}
	return a.Store.FailBackup(ctx, in.BackupID, in.Reason)
}

// RestoreSource is a verified backup, as the node must find it again.
type RestoreSource struct {
	SizeBytes int64
	SHA256    string
}

// PrepareRestore checks, before anything is touched, that the backup is a completed backup of
// this database and that the stored object still has its recorded size and SHA-256; a
// corrupted one is refused (non-retryable BackupCorrupt) and nothing changes.
func (a *Activities) PrepareRestore(ctx context.Context, in BackupRef) (RestoreSource, error) {
	b, err := a.Store.BackupByID(ctx, in.BackupID)
	if errors.Is(err, db.ErrNotFound) || (err == nil && b.DatabaseID != in.DatabaseID) {
		return RestoreSource{}, temporal.NewNonRetryableApplicationError("no such backup of this database", "BackupNotFound", nil)
	}
	if err != nil {
		return RestoreSource{}, err
	}
	if b.Status != db.BackupCompleted || b.SizeBytes == nil || b.SHA256 == nil {
		return RestoreSource{}, temporal.NewNonRetryableApplicationError("the backup is "+b.Status+": only a completed backup can be restored", "BackupNotUsable", nil)
	}
	store, err := a.backupStores().Get(b.Store)
	if err != nil {
		return RestoreSource{}, temporal.NewNonRetryableApplicationError("the backup's store is not configured on this control plane: "+err.Error(), "BackupNotUsable", nil)
	}
	size, sum, err := store.Checksum(ctx, in.DatabaseID, in.BackupID)
	if errors.Is(err, backups.ErrNotStored) {
		return RestoreSource{}, temporal.NewNonRetryableApplicationError("the backup's stored object is gone: refused, nothing was changed", ErrTypeBackupCorrupt, nil)
	}
	if err != nil {
		return RestoreSource{}, err
	}
	if size != *b.SizeBytes || sum != *b.SHA256 {
		return RestoreSource{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"the backup's stored object does not match its checksum (sha256 %s, recorded %s): refused, nothing was changed", sum, *b.SHA256),
			ErrTypeBackupCorrupt, nil)
	}
	return RestoreSource{SizeBytes: size, SHA256: sum}, nil
}

func (a *Activities) backupStores() *backups.Stores {
	if a.Backups == nil {
		return &backups.Stores{File: backups.FileStore{}}
	}
	return a.Backups
}

// storeOf is the store backupID was recorded in: it is read from there whatever the
// database's store is now. A store this control plane lacks is a non-retryable failure.
func (a *Activities) storeOf(ctx context.Context, backupID string) (backups.Store, error) {
	b, err := a.Store.BackupByID(ctx, backupID)
	if err != nil {
		return nil, err
	}
	store, err := a.backupStores().Get(b.Store)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), "BackupStoreNotConfigured", nil)
	}
	return store, nil
}

// DatabaseSchedules keeps the databases' backup schedules in Temporal (cmd/skypanel wires
// sptemporal.EnsureDatabaseBackupSchedule / DeleteDatabaseBackupSchedule).
type DatabaseSchedules interface {
	Ensure(ctx context.Context, databaseID, orgID string, every time.Duration) error
	Delete(ctx context.Context, databaseID string) error
}

// DatabaseRef names a database.
type DatabaseRef struct {
	DatabaseID string
}

// EnsureBackupSchedule brings the database's backup schedule to its interval (none for 0).
func (a *Activities) EnsureBackupSchedule(ctx context.Context, in DatabaseRef) error {
	if a.Schedules == nil {
		return errors.New("store activities: Schedules is not set")
	}
	d, err := a.Store.DatabaseByID(ctx, in.DatabaseID)
	if err != nil {
		return err
	}
	return a.Schedules.Ensure(ctx, d.ID, d.OrgID, time.Duration(d.BackupIntervalSeconds)*time.Second)
}

// DeleteBackupSchedule removes the database's backup schedule.
func (a *Activities) DeleteBackupSchedule(ctx context.Context, in DatabaseRef) error {
	if a.Schedules == nil {
		return errors.New("store activities: Schedules is not set")
	}
	return a.Schedules.Delete(ctx, in.DatabaseID)
}

// QueueScheduledBackup queues a scheduled backup in the database's queue (through the owner)
// and returns its operation id; a database that is not available (suspended included), or
// whose suspension waits, is skipped ("").
func (a *Activities) QueueScheduledBackup(ctx context.Context, in DatabaseRef) (string, error) {
	d, err := a.Store.DatabaseByID(ctx, in.DatabaseID)
	if errors.Is(err, db.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if d.Status != db.DatabaseAvailable {
		return "", nil // a suspended database is stopped: its data cannot change, its last backup stands
	}
	// A suspension waiting in its queue would stop it before the backup's turn.
	suspending, err := a.Store.DatabaseOperationPending(ctx, d.ID, db.DatabaseOpSuspend)
	if err != nil || suspending {
		return "", err
	}
	return a.Operations.QueueDatabaseBackup(ctx, d.OrgID, d.ID, "scheduled", "schedule")
}

// PruneBackups applies the database's retention after a scheduled backup completed: its
// scheduled backups past the newest backup_retention ones go, stored object then row. A
// manual backup prunes nothing. It returns how many went.
func (a *Activities) PruneBackups(ctx context.Context, in BackupRef) (int, error) {
	b, err := a.Store.BackupByID(ctx, in.BackupID)
	if err != nil || b.Kind != "scheduled" {
		return 0, err
	}
	d, err := a.Store.DatabaseByID(ctx, in.DatabaseID)
	if err != nil {
		return 0, err
	}
	old, err := a.Store.ScheduledBackupsBeyond(ctx, in.DatabaseID, d.BackupRetention)
	if err != nil {
		return 0, err
	}
	for _, b := range old {
		store, err := a.backupStores().Get(b.Store)
		if err != nil {
			return 0, err
		}
		if err := store.Remove(ctx, b.DatabaseID, b.ID); err != nil {
			return 0, err
		}
		if err := a.Store.DeleteBackup(ctx, b.ID); err != nil {
			return 0, err
		}
	}
	return len(old), nil
}
