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
// keyring is the one the agent was given; nil means none, and then the registration asks the
// API for the platform's and saves it as <data-dir>/secret.key. That is interim: until nodes
// get keys of their own (the node-gateway work), every node needs the platform's keyring to
// open the apps' variables and Temporal payloads. The keyring returned is the one to use.
//
// With gateway, the registration also asks for the node's gateway certificate, for a key made
// here, and saves what it gets there; without a certificate the agent renews with its token.
func ensureRegistered(ctx context.Context, cfg Config, api *APIClient, info SystemInfo, keyring *secrets.Keyring, gateway *gatewayIdentity) (Credentials, *secrets.Keyring, error) {
	path := cfg.credentialsPath()
	creds, ok, err := loadCredentials(path)
	if err != nil {
		return creds, nil, err
	}
	if ok {
		if keyring == nil {
			return creds, nil, fmt.Errorf("node %s is registered but has no keyring: set SKYPANEL_SECRET_KEY or --secret-key-file, "+
				"or register it again (remove %s and start with a new token from POST /api/paas/admin/nodes/%s/token)", creds.NodeID, path, creds.NodeID)
		}
		return creds, keyring, nil
	}
	if cfg.RegistrationToken == "" {
		return creds, nil, fmt.Errorf("this node is not registered (no %s): give --registration-token or SKYPANEL_REGISTRATION_TOKEN", path)
	}
	req := RegisterRequest{RegistrationToken: cfg.RegistrationToken, Hostname: info.Hostname, CPUs: info.CPUs, MemoryMB: info.MemoryMB,
		WantKeyring: keyring == nil}
	var key *ecdsa.PrivateKey
	if gateway != nil {
		if key, req.CSR, err = newKeyAndCSR(""); err != nil {
			return creds, nil, err
		}
	}
	delay := time.Second
	for {
		resp, err := api.Register(ctx, req)
		if err == nil {
			saveGatewayCertificate(ctx, gateway, key, resp.GatewayCertificate)
			return saveRegistration(ctx, cfg, resp, keyring)
		}
		if !retryable(err) {
			return creds, nil, fmt.Errorf("register node: the API refused the registration (is the token right, unused and not expired?): %w", err)
		}
		slog.WarnContext(ctx, "register node: API not reachable, retrying", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return creds, nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 30*time.Second)
	}
}

// saveRegistration keeps what the registration answered: the keyring first, when the agent
// asked for it, so a saved agent.json always has a keyring beside it. The token is spent either
// way, so the credentials are kept even when the keyring is not.
func saveRegistration(ctx context.Context, cfg Config, resp RegisterResponse, keyring *secrets.Keyring) (Credentials, *secrets.Keyring, error) {
	creds := Credentials{NodeID: resp.NodeID, NodeToken: resp.NodeToken}
	var keyringErr error
	if keyring == nil {
		keyring, keyringErr = saveKeyring(cfg.savedKeyringPath(), resp.Keyring)
	}
	if err := saveCredentials(cfg.credentialsPath(), creds); err != nil {
		return creds, nil, fmt.Errorf("save node credentials: %w", err)
	}
	if keyringErr != nil {
		return creds, nil, fmt.Errorf("registered as node %s, but %w: set SKYPANEL_SECRET_KEY or --secret-key-file and start the agent again", creds.NodeID, keyringErr)
	}
	slog.InfoContext(ctx, "registered node", "node_id", creds.NodeID, "task_queue", resp.TaskQueue, "keyring_saved", resp.Keyring != "" && keyringErr == nil)
	return creds, keyring, nil
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

// saveKeyring checks the keyring the API sent and writes it where later starts read it, for
// root only. Errors never carry key bytes.
func saveKeyring(path, spec string) (*secrets.Keyring, error) {
	if spec == "" {
		return nil, errors.New("the API sent no keyring")
	}
	ring, err := secrets.ParseKeyring(spec)
	if err != nil {
		return nil, fmt.Errorf("the API's keyring is unusable: %w", err)
	}
	if err := secrets.WriteFileAtomic(path, []byte(ring.Spec()+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("save the keyring: %w", err)
	}
	return ring, nil
}
