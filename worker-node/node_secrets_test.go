package workernode

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/activities/node/gitclone"
	"github.com/skypanel/skypanel/secrets"
)

// The node opens an app's values through the API, under keys of its own: an app placed on it
// opens (after a rotation too); one that is not gets a non-retryable refusal that says so.
func TestNodeSecretsOpenAppValuesWithTheNodesOwnKeys(t *testing.T) {
	ctx := context.Background()
	api := newFakeAPI(t)
	platform, err := secrets.NewKeyring("k1")
	if err != nil {
		t.Fatal(err)
	}
	api.platform, api.placed = platform, map[string]bool{"app-1": true}
	node := &nodeSecrets{api: NewAPIClient(api.URL, testNodeToken)}
	if err := node.fetch(ctx); err != nil {
		t.Fatal(err)
	}
	if ids := node.current().IDs(); len(ids) != 1 || platform.Has(ids[0]) {
		t.Fatalf("the node's keys %v: want one of its own", ids)
	}
	seal := func(app, key, value string) docker.SealedVar {
		sealed, err := platform.Encrypt([]byte(value), secrets.AppEnvValue(app, key))
		if err != nil {
			t.Fatal(err)
		}
		return docker.SealedVar{Key: key, Sealed: sealed}
	}

	env, err := node.OpenEnv(ctx, "app-1", []docker.SealedVar{seal("app-1", "DB_PASSWORD", "hunter2")})
	if err != nil || env["DB_PASSWORD"] != "hunter2" {
		t.Fatalf("open app-1's value: %v %v", env, err)
	}

	// Rotated elsewhere (the API made a new key): the node fetches its keys again, once.
	if err := node.api.post(ctx, "/api/paas/agent/keys", map[string]bool{"rotate": true}, nil); err != nil {
		t.Fatal(err)
	}
	env, err = node.OpenEnv(ctx, "app-1", []docker.SealedVar{seal("app-1", "DB_PASSWORD", "rotated")})
	if err != nil || env["DB_PASSWORD"] != "rotated" || len(node.current().IDs()) != 2 {
		t.Fatalf("after a rotation: %v %v (keys %v)", env, err, node.current().IDs())
	}

	_, err = node.OpenEnv(ctx, "app-2", []docker.SealedVar{seal("app-2", "DB_PASSWORD", "not yours")})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != docker.ErrTypeSecretUnavailable || !appErr.NonRetryable() ||
		!strings.Contains(err.Error(), "not placed on this node") || strings.Contains(err.Error(), "not yours") {
		t.Errorf("an app placed elsewhere: %v, want a non-retryable refusal without the value", err)
	}
}

// A database's password opens through the API, under the node's own keys: for a database
// placed on the node (after a rotation too); one placed elsewhere, or a password sealed for
// another database, gets a non-retryable refusal that never quotes the password.
func TestNodeSecretsOpenDatabasePasswords(t *testing.T) {
	ctx := context.Background()
	api := newFakeAPI(t)
	platform, err := secrets.NewKeyring("k1")
	if err != nil {
		t.Fatal(err)
	}
	api.platform, api.placedDatabases = platform, map[string]bool{"db-1": true}
	node := &nodeSecrets{api: NewAPIClient(api.URL, testNodeToken)}
	if err := node.fetch(ctx); err != nil {
		t.Fatal(err)
	}
	seal := func(databaseID, password string) string {
		sealed, err := platform.Encrypt([]byte(password), secrets.DatabasePassword(databaseID))
		if err != nil {
			t.Fatal(err)
		}
		return sealed
	}

	if password, err := node.OpenDatabasePassword(ctx, "db-1", seal("db-1", "hunter2-db")); err != nil || password != "hunter2-db" {
		t.Fatalf("open db-1's password: %q %v", password, err)
	}

	// Rotated elsewhere (the API made a new key): the node fetches its keys again, once.
	if err := node.api.post(ctx, "/api/paas/agent/keys", map[string]bool{"rotate": true}, nil); err != nil {
		t.Fatal(err)
	}
	calls := api.keyCallCount()
	if password, err := node.OpenDatabasePassword(ctx, "db-1", seal("db-1", "rotated-db")); err != nil || password != "rotated-db" {
		t.Fatalf("after a rotation: %q %v (keys %v)", password, err, node.current().IDs())
	}
	if got := api.keyCallCount() - calls; got != 1 || len(node.current().IDs()) != 2 {
		t.Errorf("after a rotation the node fetched its keys %d times and holds %v, want once and two keys", got, node.current().IDs())
	}

	for name, c := range map[string]struct{ databaseID, sealed, want string }{
		"placed elsewhere":            {"db-2", seal("db-2", "not-yours-db"), "not placed on this node"},
		"sealed for another database": {"db-1", seal("db-2", "not-yours-db"), "does not open"},
	} {
		_, err := node.OpenDatabasePassword(ctx, c.databaseID, c.sealed)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != docker.ErrTypeSecretUnavailable || !appErr.NonRetryable() ||
			!strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "not-yours-db") {
			t.Errorf("%s: %v, want a non-retryable refusal saying %q, without the password", name, err, c.want)
		}
	}
}

