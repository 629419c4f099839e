package workernode

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"

	"github.com/minio/minio-go/v7"
	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/activities/contract"
	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/activities/s3client"
	"github.com/skypanel/skypanel/secrets"
)

// backupTransfer is the node's docker.BackupTransfer: database backups go to the platform's
// backup store, and come back for a restore. The API says where each backup is kept (only for
// a database placed on this node): the file store is reached through the API with the node
// token, the S3 store directly, with credentials the API sealed for this node.
type backupTransfer struct {
	api     *APIClient // authenticated as the node
	secrets sealedOpener
}

// sealedOpener opens a value sealed under the node's own key (nodeSecrets).
type sealedOpener interface {
	Open(ctx context.Context, sealed string, label []byte) ([]byte, error)
}

var _ docker.BackupTransfer = backupTransfer{}

var hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func backupPath(databaseID, backupID string) string {
	return "/api/paas/agent/databases/" + url.PathEscape(databaseID) + "/backups/" + url.PathEscape(backupID)
}

// Upload streams body to the store and answers the size and SHA-256 the store received.
func (b backupTransfer) Upload(ctx context.Context, databaseID, backupID string, body io.Reader) (int64, string, error) {
	loc, err := b.location(ctx, databaseID, backupID, "the control plane refused the upload")
	if err != nil {
		return 0, "", err
	}
	if loc.Store == contract.BackupStoreS3 {
		return b.uploadS3(ctx, loc.S3, body)
	}
	resp, err := b.api.stream(ctx, http.MethodPut, backupPath(databaseID, backupID), body)
	if err != nil {
		return 0, "", refusedTransfer(err, "the control plane refused the upload")
	}
	defer resp.Body.Close()
	var out struct {
		SizeBytes *int64 `json:"size_bytes"`
		SHA256    string `json:"sha256"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&out); err != nil {
		return 0, "", fmt.Errorf("the store's answer to the upload: %w", err)
	}
	if out.SizeBytes == nil || *out.SizeBytes < 0 || !hexSHA256.MatchString(out.SHA256) {
		return 0, "", errors.New("the store answered the upload without its size or SHA-256")
	}
	return *out.SizeBytes, out.SHA256, nil
}

// Download opens the backup's bytes from the store; the caller closes them.
func (b backupTransfer) Download(ctx context.Context, databaseID, backupID string) (io.ReadCloser, error) {
	loc, err := b.location(ctx, databaseID, backupID, "the control plane refused it to this node")
	if err != nil {
		return nil, err
	}
	if loc.Store == contract.BackupStoreS3 {
		return b.downloadS3(ctx, loc.S3)
	}
	resp, err := b.api.stream(ctx, http.MethodGet, backupPath(databaseID, backupID), nil)
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) && se.Status == http.StatusNotFound {
			return nil, refusedTransfer(err, "the backup store does not hold it")
		}
		return nil, refusedTransfer(err, "the control plane refused it to this node")
	}
	return resp.Body, nil
}

// location asks the API where the backup is kept; refused says what a refusal means.
func (b backupTransfer) location(ctx context.Context, databaseID, backupID, refused string) (contract.BackupLocation, error) {
	var loc contract.BackupLocation
	resp, err := b.api.stream(ctx, http.MethodGet, backupPath(databaseID, backupID)+"/location", nil)
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) && se.Status == http.StatusNotFound {
			return loc, refusedTransfer(err, "the control plane knows no such backup")
		}
		return loc, refusedTransfer(err, refused)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&loc); err != nil {
		return loc, fmt.Errorf("where backup %s is kept: %w", backupID, err)
	}
	switch {
	case loc.Store == contract.BackupStoreS3 && loc.S3 != nil:
	case loc.Store == contract.BackupStoreFile:
	default:
		return loc, temporal.NewNonRetryableApplicationError(fmt.Sprintf("the control plane named a backup store this node does not know: %q", loc.Store),
			docker.ErrTypeBackupUnavailable, nil)
	}
	return loc, nil
}

// s3Client opens the sealed secret key and makes the client of the location's bucket.
func (b backupTransfer) s3Client(ctx context.Context, loc *contract.S3Location) (*minio.Client, error) {
	if b.secrets == nil {
		return nil, errors.New("the node cannot open the S3 store's credentials (no node keys)")
	}
	secret, err := b.secrets.Open(ctx, loc.SecretKeySealed, secrets.S3SecretKey())
	if err != nil {
		// Never the value: why it did not open.
		return nil, temporal.NewNonRetryableApplicationError("the S3 store's secret key does not open with this node's keys: "+secrets.Explain(err),
			docker.ErrTypeSecretUnavailable, nil)
	}
	client, err := s3client.New(loc.Endpoint, loc.Region, loc.AccessKeyID, string(secret))
	clear(secret)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), docker.ErrTypeBackupUnavailable, nil)
	}
	return client, nil
}

// uploadS3 streams body to the bucket (multipart: one part in memory at a time; an upload
// whose body breaks off is aborted, so no object of it is left) and answers the size and
// SHA-256 of what was sent. The control plane reads the object back before the backup counts.
func (b backupTransfer) uploadS3(ctx context.Context, loc *contract.S3Location, body io.Reader) (int64, string, error) {
	client, err := b.s3Client(ctx, loc)
	if err != nil {
		return 0, "", err
	}
	hash := sha256.New()
	info, err := client.PutObject(ctx, loc.Bucket, loc.Key, io.TeeReader(body, hash), -1,
		minio.PutObjectOptions{ContentType: "application/octet-stream", PartSize: s3client.PartSize})
	if err != nil {
		return 0, "", refusedS3(err, "the S3 store refused the upload")
	}
	return info.Size, hex.EncodeToString(hash.Sum(nil)), nil
}

// downloadS3 opens the backup's object in the bucket.
func (b backupTransfer) downloadS3(ctx context.Context, loc *contract.S3Location) (io.ReadCloser, error) {
	client, err := b.s3Client(ctx, loc)
	if err != nil {
		return nil, err
	}
	obj, err := client.GetObject(ctx, loc.Bucket, loc.Key, minio.GetObjectOptions{})
	if err == nil {
		_, err = obj.Stat()
		if err != nil {
			obj.Close()
		}
	}
	if err != nil {
		return nil, refusedS3(err, "the S3 store did not give the backup")
	}
	return obj, nil
}

// refusedS3 makes S3's 4xx answers (no such key or bucket, access denied) non-retryable
// BackupUnavailable errors; a network failure or a server error stays retryable.
func refusedS3(err error, why string) error {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout &&
		resp.StatusCode != http.StatusTooManyRequests {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s (HTTP %d %s): %s", why, resp.StatusCode, resp.Code, resp.Message),
			docker.ErrTypeBackupUnavailable, nil)
	}
	return fmt.Errorf("%s: %w", why, err)
}

// refusedTransfer turns an answer that asking again would not change (403, 404, 409, 413, …)
// into a non-retryable BackupUnavailable saying why; a network failure or a server error
// stays retryable.
func refusedTransfer(err error, why string) error {
	var se *StatusError
	if !errors.As(err, &se) || se.Temporary() {
		return err
	}
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s (HTTP %d): %s", why, se.Status, problemText(se)),
		docker.ErrTypeBackupUnavailable, nil)
}

// problemText is the detail of an API problem answer, or its title, or what problemDetail
// makes of the answer when it is not a problem.
func problemText(se *StatusError) string {
	var p struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal([]byte(se.Body), &p) == nil {
		if p.Detail != "" {
			return p.Detail
		}
		if p.Title != "" {
			return p.Title
		}
	}
	return problemDetail(se)
}

// backupsDir holds the backups a restore downloads: root's alone.
func backupsDir(cfg Config) string { return filepath.Join(cfg.DataDir, "backups") }

// prepareBackupsDir creates the backups directory (0700), and empties it of what a restore
// that stopped with the agent left: no restore runs before the worker starts.
func prepareBackupsDir(cfg Config) error {
	dir := backupsDir(cfg)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("backups dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("backups dir: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("backups dir: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("backups dir: %w", err)
		}
		slog.Info("removed a backup a stopped restore left", "file", e.Name())
	}
	return nil
}
