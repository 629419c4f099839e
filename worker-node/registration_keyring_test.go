package workernode

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skypanel/skypanel/secrets"
)

func testKeyringSpec(t *testing.T) string {
	t.Helper()
	entry, err := secrets.NewKeyEntry("k1")
	if err != nil {
		t.Fatal(err)
	}
	return entry
}

func testKeyring(t *testing.T) *secrets.Keyring {
	t.Helper()
	ring, err := secrets.ParseKeyring(testKeyringSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

// captureLogs sends slog's default logger to a buffer for the test.
func captureLogs(t *testing.T) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })
	return &buf
}

// An agent without a keyring asks for it at registration, saves it for root only before its
// credentials, never logs it, and reads it from there at its next start.
func TestAgentWithoutKeyringSavesTheOneRegistrationSends(t *testing.T) {
	api := newFakeAPI(t)
	api.keyring = testKeyringSpec(t)
	cfg := Config{APIURL: api.URL, RegistrationToken: "reg-abc", DataDir: t.TempDir()}
	logs := captureLogs(t)

	none, err := cfg.Keyring()
	if err != nil || none != nil {
		t.Fatalf("keyring of an unconfigured agent: %v %v, want none and no error", none, err)
	}
	_, ring, err := ensureRegistered(context.Background(), cfg, NewAPIClient(api.URL, ""), SystemInfo{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(api.registrations) != 1 || !api.registrations[0].WantKeyring {
		t.Fatalf("registrations %+v: want one that asks for the keyring", api.registrations)
	}
	if ring == nil || ring.Spec() != api.keyring {
		t.Fatalf("keyring in use %v, want the API's", ring)
	}
	path := filepath.Join(cfg.DataDir, "secret.key")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("secret.key mode %v, want 0600", st.Mode().Perm())
	}
	if saved, _ := os.ReadFile(path); strings.TrimSpace(string(saved)) != api.keyring {
		t.Errorf("secret.key holds something else than the API's keyring")
	}
	_, material, _ := strings.Cut(api.keyring, ":")
	if strings.Contains(logs.String(), material) {
		t.Errorf("the keyring is in the log:\n%s", logs)
	}

	// The next start: the saved keyring, no second registration.
	cfg.RegistrationToken = ""
	again, err := cfg.Keyring()
	if err != nil || again == nil || again.Spec() != api.keyring {
		t.Fatalf("keyring at the next start: %v %v", again, err)
	}
	if _, _, err := ensureRegistered(context.Background(), cfg, NewAPIClient(api.URL, ""), SystemInfo{}, again, nil); err != nil {
		t.Fatal(err)
	}
	if n, _, _, _ := api.counts(); n != 1 {
		t.Errorf("%d registrations, want 1", n)
	}

	// A saved keyring others can read is refused, like any key file.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Keyring(); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("keyring readable by others: %v, want a refusal", err)
	}
}

// A configured keyring wins: the agent does not ask for the platform's and saves none.
func TestAgentWithKeyringDoesNotAskForOne(t *testing.T) {
	api := newFakeAPI(t)
	api.keyring = testKeyringSpec(t)
	own := testKeyringSpec(t)
	cfg := Config{APIURL: api.URL, RegistrationToken: "reg-abc", DataDir: t.TempDir(), secretKeySpec: own}
	configured, err := cfg.Keyring()
	if err != nil || configured == nil {
		t.Fatal(configured, err)
	}
	_, ring, err := ensureRegistered(context.Background(), cfg, NewAPIClient(api.URL, ""), SystemInfo{}, configured, nil)
	if err != nil {
		t.Fatal(err)
	}
	if api.registrations[0].WantKeyring || ring.Spec() != own {
		t.Errorf("asked for the keyring: %v; keyring in use is the configured one: %v", api.registrations[0].WantKeyring, ring.Spec() == own)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "secret.key")); !os.IsNotExist(err) {
		t.Errorf("secret.key written although a keyring is configured: %v", err)
	}
}

// An API that sends no keyring leaves a registered node (the token is spent) with an error
// that says how to give it one; a registered node without a keyring does not start.
func TestRegistrationWithoutTheKeyringItNeeds(t *testing.T) {
	api := newFakeAPI(t) // sends no keyring
	cfg := Config{APIURL: api.URL, RegistrationToken: "reg-abc", DataDir: t.TempDir()}
	_, _, err := ensureRegistered(context.Background(), cfg, NewAPIClient(api.URL, ""), SystemInfo{}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "SKYPANEL_SECRET_KEY") {
		t.Fatalf("error %v, want one naming SKYPANEL_SECRET_KEY", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "agent.json")); err != nil {
		t.Errorf("the spent registration was not kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "secret.key")); !os.IsNotExist(err) {
		t.Errorf("secret.key written without a keyring: %v", err)
	}

	_, _, err = ensureRegistered(context.Background(), cfg, NewAPIClient(api.URL, ""), SystemInfo{}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "no keyring") {
		t.Errorf("a registered node without a keyring: %v, want an error", err)
	}
	if n, _, _, _ := api.counts(); n != 1 {
		t.Errorf("%d registrations, want 1", n)
	}
}
