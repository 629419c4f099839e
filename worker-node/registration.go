package workernode

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
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
//
// With gateway, the registration also asks for the node's gateway certificate, for a key made
// here, and saves what it gets there; without a certificate the agent renews with its token.
// The node never gets the platform's keyring: it has keys of its own (nodeSecrets).
func ensureRegistered(ctx context.Context, cfg Config, api *APIClient, info SystemInfo, gateway *gatewayIdentity) (Credentials, error) {
	path := cfg.credentialsPath()
	creds, ok, err := loadCredentials(path)
	if err != nil || ok {
		return creds, err
	}
	if cfg.RegistrationToken == "" {
		return creds, fmt.Errorf("this node is not registered (no %s): give --registration-token or SKYPANEL_REGISTRATION_TOKEN", path)
	}
	req := RegisterRequest{RegistrationToken: cfg.RegistrationToken, Hostname: info.Hostname, CPUs: info.CPUs, MemoryMB: info.MemoryMB}
	var key *ecdsa.PrivateKey
	if gateway != nil {
		if key, req.CSR, err = newKeyAndCSR(""); err != nil {
			return creds, err
		}
	}
	delay := time.Second
	for {
		resp, err := api.Register(ctx, req)
		if err == nil {
			saveGatewayCertificate(ctx, gateway, key, resp.GatewayCertificate)
			creds = Credentials{NodeID: resp.NodeID, NodeToken: resp.NodeToken}
			if err := saveCredentials(path, creds); err != nil {
				return creds, fmt.Errorf("save node credentials: %w", err)
			}
			slog.InfoContext(ctx, "registered node", "node_id", creds.NodeID, "task_queue", resp.TaskQueue)
			return creds, nil
		}
		if !retryable(err) {
			return creds, fmt.Errorf("register node: the API refused the registration (is the token right, unused and not expired?): %w", err)
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

// removeLeftoverKeyring deletes the platform keyring an agent of an earlier version saved at
// registration (<data-dir>/secret.key): a node holds keys of its own now, and a copy of the
// platform's on a node is exactly what must not be there.
func removeLeftoverKeyring(ctx context.Context, cfg Config) {
	path := filepath.Join(cfg.DataDir, "secret.key")
	if err := os.Remove(path); err == nil {
		slog.WarnContext(ctx, "removed the platform keyring an earlier agent saved on this node: nodes use keys of their own", "file", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		slog.ErrorContext(ctx, "could not remove the platform keyring an earlier agent saved on this node", "file", path, "err", err)
	}
}

// saveGatewayCertificate keeps the certificate the registration brought. Without one (not
// issued, or not usable) the agent gets one with its node token right after.
func saveGatewayCertificate(ctx context.Context, gateway *gatewayIdentity, key *ecdsa.PrivateKey, issued *GatewayCertificate) {
	if gateway == nil || issued == nil {
		return
	}
	if _, err := gateway.save(key, *issued); err != nil {
		slog.WarnContext(ctx, "the registration's gateway certificate is unusable; renewing it", "err", err)
	}
}
