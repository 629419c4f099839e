package apiserver

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skypanel/skypanel/secrets"
)

// The OpenAPI document passes Redocly's recommended rules with no error: every operation says
// whether it needs the bearer token, and the document says where the API is. scripts/deps.sh
// (make test) installs the linter into .data/redocly.
func TestOpenAPIDocumentPassesRedocly(t *testing.T) {
	linter, err := filepath.Abs("../.data/redocly/node_modules/.bin/redocly")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(linter); err != nil {
		t.Skipf("Redocly CLI not installed (make deps installs it with npm): %v", err)
	}
	keyring, err := secrets.NewKeyring("test-key")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Keyring: keyring, NodeInstall: NodeInstall{PublicURL: "https://panel.example.org"}}, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	doc, err := json.Marshal(s.API().OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "openapi.json")
	if err := os.WriteFile(path, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(linter, "lint", path, "--format=summary")
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redocly lint: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "validated") {
		t.Fatalf("redocly lint said nothing about the document:\n%s", out)
	}
}
