package store

import (
	"context"
	"errors"
	"fmt"

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
	size, sum, err := a.backupStore().Checksum(in.DatabaseID, in.BackupID)
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
	if err := a.backupStore().Remove(in.DatabaseID, in.BackupID); err != nil {
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
	size, sum, err := a.backupStore().Checksum(in.DatabaseID, in.BackupID)
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

func (a *Activities) backupStore() backups.Store {
	if a.Backups == nil {
		return backups.FileStore{}
	}
	return a.Backups
}
