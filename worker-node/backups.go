package workernode

import (
	"context"
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

	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/activities/node/docker"
)

// backupTransfer is the node's docker.BackupTransfer: database backups go to the platform's
// backup store, and come back for a restore, through the API, authenticated with the node
// token. The API answers only for a database placed on this node.
type backupTransfer struct {
	api *APIClient // authenticated as the node
}

var _ docker.BackupTransfer = backupTransfer{}

var hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func backupPath(databaseID, backupID string) string {
	return "/api/paas/agent/databases/" + url.PathEscape(databaseID) + "/backups/" + url.PathEscape(backupID)
}

// Upload streams body to the store and answers the size and SHA-256 the store received.
func (b backupTransfer) Upload(ctx context.Context, databaseID, backupID string, body io.Reader) (int64, string, error) {
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
