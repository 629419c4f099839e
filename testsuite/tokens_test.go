package testsuite

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// TestTokensAreStoredOnlyAsHashes: a node's registration token works once, and no token (the
// admin's, a customer's, a node's, a registration token) is in the database in plain: a
// pg_dump holds each one's SHA-256 and never the token.
func TestTokensAreStoredOnlyAsHashes(t *testing.T) {
	customer := newCustomer(t, uniqueName("hashes")+"@example.com")

	// A node of a region of its own (nothing is ever placed on it), registered by hand.
	var node struct {
		ID                string `json:"id"`
		RegistrationToken string `json:"registration_token"`
	}
	if status, raw := platform.call(http.MethodPost, "/api/paas/admin/nodes", platform.adminToken,
		map[string]any{"name": uniqueName("hashnode"), "region": uniqueName("nowhere"), "create_region": true, "host": "192.0.2.10"}, &node); status != http.StatusCreated || node.RegistrationToken == "" {
		t.Fatalf("create node: %d %s", status, raw)
	}
	register := func() (int, []byte, string) {
		var out struct {
			NodeToken string `json:"node_token"`
		}
		status, raw := platform.call(http.MethodPost, "/api/paas/agent/register", "", map[string]any{"registration_token": node.RegistrationToken, "cpus": 1}, &out)
		return status, raw, out.NodeToken
	}
	status, raw, nodeToken := register()
	if status != http.StatusOK || nodeToken == "" {
		t.Fatalf("register with the token: %d %s", status, raw)
	}
	if status, raw, again := register(); status < 400 || status >= 500 || again != "" || bytes.Contains(raw, []byte(nodeToken)) {
		t.Errorf("register a second time with the same token: %d %s, want a 4xx and no credential", status, raw)
	}

	var creds struct {
		NodeToken string `json:"node_token"`
	}
	agentJSON, err := os.ReadFile(filepath.Join(platform.dataDir, "node-local", "agent.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(agentJSON, &creds); err != nil || creds.NodeToken == "" {
		t.Fatalf("the local node's agent.json: %v %s", err, agentJSON)
	}

	dump := pgDump(t)
	for name, token := range map[string]string{
		"the admin's token":      platform.adminToken,
		"a customer's token":     customer.token,
		"a registration token":   node.RegistrationToken,
		"a node's token":         nodeToken,
		"the local node's token": creds.NodeToken,
	} {
		if bytes.Contains(dump, []byte(token)) {
			t.Errorf("%s is in the database in plain", name)
		}
		if name == "a registration token" {
			continue // consumed: its hash is gone too
		}
		sum := sha256.Sum256([]byte(token))
		if !bytes.Contains(dump, []byte(hex.EncodeToString(sum[:]))) {
			t.Errorf("%s's SHA-256 is not in the database: the check above proves nothing", name)
		}
	}
}
