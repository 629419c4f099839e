package apiserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sha256Hex(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// installFixture is a control plane the real install.sh talks to: the enrollment routes over
// HTTP with a fake store holding node worker-1 of region us-east and its token.
type installFixture struct {
	cfg   NodeInstall
	store *fakeInstallStore
	url   string
	token string
	root  string
}

func newInstallFixture(t *testing.T) *installFixture {
	t.Helper()
	for _, tool := range []string{"bash", "curl", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the install script test needs %s: %v", tool, err)
		}
	}
	var handler http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	fx := &installFixture{store: newFakeInstallStore(), url: srv.URL, root: t.TempDir()}
	fx.cfg = NodeInstall{PublicURL: srv.URL, PublicGatewayAddress: "gateway.example.com:7243",
		AgentBinary: testAgentBinary(t, "#!/bin/sh\necho the agent\n"), RegistrationTokenTTL: time.Hour}
	handler = nodeInstallMux(fx.cfg, fx.store)
	token, hash, err := NewRegistrationToken()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fx.store.CreateNode(context.Background(), "worker-1", "r1", "", hash, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	fx.token = token
	return fx
}

// script fetches the install script the way the install command does.
func (fx *installFixture) script(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(fx.url + installScriptPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("install script: %d %s", resp.StatusCode, body)
	}
	return string(body)
}

// run pipes script into `bash -s args...` under the fixture's root, without apt or systemd.
func (fx *installFixture) run(t *testing.T, script string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{"-s"}, args...)...)
	cmd.Stdin = strings.NewReader(script)
	cmd.Env = append(os.Environ(), "SKYPANEL_INSTALL_ROOT="+fx.root, "SKYPANEL_INSTALL_SKIP_APT=1", "SKYPANEL_INSTALL_NO_SYSTEMD=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// installedFiles lists every file under the fixture's root.
func (fx *installFixture) installedFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(fx.root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, strings.TrimPrefix(path, fx.root))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestInstallScriptInstallsTheAgent(t *testing.T) {
	fx := newInstallFixture(t)
	out, err := fx.run(t, fx.script(t), fx.url, fx.token, "us-east", "worker-1")
	if err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	if strings.Contains(out, fx.token) {
		t.Errorf("the script printed the token:\n%s", out)
	}

	bin := filepath.Join(fx.root, "usr/local/bin/skypanel-agent")
	if got, want := sha256Hex(t, bin), sha256Hex(t, fx.cfg.AgentBinary); got != want {
		t.Errorf("installed binary %s, want %s", got, want)
	}
	if st, _ := os.Stat(bin); st == nil || st.Mode().Perm() != 0o755 {
		t.Errorf("binary mode: %v", st)
	}

	envFile := filepath.Join(fx.root, "etc/skypanel-agent/agent.env")
	st, err := os.Stat(envFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("agent.env mode %v, want 0600", st.Mode().Perm())
	}
	env, _ := os.ReadFile(envFile)
	want := "SKYPANEL_API_URL=" + fx.url + "\nSKYPANEL_GATEWAY_ADDRESS=gateway.example.com:7243\n" +
		"SKYPANEL_AGENT_DATA_DIR=/var/lib/skypanel-agent\nSKYPANEL_REGISTRATION_TOKEN=" + fx.token + "\n"
	if string(env) != want {
		t.Errorf("agent.env:\n%s\nwant:\n%s", env, want)
	}

	unit, err := os.ReadFile(filepath.Join(fx.root, "etc/systemd/system/skypanel-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"EnvironmentFile=/etc/skypanel-agent/agent.env", "ExecStart=/usr/local/bin/skypanel-agent", "Restart=always", "KillMode=process"} {
		if !strings.Contains(string(unit), line+"\n") {
			t.Errorf("the unit lacks %q:\n%s", line, unit)
		}
	}
	if strings.Contains(string(unit), fx.token) {
		t.Error("the unit holds the token")
	}
	if len(fx.store.tokens) != 1 {
		t.Error("the install consumed the token: only the agent's registration may")
	}

	// Again, on a machine that was registered before: the same files, and the earlier
	// registration kept aside so the agent registers as this node.
	dataDir := filepath.Join(fx.root, "var/lib/skypanel-agent")
	if err := os.WriteFile(filepath.Join(dataDir, "agent.json"), []byte(`{"node_id":"old"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := fx.run(t, fx.script(t), fx.url, fx.token, "us-east", "worker-1"); err != nil {
		t.Fatalf("second install: %v\n%s", err, out)
	}
	if again, _ := os.ReadFile(envFile); string(again) != want {
		t.Errorf("agent.env after the second install:\n%s", again)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "agent.json")); !os.IsNotExist(err) {
		t.Errorf("agent.json of the earlier registration is still in place: %v", err)
	}
	if aside, _ := filepath.Glob(filepath.Join(dataDir, "agent.json.replaced-*")); len(aside) != 1 {
		t.Errorf("kept aside: %v, want one file", aside)
	}
}

// A binary that is not the one the script was rendered for is refused, and nothing is
// installed.
func TestInstallScriptRefusesAWrongChecksum(t *testing.T) {
	fx := newInstallFixture(t)
	script := fx.script(t)
	if err := os.WriteFile(fx.cfg.AgentBinary, []byte("#!/bin/sh\necho not the agent\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := fx.run(t, script, fx.url, fx.token, "us-east", "worker-1")
	if err == nil {
		t.Fatalf("the install went through with a wrong checksum:\n%s", out)
	}
	if !strings.Contains(out, "SHA-256") {
		t.Errorf("output does not say why:\n%s", out)
	}
	if files := fx.installedFiles(t); len(files) != 0 {
		t.Errorf("installed %v after refusing", files)
	}
}

// A token the control plane refuses ends the install before anything is installed.
func TestInstallScriptStopsWhenTheTokenIsRefused(t *testing.T) {
	fx := newInstallFixture(t)
	script := fx.script(t)
	for _, tc := range []struct {
		name                string
		token, region, node string
		expire              bool
		want                string
	}{
		{"unknown token", "spr_unknown", "us-east", "worker-1", false, "HTTP 401): unknown or already used registration token"},
		{"another region", fx.token, "eu-west", "worker-1", false, "HTTP 409): the token is for node worker-1 of region us-east"},
		{"another node", fx.token, "us-east", "worker-2", false, "HTTP 409): the token is for node worker-1, not worker-2"},
		{"expired token", fx.token, "us-east", "worker-1", true, "HTTP 401): registration token expired: regenerate it with POST /api/paas/admin/nodes/n1/token"},
		{"no such host", fx.token, "us-east", "worker-1", false, "cannot reach"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.expire {
				fx.store.expireTokens()
			}
			url := fx.url
			if tc.name == "no such host" {
				url = "http://127.0.0.1:1"
			}
			out, err := fx.run(t, script, url, tc.token, tc.region, tc.node)
			if err == nil {
				t.Fatalf("the install went through:\n%s", out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, out)
			}
			if files := fx.installedFiles(t); len(files) != 0 {
				t.Errorf("installed %v after the refusal", files)
			}
		})
	}
}

// Arguments of the wrong shape are refused before the control plane is asked.
func TestInstallScriptChecksItsArguments(t *testing.T) {
	fx := newInstallFixture(t)
	script := fx.script(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{fx.url, fx.token, "us-east"}, "usage:"},
		{[]string{"ftp://panel.example.com", fx.token, "us-east", "worker-1"}, "want http(s)://host"},
		{[]string{fx.url + "/?x=1", fx.token, "us-east", "worker-1"}, "want http(s)://host"},
		// Would write a line of its own into agent.env, or a field of its own into the check.
		{[]string{fx.url, fx.token + "\nSKYPANEL_API_URL=http://evil", "us-east", "worker-1"}, "unexpected shape"},
		{[]string{fx.url, fx.token + `","region":"us-east`, "us-east", "worker-1"}, "unexpected shape"},
		{[]string{fx.url, fx.token, "US East", "worker-1"}, "region"},
		{[]string{fx.url, fx.token, "us-east", "worker_1"}, "node name"},
	} {
		out, err := fx.run(t, script, tc.args...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("args %q: %v, want a refusal saying %q:\n%s", tc.args, err, tc.want, out)
		}
	}
	if files := fx.installedFiles(t); len(files) != 0 {
		t.Errorf("installed %v", files)
	}
}

// The script as stored and as served passes shellcheck.
func TestInstallScriptPassesShellcheck(t *testing.T) {
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Skip("shellcheck is not installed (scripts/deps.sh installs it): install.sh was not linted")
	}
	fx := newInstallFixture(t)
	dir := t.TempDir()
	for name, text := range map[string]string{"stored.sh": installScript, "served.sh": fx.script(t)} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("shellcheck", "--severity=style", path).CombinedOutput(); err != nil {
			t.Errorf("shellcheck %s: %v\n%s", name, err, out)
		}
	}
}
