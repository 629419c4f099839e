package backups

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/skypanel/skypanel/activities/s3client"
	"github.com/skypanel/skypanel/db"
)

// S3Config is the platform's S3 bucket for backups. SecretKey is read from the environment or
// a file, never from a flag, and is never logged.
type S3Config struct {
	Endpoint  string // http(s)://host[:port]
	Region    string
	Bucket    string
	AccessKey string
	SecretKey string
}

// String never shows the secret key (a configuration printed with %v or %+v, or logged).
func (c S3Config) String() string {
	return fmt.Sprintf("S3Config{Endpoint:%s Region:%s Bucket:%s AccessKey:%s SecretKey:[redacted]}", c.Endpoint, c.Region, c.Bucket, c.AccessKey)
}

// GoString is String, for %#v.
func (c S3Config) GoString() string { return c.String() }

// LogValue is String, for log/slog.
func (c S3Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Validate checks that every setting is there and the endpoint is a URL.
func (c S3Config) Validate() error {
	var missing []string
	for _, f := range []struct{ name, value string }{
		{"s3-endpoint", c.Endpoint}, {"s3-region", c.Region}, {"s3-bucket", c.Bucket},
		{"s3-access-key", c.AccessKey}, {"s3 secret key (SKYPANEL_S3_SECRET_KEY or --s3-secret-key-file)", c.SecretKey},
	} {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the S3 backup store needs %s", strings.Join(missing, ", "))
	}
	_, _, err := s3client.SplitEndpoint(c.Endpoint)
	return err
}

// S3Store keeps backups as objects of one bucket, under db.BackupObjectKey.
type S3Store struct {
	Config S3Config
	client *minio.Client
}

// NewS3Store checks the configuration and makes the client (it does not dial).
func NewS3Store(cfg S3Config) (*S3Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client, err := s3client.New(cfg.Endpoint, cfg.Region, cfg.AccessKey, cfg.SecretKey)
	if err != nil {
		return nil, err
	}
	return &S3Store{Config: cfg, client: client}, nil
}

func (s *S3Store) key(databaseID, backupID string) (string, error) {
	if !uuidPattern.MatchString(databaseID) || !uuidPattern.MatchString(backupID) {
		return "", fmt.Errorf("invalid database or backup id")
	}
	return db.BackupObjectKey(databaseID, backupID), nil
}

// Put streams body to the bucket (multipart, one part in memory at a time) and returns the
// size and SHA-256 of what it sent.
func (s *S3Store) Put(ctx context.Context, databaseID, backupID string, body io.Reader, limit int64) (int64, string, error) {
	key, err := s.key(databaseID, backupID)
	if err != nil {
		return 0, "", err
	}
	hash := sha256.New()
	src := body
	if limit > 0 {
		src = io.LimitReader(body, limit+1)
	}
	info, err := s.client.PutObject(ctx, s.Config.Bucket, key, io.TeeReader(src, hash), -1,
		minio.PutObjectOptions{ContentType: "application/octet-stream", PartSize: s3client.PartSize})
	if err != nil {
		return 0, "", fmt.Errorf("store backup %s in S3: %w", backupID, err)
	}
	if limit > 0 && info.Size > limit {
		s.Remove(ctx, databaseID, backupID) //nolint:errcheck // refused anyway
		return 0, "", ErrTooLarge
	}
	return info.Size, hex.EncodeToString(hash.Sum(nil)), nil
}

// Open reads a stored backup from the bucket and says its size.
func (s *S3Store) Open(ctx context.Context, databaseID, backupID string) (io.ReadCloser, int64, error) {
	key, err := s.key(databaseID, backupID)
	if err != nil {
		return nil, 0, err
	}
	obj, err := s.client.GetObject(ctx, s.Config.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, 0, fmt.Errorf("open backup %s in S3: %w", backupID, err)
	}
	info, err := obj.Stat()
	if err != nil {
		obj.Close()
		if s3client.IsNotFound(err) {
			return nil, 0, ErrNotStored
		}
		return nil, 0, fmt.Errorf("open backup %s in S3: %w", backupID, err)
	}
	return obj, info.Size, nil
}

// Checksum reads the stored object back whole and hashes it.
func (s *S3Store) Checksum(ctx context.Context, databaseID, backupID string) (int64, string, error) {
	obj, _, err := s.Open(ctx, databaseID, backupID)
	if err != nil {
		return 0, "", err
	}
	defer obj.Close()
	hash := sha256.New()
	n, err := io.Copy(hash, obj)
	if err != nil {
		return 0, "", fmt.Errorf("read backup %s from S3: %w", backupID, err)
	}
	return n, hex.EncodeToString(hash.Sum(nil)), nil
}

// Remove deletes the object (S3 answers a delete of an absent key with success).
func (s *S3Store) Remove(ctx context.Context, databaseID, backupID string) error {
	key, err := s.key(databaseID, backupID)
	if err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.Config.Bucket, key, minio.RemoveObjectOptions{}); err != nil && !s3client.IsNotFound(err) {
		return fmt.Errorf("remove backup %s from S3: %w", backupID, err)
	}
	return nil
}
