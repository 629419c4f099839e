package testsuite

import (
	"bytes"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/skypanel/skypanel/secrets"
)

type sealedVarJSON struct {
	Key    string `json:"key"`
	Sealed string `json:"sealed"`
}

// registerBareNode registers a node of region through the API without running an agent: a
// node identity to make calls with.
func registerBareNode(t testing.TB, name, region string) (nodeID, token string) {
	t.Helper()
	_, registrationToken := createNode(t, name, region)
	var registered struct {
		NodeID    string `json:"node_id"`
		NodeToken string `json:"node_token"`
	}
	if status, raw := platform.call(http.MethodPost, "/api/paas/agent/register", "",
		map[string]any{"registration_token": registrationToken, "hostname": name, "cpus": 1, "memory_mb": 1024}, &registered); status != http.StatusOK && status != http.StatusCreated {
		t.Fatalf("register node %s: %d %s", name, status, raw)
	}
	t.Cleanup(func() {
		platform.call(http.MethodDelete, "/api/paas/admin/nodes/"+registered.NodeID, platform.adminToken, nil, nil)
	})
	return registered.NodeID, registered.NodeToken
}

// A node opens the values of the apps placed on it, and only those: the API re-seals them
// under the node's own key, which the platform key does not open; another node asking for them
// gets 403, and a value of another app does not open as this app's.
func TestANodeOpensOnlyItsOwnAppsValuesUnderItsOwnKey(t *testing.T) {
	owner, app, _, _ := liveHelloApp(t, "nodekey", "node key")
	defer owner.deleteAndWait(t, app.ID)
	localID, localToken := localNodeCredentials(t)
	_, strangerToken := registerBareNode(t, uniqueName("stranger"), uniqueName("elsewhere"))

	sealed, err := platform.keyring.Encrypt([]byte("probe value"), secrets.AppEnvValue(app.ID, "PROBE"))
	if err != nil {
		t.Fatal(err)
	}
	open := func(token, appID string, vars ...sealedVarJSON) (int, []sealedVarJSON, string) {
		var out struct{ Vars []sealedVarJSON }
		status, raw := platform.call(http.MethodPost, "/api/paas/agent/env/open", token, map[string]any{"app_id": appID, "vars": vars}, &out)
		return status, out.Vars, string(raw)
	}

	status, vars, raw := open(localToken, app.ID, sealedVarJSON{"PROBE", sealed})
	if status != http.StatusOK || len(vars) != 1 || vars[0].Key != "PROBE" {
		t.Fatalf("the app's node opens its value: %d %s", status, raw)
	}
	var keys struct {
		Keyring string `json:"keyring"`
	}
	if status, raw := platform.call(http.MethodPost, "/api/paas/agent/keys", localToken, map[string]any{}, &keys); status != http.StatusOK {
		t.Fatalf("the node's keys: %d %s", status, raw)
	}
	nodeRing, err := secrets.ParseKeyring(keys.Keyring)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range nodeRing.IDs() {
		if platform.keyring.Has(id) || !strings.HasPrefix(id, "n") {
			t.Errorf("node %s holds key %s: want keys of its own, never the platform's (%v)", localID, id, platform.keyring.IDs())
		}
	}
	if plain, err := nodeRing.Decrypt(vars[0].Sealed, secrets.AppEnvValue(app.ID, "PROBE")); err != nil || string(plain) != "probe value" {
		t.Errorf("the node's key opens %q, %v", plain, err)
	}
	if _, err := platform.keyring.Decrypt(vars[0].Sealed, secrets.AppEnvValue(app.ID, "PROBE")); !errors.Is(err, secrets.ErrUnknownKey) {
		t.Errorf("the platform key on the node's envelope: %v, want ErrUnknownKey", err)
	}

	if status, _, raw := open(strangerToken, app.ID, sealedVarJSON{"PROBE", sealed}); status != http.StatusForbidden || strings.Contains(raw, "probe value") {
		t.Errorf("a node the app is not placed on: %d %s, want 403", status, raw)
	}
	other, err := platform.keyring.Encrypt([]byte("other app's value"), secrets.AppEnvValue("00000000-0000-4000-8000-000000000000", "PROBE"))
	if err != nil {
		t.Fatal(err)
	}
	if status, _, raw := open(localToken, app.ID, sealedVarJSON{"PROBE", other}); status != http.StatusUnprocessableEntity || !strings.Contains(raw, "body.vars[0].sealed") {
		t.Errorf("another app's value presented as this app's: %d %s, want 422 naming the field", status, raw)
	}
	if status, _, _ := open("", app.ID, sealedVarJSON{"PROBE", sealed}); status != http.StatusUnauthorized {
		t.Errorf("without a node token: %d, want 401", status)
	}
}

// agentPID finds the running agent whose data dir is dataDir.
func agentPID(t testing.TB, dataDir string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "skypanel-agent" {
			continue
		}
		for i := range len(args) - 1 {
			if args[i] == "--data-dir" && args[i+1] == dataDir {
				return pid
			}
		}
	}
	t.Fatalf("no skypanel-agent runs with --data-dir %s", dataDir)
	return 0
}

// The local node's agent holds no platform key, in its files or its environment, and yet it
// starts an app whose environment holds a secret: the app echoes it.
func TestTheAgentHoldsNoPlatformKeyYetRunsAppSecrets(t *testing.T) {
	owner, app, _, _ := liveHelloApp(t, "nokey", "no key")
	defer owner.deleteAndWait(t, app.ID)
	canary := randomCanary(t)
	var change envChange
	if status, raw := platform.call(http.MethodPost, "/api/paas/applications/"+app.ID+"/env", owner.token,
		map[string]any{"key": "CANARY_SECRET", "value": canary}, &change); status != http.StatusAccepted {
		t.Fatalf("set CANARY_SECRET: %d %s", status, raw)
	}
	owner.waitWorkflow(t, change.WorkflowID)
	if status, body := platform.throughNginxPath(app.Name+".apps.localhost", "/env/CANARY_SECRET"); status != http.StatusOK || body != canary {
		t.Fatalf("the app echoes %d %q, want the canary", status, body)
	}

	agentDir := filepath.Join(platform.dataDir, "node-local")
	environ, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(agentPID(t, agentDir)), "environ"))
	if err != nil {
		t.Fatal(err)
	}
	var materials []string
	for _, entry := range strings.Split(platform.keyring.Spec(), ",") {
		_, material, _ := strings.Cut(entry, ":")
		materials = append(materials, material)
	}
	for _, kv := range strings.Split(string(environ), "\x00") {
		if strings.HasPrefix(kv, secrets.KeyringEnv) {
			t.Errorf("the agent's environment holds %s", strings.SplitN(kv, "=", 2)[0])
		}
	}
	holds := func(data []byte) bool {
		for _, m := range materials {
			if bytes.Contains(data, []byte(m)) {
				return true
			}
		}
		return false
	}
	if holds(environ) {
		t.Error("the agent's environment holds the platform key")
	}
	files := 0
	filepath.WalkDir(agentDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(path, string(filepath.Separator)+"builds"+string(filepath.Separator)) {
			return nil
		}
		files++
		if data, err := os.ReadFile(path); err == nil && holds(data) {
			t.Errorf("%s holds the platform key", path)
		}
		return nil
	})
	if files == 0 {
		t.Fatalf("no file in %s: the check looked at nothing", agentDir)
	}
	if _, err := os.Stat(filepath.Join(agentDir, "secret.key")); !os.IsNotExist(err) {
		t.Errorf("the agent's data dir has a secret.key: %v", err)
	}
}