// A clone's GitHub token opens through the API under the node's own keys, for the deployment it
// was sealed for (after a rotation too); a disconnected GitHub, an app placed elsewhere or a
// token sealed for another deployment get a non-retryable CredentialsRefused error in the
// API's words (reconnect GitHub), never quoting the token.
func TestNodeSecretsOpenGitHubCloneTokens(t *testing.T) {
	ctx := context.Background()
	api := newFakeAPI(t)
	platform, err := secrets.NewKeyring("k1")
	if err != nil {
		t.Fatal(err)
	}
	api.platform = platform
	api.placed = map[string]bool{"app-1": true, "app-gone": true}
	api.githubTokens = map[string]string{"app-1": "gho_token-app-1", "app-2": "gho_token-app-2"}
	node := &nodeSecrets{api: NewAPIClient(api.URL, testNodeToken)}
	if err := node.fetch(ctx); err != nil {
		t.Fatal(err)
	}

	if token, err := node.OpenGitHubToken(ctx, "app-1", "dep-1"); err != nil || token != "gho_token-app-1" {
		t.Fatalf("open app-1's token: %q %v", token, err)
	}

	// Rotated elsewhere (the API made a new key): the node fetches its keys again, once.
	if err := node.api.post(ctx, "/api/paas/agent/keys", map[string]bool{"rotate": true}, nil); err != nil {
		t.Fatal(err)
	}
	calls := api.keyCallCount()
	if token, err := node.OpenGitHubToken(ctx, "app-1", "dep-2"); err != nil || token != "gho_token-app-1" {
		t.Fatalf("after a rotation: %q %v (keys %v)", token, err, node.current().IDs())
	}
	if got := api.keyCallCount() - calls; got != 1 || len(node.current().IDs()) != 2 {
		t.Errorf("after a rotation the node fetched its keys %d times and holds %v, want once and two keys", got, node.current().IDs())
	}

	for name, c := range map[string]struct{ appID, deploymentID, labelFor, want string }{
		"placed elsewhere":          {"app-2", "dep-3", "", "not placed on this node"},
		"GitHub disconnected":       {"app-gone", "dep-3", "", "reconnect GitHub"},
		"sealed for another deploy": {"app-1", "dep-3", "dep-other", "does not open"},
	} {
		api.mu.Lock()
		api.cloneTokenLabelFor = c.labelFor
		api.mu.Unlock()
		_, err := node.OpenGitHubToken(ctx, c.appID, c.deploymentID)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != gitclone.ErrTypeCredentials || !appErr.NonRetryable() ||
			!strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "gho_token") {
			t.Errorf("%s: %v, want a non-retryable %s refusal saying %q, without the token", name, err, gitclone.ErrTypeCredentials, c.want)
		}
	}
}

// A value the control plane sealed for this node (a certificate's key) opens with the node's
// keys, after a rotation too, and only under its own label.
func TestNodeSecretsOpenValuesSealedForTheNode(t *testing.T) {
	ctx := context.Background()
	api := newFakeAPI(t)
	platform, err := secrets.NewKeyring("k1")
	if err != nil {
		t.Fatal(err)
	}
	api.platform = platform
	node := &nodeSecrets{api: NewAPIClient(api.URL, testNodeToken)}
	if err := node.fetch(ctx); err != nil {
		t.Fatal(err)
	}
	label := secrets.CertificateKey("www.example.com")
	sealed, err := node.current().Encrypt([]byte("key pem"), label)
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := node.Open(ctx, sealed, label); err != nil || string(plain) != "key pem" {
		t.Fatalf("open: %q %v", plain, err)
	}
	if _, err := node.Open(ctx, sealed, secrets.CertificateKey("other.example.com")); !errors.Is(err, secrets.ErrTampered) {
		t.Errorf("opened under another host name's label: %v", err)
	}

	// The control plane seals under a key the node made since it fetched its keys.
	var rotated struct {
		Keyring string `json:"keyring"`
	}
	if err := node.api.post(ctx, "/api/paas/agent/keys", map[string]bool{"rotate": true}, &rotated); err != nil {
		t.Fatal(err)
	}
	ring, err := secrets.ParseKeyring(rotated.Keyring)
	if err != nil {
		t.Fatal(err)
	}
	if sealed, err = ring.Encrypt([]byte("renewed"), label); err != nil {
		t.Fatal(err)
	}
	if plain, err := node.Open(ctx, sealed, label); err != nil || string(plain) != "renewed" {
		t.Fatalf("open after a rotation: %q %v", plain, err)
	}
}

// A platform keyring an earlier agent saved on the node goes at the next start.
func TestAnEarlierAgentsSavedKeyringIsRemoved(t *testing.T) {
	cfg := Config{DataDir: t.TempDir()}
	path := filepath.Join(cfg.DataDir, "secret.key")
	if err := os.WriteFile(path, []byte("k1:c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(prev)
	removeLeftoverKeyring(context.Background(), cfg)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("secret.key is still there: %v", err)
	}
	if !strings.Contains(logs.String(), "removed the platform keyring") || strings.Contains(logs.String(), "c2VjcmV0") {
		t.Errorf("log: %s", logs.String())
	}
}
