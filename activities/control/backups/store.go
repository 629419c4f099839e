// Package backups is the platform's store of database backups: where a node's dump lands and
// where a restore reads it from. The filesystem store keeps each backup as one file under a
// directory the API (which receives and serves the bytes, for the node that runs the database
// only) and the control worker (which checks the stored bytes against the node's checksum
// before a backup counts, and again before a restore) both reach.
package backups

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"github.com/skypanel/skypanel/db"
)

// Store keeps backups. ctx bounds the call (an S3 read-back ends with its activity); reading
// an opened backup stays within the ctx Open was given.
type Store interface {
	// Put stores body as backup backupID of databaseID (replacing a partial one) and returns
	// its size and SHA-256 (hex). A body larger than limit bytes (0: no limit) is refused.
	Put(ctx context.Context, databaseID, backupID string, body io.Reader, limit int64) (int64, string, error)
	// Open reads a stored backup.
	Open(ctx context.Context, databaseID, backupID string) (io.ReadCloser, int64, error)
	// Checksum reads a stored backup whole and returns its size and SHA-256 (hex).
	Checksum(ctx context.Context, databaseID, backupID string) (int64, string, error)
	// Remove deletes a stored backup (no error when it is absent).
	Remove(ctx context.Context, databaseID, backupID string) error
}

// ErrNotStored: the store holds no such backup.
var ErrNotStored = errors.New("the backup store holds no such backup")

// ErrTooLarge: a backup larger than the store takes.
var ErrTooLarge = errors.New("the backup is larger than the store takes")

// FileStore keeps backups as files: <Dir>/<databaseID>/<backupID>.dump, mode 0600.
type FileStore struct{ Dir string }

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func (s FileStore) path(databaseID, backupID string) (string, error) {
	if s.Dir == "" {
		return "", errors.New("the backup store has no directory (--backup-dir)")
	}
	if !uuidPattern.MatchString(databaseID) || !uuidPattern.MatchString(backupID) {
		return "", fmt.Errorf("invalid database or backup id")
	}
	return filepath.Join(s.Dir, databaseID, backupID+".dump"), nil
}

// Put writes the backup to a temporary file, syncs it and renames it into place: a reader
// never sees half a backup.
func (s FileStore) Put(_ context.Context, databaseID, backupID string, body io.Reader, limit int64) (int64, string, error) {
	path, err := s.path(databaseID, backupID)
	if err != nil {
		return 0, "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return 0, "", fmt.Errorf("backup store: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+backupID+".*")
	if err != nil {
		return 0, "", fmt.Errorf("backup store: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	hash := sha256.New()
	src := body
	if limit > 0 {
		src = io.LimitReader(body, limit+1)
	}
	n, err := io.Copy(io.MultiWriter(tmp, hash), src)
	if err == nil && limit > 0 && n > limit {
		err = ErrTooLarge
	}
	if err == nil {
		err = tmp.Sync()
	}
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return 0, "", fmt.Errorf("store backup %s: %w", backupID, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, "", fmt.Errorf("store backup %s: %w", backupID, err)
	}
	return n, hex.EncodeToString(hash.Sum(nil)), nil
}

// Open opens a stored backup and says its size.
func (s FileStore) Open(_ context.Context, databaseID, backupID string) (io.ReadCloser, int64, error) {
	path, err := s.path(databaseID, backupID)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, ErrNotStored
	}
	if err != nil {
		return nil, 0, fmt.Errorf("open backup %s: %w", backupID, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("open backup %s: %w", backupID, err)
	}
	return f, info.Size(), nil
}

// Checksum hashes a stored backup.
func (s FileStore) Checksum(ctx context.Context, databaseID, backupID string) (int64, string, error) {
	f, _, err := s.Open(ctx, databaseID, backupID)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	hash := sha256.New()
	n, err := io.Copy(hash, f)
	if err != nil {
		return 0, "", fmt.Errorf("read backup %s: %w", backupID, err)
	}
	return n, hex.EncodeToString(hash.Sum(nil)), nil
}

// Remove deletes a stored backup.
func (s FileStore) Remove(_ context.Context, databaseID, backupID string) error {
	path, err := s.path(databaseID, backupID)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove backup %s: %w", backupID, err)
	}
	return nil
}

// Stores are the platform's backup stores by name: the filesystem store always, the S3 store
// when the control plane is given a bucket. Default is the store of a database created without
// naming one.
type Stores struct {
	File    Store
	S3      *S3Store // nil: not configured
	Default string   // db.BackupStoreFile or db.BackupStoreS3
}

// ErrStoreNotConfigured: a backup names a store this control plane has not been given.
var ErrStoreNotConfigured = errors.New("that backup store is not configured on this control plane")

// Has says whether the store name is configured.
func (s *Stores) Has(name string) bool {
	_, err := s.Get(name)
	return err == nil
}

// Get is the store called name ("file" or "s3").
func (s *Stores) Get(name string) (Store, error) {
	switch {
	case s == nil:
		return nil, ErrStoreNotConfigured
	case name == db.BackupStoreFile && s.File != nil:
		return s.File, nil
	case name == db.BackupStoreS3 && s.S3 != nil:
		return s.S3, nil
	}
	return nil, fmt.Errorf("backup store %q: %w", name, ErrStoreNotConfigured)
}
