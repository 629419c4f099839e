package backups

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/skypanel/skypanel/activities/s3client/s3test"
	"github.com/skypanel/skypanel/db"
)

const (
	testDatabase = "11111111-2222-4333-8444-555555555555"
	testBackup   = "66666666-7777-4888-8999-aaaaaaaaaaaa"
)

// The S3 store against a real S3 server (versitygw): a backup goes in under
// <database>/<backup>.dump, comes back byte for byte with its size, hashes to the same SHA-256,
// a changed object hashes differently, and a removed one is ErrNotStored (a second remove is
// no error).
func TestS3StoreRoundTripsAgainstVersitygw(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	store, err := NewS3Store(S3Config{Endpoint: srv.Endpoint, Region: srv.Region, Bucket: srv.Bucket, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("PGDMP dump bytes "), 4096)
	size, sum, err := store.Put(ctx, testDatabase, testBackup, bytes.NewReader(data), 0)
	want := sha256.Sum256(data)
	if err != nil || size != int64(len(data)) || sum != hex.EncodeToString(want[:]) {
		t.Fatalf("Put: %d %s %v, want %d %x", size, sum, err, len(data), want)
	}
	info, err := srv.Client.StatObject(ctx, srv.Bucket, db.BackupObjectKey(testDatabase, testBackup), minio.StatObjectOptions{})
	if err != nil || info.Size != int64(len(data)) {
		t.Fatalf("the object in the bucket: %+v %v", info, err)
	}
	rc, n, err := store.Open(ctx, testDatabase, testBackup)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || n != int64(len(data)) || !bytes.Equal(got, data) {
		t.Fatalf("Open: %d bytes (said %d), %v", len(got), n, err)
	}
	if n, s, err := store.Checksum(ctx, testDatabase, testBackup); err != nil || n != size || s != sum {
		t.Fatalf("Checksum: %d %s %v, want %d %s", n, s, err, size, sum)
	}

	// Changed in the bucket: the checksum says so.
	data[len(data)/2] ^= 0xff
	if _, err := srv.Client.PutObject(ctx, srv.Bucket, db.BackupObjectKey(testDatabase, testBackup),
		bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, s, err := store.Checksum(ctx, testDatabase, testBackup); err != nil || s == sum {
		t.Fatalf("Checksum of a changed object: %s %v, want another sum than %s", s, err, sum)
	}

	if err := store.Remove(ctx, testDatabase, testBackup); err != nil {
		t.Fatal(err)
	}
	if err := store.Remove(ctx, testDatabase, testBackup); err != nil {
		t.Fatalf("removing an absent backup: %v", err)
	}
	if _, _, err := store.Checksum(ctx, testDatabase, testBackup); !errors.Is(err, ErrNotStored) {
		t.Fatalf("Checksum of a removed backup: %v, want ErrNotStored", err)
	}
	if _, _, err := store.Open(ctx, testDatabase, "not-an-id"); err == nil {
		t.Fatal("Open took an id that is not a uuid")
	}
}

// A body larger than the limit is refused and leaves no object.
func TestS3StoreRefusesABackupOverTheLimit(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	store, err := NewS3Store(S3Config{Endpoint: srv.Endpoint, Region: srv.Region, Bucket: srv.Bucket, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Put(ctx, testDatabase, testBackup, strings.NewReader("0123456789"), 5); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Put over the limit: %v, want ErrTooLarge", err)
	}
	if _, _, err := store.Open(ctx, testDatabase, testBackup); !errors.Is(err, ErrNotStored) {
		t.Fatalf("after a refused Put: %v, want ErrNotStored", err)
	}
}

// The configuration names what is missing, and never takes an endpoint that is not a URL.
func TestS3ConfigValidation(t *testing.T) {
	full := S3Config{Endpoint: "https://s3.example.com", Region: "eu-west-1", Bucket: "b", AccessKey: "a", SecretKey: "s"}
	if err := full.Validate(); err != nil {
		t.Fatalf("a full configuration: %v", err)
	}
	for _, c := range []struct {
		cfg  S3Config
		says string
	}{
		{S3Config{Endpoint: "https://s3.example.com", Region: "r", Bucket: "b", AccessKey: "a"}, "secret key"},
		{S3Config{Endpoint: "https://s3.example.com", Region: "r", AccessKey: "a", SecretKey: "s"}, "s3-bucket"},
		{S3Config{Endpoint: "s3.example.com", Region: "r", Bucket: "b", AccessKey: "a", SecretKey: "s"}, "want http(s)://host[:port]"},
		{S3Config{Endpoint: "https://user:pw@s3.example.com", Region: "r", Bucket: "b", AccessKey: "a", SecretKey: "s"}, "want http(s)://host[:port]"},
		{S3Config{Endpoint: "https://s3.example.com/path", Region: "r", Bucket: "b", AccessKey: "a", SecretKey: "s"}, "want http(s)://host[:port]"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%+v: %v, want an error saying %q", c.cfg, err, c.says)
		}
		if err != nil && c.cfg.SecretKey != "" && strings.Contains(err.Error(), c.cfg.SecretKey+"\"") {
			t.Errorf("the error quotes the secret key: %v", err)
		}
	}
}

// Stores gives each backup's store by name, and refuses one not configured.
func TestStoresGivesTheConfiguredStoresOnly(t *testing.T) {
	file := FileStore{Dir: t.TempDir()}
	stores := &Stores{File: file, Default: db.BackupStoreFile}
	if s, err := stores.Get(db.BackupStoreFile); err != nil || s != Store(file) {
		t.Errorf("Get(file): %v %v", s, err)
	}
	for _, name := range []string{db.BackupStoreS3, "tape", ""} {
		if _, err := stores.Get(name); !errors.Is(err, ErrStoreNotConfigured) {
			t.Errorf("Get(%q) without it: %v, want ErrStoreNotConfigured", name, err)
		}
	}
	var none *Stores
	if none.Has(db.BackupStoreFile) {
		t.Error("no stores has the file store")
	}
}

// The secret key never shows when a configuration is printed or logged.
func TestS3ConfigNeverPrintsTheSecretKey(t *testing.T) {
	cfg := S3Config{Endpoint: "https://s3.example.com", Region: "r", Bucket: "b", AccessKey: "a", SecretKey: "the-secret-value"}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "s3", cfg)
	for _, out := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprint(&cfg), logged.String()} {
		if strings.Contains(out, "the-secret-value") || !strings.Contains(out, "s3.example.com") {
			t.Errorf("printed: %s", out)
		}
	}
}
