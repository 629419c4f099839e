package testsuite

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every release runs by the digest of the image its build pushed to the platform registry: a
// rollback to a release whose image the node no longer holds pulls that digest and serves it;
// releases past the retention count leave the registry as they leave the node.
func TestARollbackPullsItsReleaseByDigest(t *testing.T) {
	owner, app, r, _ := liveHelloApp(t, "bydigest", "digest v1")
	_, v1 := currentRelease(t, owner, app.ID)
	if !strings.Contains(v1, "@sha256:") || !inRegistry(t, v1) {
		t.Fatalf("release 1 runs %q: want a digest reference the registry holds", v1)
	}
	r.commitMessage("digest v2")
	if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
		t.Fatalf("deploy v2: %+v", dep)
	}
	owner.waitIdle(t, app.ID)
	removeImage(t, v1) // as on a node that never ran release 1
	if status, raw := owner.rollback(t, app.ID, 1); status != http.StatusAccepted {
		t.Fatalf("rollback to 1: %d %s", status, raw)
	}
	if status, body, _ := platform.throughNginx(app.Name + ".apps.localhost"); status != http.StatusOK || body != "digest v1" {
		t.Errorf("after the rollback: %d %q, want release 1's answer", status, body)
	}
	if _, now := currentRelease(t, owner, app.ID); now != v1 {
		t.Errorf("the rollback runs %q, want release 1's digest %q", now, v1)
	}

	// The stack keeps 2 releases' images: two more deploys prune release 1's from the registry.
	for _, msg := range []string{"digest v3", "digest v4"} {
		r.commitMessage(msg)
		if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
			t.Fatalf("deploy %s: %+v", msg, dep)
		}
	}
	owner.waitIdle(t, app.ID)
	if inRegistry(t, v1) {
		t.Errorf("release 1's image %s is still in the registry after it was pruned", v1)
	}
}

// localNodeCredentials are the stack's local node's id and token, from its agent's data dir.
func localNodeCredentials(t testing.TB) (nodeID, token string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(platform.dataDir, "node-local", "agent.json"))
	if err != nil {
		t.Fatalf("the local node's credentials: %v", err)
	}
	var creds struct {
		NodeID    string `json:"node_id"`
		NodeToken string `json:"node_token"`
	}
	if err := json.Unmarshal(raw, &creds); err != nil || creds.NodeID == "" || creds.NodeToken == "" {
		t.Fatalf("the local node's agent.json: %v", err)
	}
	return creds.NodeID, creds.NodeToken
}

// asLocalNode signs req with the local node's registry credential: only nodes pass the
// registry gate.
func asLocalNode(t testing.TB, req *http.Request) {
	t.Helper()
	req.SetBasicAuth(localNodeCredentials(t))
}

// Only nodes reach the platform registry: its gate answers a request without a node's own
// credential with a Basic challenge, whatever else it carries, and serves the node that has
// one. (Every deploy of the suite pushes and pulls through it with the node's credential.)
func TestTheRegistryGateLetsOnlyNodesIn(t *testing.T) {
	owner, app, _, _ := liveHelloApp(t, "gated", "gated")
	defer owner.deleteAndWait(t, app.ID)
	nodeID, token := localNodeCredentials(t)
	_, image := currentRelease(t, owner, app.ID)
	url := registryManifestURL(t, image)
	for _, tc := range []struct {
		name        string
		user, token string
	}{
		{"no credential", "", ""},
		{"the admin's API token", "admin", platform.adminToken},
		{"the node's token under another node's id", "00000000-0000-4000-8000-000000000000", token},
		{"a made-up node token", nodeID, "spn_" + strings.Repeat("0", 40)},
	} {
		req, _ := http.NewRequest(http.MethodHead, url, nil)
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("%s: %d %q, want 401 with a Basic challenge", tc.name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if !strings.Contains(url, "//"+registryGateAddr(t)+"/") {
		t.Errorf("the image %s is not named after the registry gate %s", image, registryGateAddr(t))
	}
	req, _ := http.NewRequest(http.MethodHead, url, nil)
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
	req.SetBasicAuth(nodeID, token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the local node's own credential: %d, want 200", resp.StatusCode)
	}
}

// registryGateAddr is the stack's registry gate (host:port), as skypanel dev logged it when it
// last started listening (it takes a free port at each start, and the suite restarts the
// stack).
func registryGateAddr(t testing.TB) string {
	t.Helper()
	raw, err := os.ReadFile(platform.logPath)
	if err != nil {
		t.Fatal(err)
	}
	addr := ""
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.Contains(line, `msg="registry gate listening"`) {
			continue
		}
		for _, field := range strings.Fields(line) {
			if a, ok := strings.CutPrefix(field, "addr="); ok {
				addr = a
			}
		}
	}
	if addr == "" {
		t.Fatal("skypanel dev logged no registry gate address")
	}
	return addr
}
