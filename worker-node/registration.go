package workernode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/skypanel/skypanel/secrets"
)

// Credentials are the node's identity, saved in <data-dir>/agent.json (mode 0600) at
// registration and read on every later start.
type Credentials struct {
	NodeID    string `json:"node_id"`
	NodeToken string `json:"node_token"`
}

// loadCredentials reads agent.json; ok is false when there is none yet.
func loadCredentials(path string) (creds Credentials, ok bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return creds, false, nil
	}
	if err != nil {
		return creds, false, fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(data, &creds); err != nil {
		return creds, false, fmt.Errorf("read %s: %w", path, err)
	}
	if creds.NodeID == "" || creds.NodeToken == "" {
		return creds, false, fmt.Errorf("%s lacks node_id or node_token; remove it and register again", path)
	}
	return creds, true, nil
}

// saveCredentials writes agent.json atomically, readable by root only.
func saveCredentials(path string, creds Credentials) error {
	data, err := json.MarshalIndent(creds, "", "  ")
	if err != nil {
		return err
	}
	return secrets.WriteFileAtomic(path, append(data, '\n'), 0o600)
}

// ensureRegistered returns the saved credentials, or registers the node with the registration
// token and saves what the API answers. While the API is unreachable or failing it retries
// with backoff; a refused token ends it.
func ensureRegistered(ctx context.Context, cfg Config, api *APIClient, info SystemInfo) (Credentials, error) {
	path := cfg.credentialsPath()
	creds, ok, err := loadCredentials(path)
	if err != nil || ok {
		return creds, err
	}
	if cfg.RegistrationToken == "" {
		return creds, fmt.Errorf("this node is not registered (no %s): give --registration-token or SKYPANEL_REGISTRATION_TOKEN", path)
	}
	req := RegisterRequest{RegistrationToken: cfg.RegistrationToken, Hostname: info.Hostname, CPUs: info.CPUs, MemoryMB: info.MemoryMB}
	delay := time.Second
	for {
		resp, err := api.Register(ctx, req)
		if err == nil {
			creds = Credentials{NodeID: resp.NodeID, NodeToken: resp.NodeToken}
			if err := saveCredentials(path, creds); err != nil {
				return creds, fmt.Errorf("save node credentials: %w", err)
			}
			slog.InfoContext(ctx, "registered node", "node_id", creds.NodeID, "task_queue", resp.TaskQueue)
			return creds, nil
		}
		if !retryable(err) {
			return creds, fmt.Errorf("register node: the API refused the registration (is the token right and unused?): %w", err)
		}
		slog.WarnContext(ctx, "register node: API not reachable, retrying", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return creds, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 30*time.Second)
	}
}
