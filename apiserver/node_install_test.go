package apiserver

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/danielgtaylor/huma/v2/humatest"

	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
	"github.com/skypanel/skypanel/temporal/nodegateway"
)

// fakeInstallStore keeps regions, nodes and registration tokens as the store does: a token is
// single-use, replaced by the next one of its node, and refused once expired.
type fakeInstallStore struct {
	mu             sync.Mutex
	regions        map[string]db.Region
	nodes          map[string]db.Node
	tokens         map[string]fakeToken // by hex of the hash
	createdRegions []string
	lastExpiry     time.Time
	// certificates are the serials recorded, by node.
	certificates map[string][]string
}

type fakeToken struct {
	nodeID    string
	expiresAt time.Time
}

func newFakeInstallStore() *fakeInstallStore {
	return &fakeInstallStore{
		regions: map[string]db.Region{"us-east": {ID: "r1", Slug: "us-east", Name: "US East"}},
		nodes:   map[string]db.Node{},
		tokens:  map[string]fakeToken{},
	}
}

func (f *fakeInstallStore) RegionByRef(_ context.Context, ref string) (db.Region, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.regions[ref]
	if !ok {
		return r, db.ErrNotFound
	}
	return r, nil
}

func (f *fakeInstallStore) EnsureRegion(_ context.Context, slug, name string) (db.Region, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.regions[slug]; ok {
		return r, nil
	}
	r := db.Region{ID: "r-" + slug, Slug: slug, Name: name}
	f.regions[slug] = r
	f.createdRegions = append(f.createdRegions, slug)
	return r, nil
}

func (f *fakeInstallStore) CreateNode(_ context.Context, name, regionID, host string, hash []byte, expiresAt time.Time) (db.Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.nodes {
		if n.Name == name {
			return db.Node{}, &db.ConflictError{Constraint: "nodes_name_key"}
		}
	}
	region := ""
	for _, r := range f.regions {
		if r.ID == regionID {
			region = r.Slug
		}
	}
	n := db.Node{ID: fmt.Sprintf("n%d", len(f.nodes)+1), Name: name, Region: region, Host: host, Status: "pending", AdminState: db.NodeActive}
	f.nodes[n.ID] = n
	f.tokens[hex.EncodeToString(hash)] = fakeToken{nodeID: n.ID, expiresAt: expiresAt}
	f.lastExpiry = expiresAt
	return n, nil
}

func (f *fakeInstallStore) SetRegistrationToken(_ context.Context, nodeID string, hash []byte, expiresAt time.Time) (db.Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.nodes[nodeID]
	if !ok {
		return n, db.ErrNotFound
	}
	if n.AdminState == db.NodeRevoked {
		return n, &db.InvalidStateError{Reason: "the node is revoked: it gets no registration token"}
	}
	for k, tok := range f.tokens {
		if tok.nodeID == nodeID {
			delete(f.tokens, k)
		}
	}
	f.tokens[hex.EncodeToString(hash)] = fakeToken{nodeID: nodeID, expiresAt: expiresAt}
	f.lastExpiry = expiresAt
	return n, nil
}

func (f *fakeInstallStore) NodeByRegistrationToken(_ context.Context, hash []byte) (db.Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tok, ok := f.tokens[hex.EncodeToString(hash)]
	if !ok {
		return db.Node{}, db.ErrNotFound
	}
	if !time.Now().Before(tok.expiresAt) {
		return db.Node{}, &db.RegistrationTokenExpiredError{NodeID: tok.nodeID, ExpiredAt: tok.expiresAt}
	}
	return f.nodes[tok.nodeID], nil
}

func (f *fakeInstallStore) RecordNodeCertificate(_ context.Context, nodeID, serial string, _ time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.certificates == nil {
		f.certificates = map[string][]string{}
	}
	f.certificates[nodeID] = append(f.certificates[nodeID], serial)
	return nil
}

func (f *fakeInstallStore) RegisterNode(ctx context.Context, hash, _ []byte, _ db.NodeRegistration) (db.Node, error) {
	n, err := f.NodeByRegistrationToken(ctx, hash)
	if err != nil {
		return n, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.tokens, hex.EncodeToString(hash))
	n.Status = "online"
	f.nodes[n.ID] = n
	return n, nil
}

// expireTokens moves every token's expiry into the past.
func (f *fakeInstallStore) expireTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, tok := range f.tokens {
		tok.expiresAt = time.Now().Add(-time.Minute)
		f.tokens[k] = tok
	}
}

// testAgentBinary writes a stand-in agent binary and returns its path.
func testAgentBinary(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "skypanel-agent")
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func testNodeInstallConfig(t *testing.T) NodeInstall {
	return NodeInstall{
		PublicURL: "https://panel.example.com", PublicGatewayAddress: "gateway.example.com:7243",
		AgentBinary: testAgentBinary(t, "#!/bin/sh\necho agent\n"), RegistrationTokenTTL: 2 * time.Hour,
	}
}

// registerNodeInstall puts the enrollment routes on api, without authentication (that is the
// server's middleware, the same as for every admin route).
func registerNodeInstall(api huma.API, cfg NodeInstall, f *fakeInstallStore, keyring *secrets.Keyring) {
	registerNodeInstallWithCA(api, cfg, f, keyring, nil)
}

func registerNodeInstallWithCA(api huma.API, cfg NodeInstall, f *fakeInstallStore, keyring *secrets.Keyring, ca *nodegateway.Authority) {
	s := &Server{log: quietLog}
	certs := nodeCertificates{ca: ca, lifetime: nodegateway.DefaultCertificateLifetime, store: f, log: quietLog}
	newNodeInstall(cfg, f, keyring, certs, s.problem, quietLog).register(api, func(id, method, path, summary string, status int) huma.Operation {
		return huma.Operation{OperationID: id, Method: method, Path: path, Summary: summary, DefaultStatus: status}
	})
}

func nodeInstallAPI(t *testing.T, cfg NodeInstall, f *fakeInstallStore, keyring *secrets.Keyring) humatest.TestAPI {
	_, api := humatest.New(t)
	registerNodeInstall(api, cfg, f, keyring)
	return api
}

// nodeInstallMux serves the enrollment routes over a real HTTP mux, for curl.
func nodeInstallMux(cfg NodeInstall, f *fakeInstallStore) *http.ServeMux {
	mux := http.NewServeMux()
	registerNodeInstall(humago.New(mux, huma.DefaultConfig("test", "1")), cfg, f, nil)
	return mux
}

type enrollmentBody struct {
	Node struct {
		ID, Name, Region, Host, Status string
	} `json:"node"`
	RegistrationToken         string    `json:"registration_token"`
	ExpiresAt                 time.Time `json:"expires_at"`
	InstallCommand            string    `json:"install_command"`
	InstallCommandUnavailable string    `json:"install_command_unavailable"`
	AgentCommand              string    `json:"agent_command"`
}

func decodeEnrollment(t *testing.T, body *bytes.Buffer) enrollmentBody {
	t.Helper()
	var out enrollmentBody
	if err := json.Unmarshal(body.Bytes(), &out); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return out
}

func TestCreateNodeAnswersTheTokenItsExpiryAndTheInstallCommand(t *testing.T) {
	f := newFakeInstallStore()
	api := nodeInstallAPI(t, testNodeInstallConfig(t), f, testKeyring(t))

	before := time.Now()
	resp := api.Post("/api/paas/admin/nodes", map[string]any{"name": "worker-1", "region": "us-east", "host": "Worker-1.Example.com"})
	if resp.Code != http.StatusCreated {
		t.Fatalf("%d %s", resp.Code, resp.Body)
	}
	out := decodeEnrollment(t, resp.Body)
	if out.Node.Name != "worker-1" || out.Node.Region != "us-east" || out.Node.Status != "pending" || out.Node.Host != "worker-1.example.com" {
		t.Errorf("node %+v", out.Node)
	}
	if !strings.HasPrefix(out.RegistrationToken, registrationTokenPrefix) {
		t.Fatalf("token %q", out.RegistrationToken)
	}
	// Stored hashed: the store knows the token's hash, never the token.
	if _, ok := f.tokens[hex.EncodeToString(HashToken(out.RegistrationToken))]; !ok {
		t.Error("the store does not hold the token's hash")
	}
	if want := before.Add(2 * time.Hour); out.ExpiresAt.Before(want.Add(-2*time.Second)) || out.ExpiresAt.After(want.Add(2*time.Second)) || !out.ExpiresAt.Equal(f.lastExpiry) {
		t.Errorf("expires_at %s, stored %s, want about %s", out.ExpiresAt, f.lastExpiry, want)
	}
	want := "curl -fsSL https://panel.example.com/api/paas/agent/install-script-raw | bash -s https://panel.example.com " +
		out.RegistrationToken + " us-east worker-1"
	if out.InstallCommand != want || out.InstallCommandUnavailable != "" {
		t.Errorf("install_command %q (%q)\nwant %q", out.InstallCommand, out.InstallCommandUnavailable, want)
	}
	if !strings.HasPrefix(out.AgentCommand, "SKYPANEL_REGISTRATION_TOKEN="+out.RegistrationToken+" skypanel-agent --api-url https://panel.example.com --gateway-address gateway.example.com:7243") {
		t.Errorf("agent_command %q", out.AgentCommand)
	}

	if resp := api.Post("/api/paas/admin/nodes", map[string]any{"name": "worker-1", "region": "us-east"}); resp.Code != http.StatusConflict {
		t.Errorf("the same name again: %d %s", resp.Code, resp.Body)
	}
}

// Without a public URL there is no command to copy, and the answer says which setting is
// missing; so it does without a gateway address for nodes or an agent binary.
func TestCreateNodeSaysWhyThereIsNoInstallCommand(t *testing.T) {
	cfg := testNodeInstallConfig(t)
	for name, tc := range map[string]struct {
		change func(*NodeInstall)
		want   string
	}{
		"no public url":      {func(c *NodeInstall) { c.PublicURL = "" }, "--public-url"},
		"no gateway address": {func(c *NodeInstall) { c.PublicGatewayAddress = "" }, "--public-gateway-address"},
		"no agent binary":    {func(c *NodeInstall) { c.AgentBinary = filepath.Join(t.TempDir(), "missing") }, "--agent-binary"},
	} {
		t.Run(name, func(t *testing.T) {
			c := cfg
			tc.change(&c)
			api := nodeInstallAPI(t, c, newFakeInstallStore(), testKeyring(t))
			resp := api.Post("/api/paas/admin/nodes", map[string]any{"name": "worker-1", "region": "us-east"})
			if resp.Code != http.StatusCreated {
				t.Fatalf("%d %s", resp.Code, resp.Body)
			}
			out := decodeEnrollment(t, resp.Body)
			if out.InstallCommand != "" || !strings.Contains(out.InstallCommandUnavailable, tc.want) || out.RegistrationToken == "" {
				t.Errorf("install_command %q, install_command_unavailable %q: want none, and a note naming %s", out.InstallCommand, out.InstallCommandUnavailable, tc.want)
			}
		})
	}
}

func TestCreateNodeHostIsAHostNameOrAnIPAddress(t *testing.T) {
	for host, ok := range map[string]bool{
		"203.0.113.10": true, "2001:db8::10": true, "::ffff:203.0.113.10": true, "worker-1": true, "worker-1.example.com": true,
		"1.2.3": false, "256.1.1.1": false, "203.0.113.010": false, "a..b": false, "-a.example.com": false, "a_b.example.com": false,
		"example.com.": false, "fe80::1%eth0": false, "[2001:db8::10]": false, "203.0.113.10:22": false, "a b": false,
		"host/path": false, strings.Repeat("a", 64) + ".com": false, "*.example.com": false,
	} {
		f := newFakeInstallStore()
		api := nodeInstallAPI(t, testNodeInstallConfig(t), f, testKeyring(t))
		resp := api.Post("/api/paas/admin/nodes", map[string]any{"name": "worker-1", "region": "us-east", "host": host})
		if ok {
			if resp.Code != http.StatusCreated {
				t.Errorf("host %q: %d %s, want 201", host, resp.Code, resp.Body)
			}
			continue
		}
		p := decodeProblem(t, resp, http.StatusUnprocessableEntity)
		if len(p.Errors) != 1 || p.Errors[0].Location != "body.host" {
			t.Errorf("host %q: errors %+v, want one on body.host", host, p.Errors)
		}
		if len(f.nodes) != 0 {
			t.Errorf("host %q: a node was created", host)
		}
	}
}

func TestCreateNodeInAnUnknownRegionNeedsCreateRegion(t *testing.T) {
	f := newFakeInstallStore()
	api := nodeInstallAPI(t, testNodeInstallConfig(t), f, testKeyring(t))
	p := decodeProblem(t, api.Post("/api/paas/admin/nodes", map[string]any{"name": "worker-1", "region": "eu-west"}), http.StatusUnprocessableEntity)
	if len(p.Errors) != 1 || p.Errors[0].Location != "body.region" || !strings.Contains(p.Detail, "create_region") {
		t.Errorf("problem %+v", p)
	}
	if len(f.createdRegions) != 0 || len(f.nodes) != 0 {
		t.Fatalf("a refused request created regions %v, nodes %v", f.createdRegions, f.nodes)
	}

	resp := api.Post("/api/paas/admin/nodes", map[string]any{"name": "worker-1", "region": "eu-west", "create_region": true})
	if resp.Code != http.StatusCreated {
		t.Fatalf("%d %s", resp.Code, resp.Body)
	}
	if out := decodeEnrollment(t, resp.Body); out.Node.Region != "eu-west" || len(f.createdRegions) != 1 {
		t.Errorf("node %+v, created regions %v", out.Node, f.createdRegions)
	}
}

func TestIssueNodeTokenReplacesTheOldOne(t *testing.T) {
	f := newFakeInstallStore()
	api := nodeInstallAPI(t, testNodeInstallConfig(t), f, testKeyring(t))
	first := decodeEnrollment(t, api.Post("/api/paas/admin/nodes", map[string]any{"name": "worker-1", "region": "us-east"}).Body)

	resp := api.Post("/api/paas/admin/nodes/" + first.Node.ID + "/token")
	if resp.Code != http.StatusOK {
		t.Fatalf("%d %s", resp.Code, resp.Body)
	}
	second := decodeEnrollment(t, resp.Body)
	if second.RegistrationToken == "" || second.RegistrationToken == first.RegistrationToken || second.ExpiresAt.IsZero() ||
		!strings.Contains(second.InstallCommand, " "+second.RegistrationToken+" us-east worker-1") {
		t.Errorf("answer %+v", second)
	}
	check := func(token string) int {
		return api.Post("/api/paas/agent/install-check", map[string]any{"registration_token": token, "region": "us-east", "name": "worker-1"}).Code
	}
	if got := check(first.RegistrationToken); got != http.StatusUnauthorized {
		t.Errorf("the replaced token: %d, want 401", got)
	}
	if got := check(second.RegistrationToken); got != http.StatusNoContent {
		t.Errorf("the new token: %d, want 204", got)
	}

	decodeProblem(t, api.Post("/api/paas/admin/nodes/nope/token"), http.StatusNotFound)
	n := f.nodes[first.Node.ID]
	n.AdminState = db.NodeRevoked
	f.nodes[n.ID] = n
	if p := decodeProblem(t, api.Post("/api/paas/admin/nodes/"+n.ID+"/token"), http.StatusConflict); !strings.Contains(p.Detail, "revoked") {
		t.Errorf("revoked node: %+v", p)
	}
}

func TestInstallCheckAnswersForTheTokensNodeOnly(t *testing.T) {
	f := newFakeInstallStore()
	api := nodeInstallAPI(t, testNodeInstallConfig(t), f, testKeyring(t))
	created := decodeEnrollment(t, api.Post("/api/paas/admin/nodes", map[string]any{"name": "worker-1", "region": "us-east"}).Body)
	check := func(token, region, name string) *bytes.Buffer {
		resp := api.Post("/api/paas/agent/install-check", map[string]any{"registration_token": token, "region": region, "name": name})
		if resp.Code != http.StatusNoContent {
			return resp.Body
		}
		return nil
	}
	if body := check(created.RegistrationToken, "us-east", "worker-1"); body != nil {
		t.Fatalf("the right token, region and name: %s", body)
	}
	for _, tc := range []struct {
		token, region, name string
		status              int
		location            string
	}{
		{"spr_unknown", "us-east", "worker-1", http.StatusUnauthorized, "body.registration_token"},
		{created.RegistrationToken, "eu-west", "worker-1", http.StatusConflict, "body.region"},
		{created.RegistrationToken, "us-east", "worker-2", http.StatusConflict, "body.name"},
	} {
		resp := api.Post("/api/paas/agent/install-check", map[string]any{"registration_token": tc.token, "region": tc.region, "name": tc.name})
		p := decodeProblem(t, resp, tc.status)
		if len(p.Errors) != 1 || p.Errors[0].Location != tc.location {
			t.Errorf("%+v: errors %+v, want one on %s", tc, p.Errors, tc.location)
		}
	}
	if len(f.tokens) != 1 {
		t.Errorf("the check changed the tokens: %v", f.tokens)
	}

	f.expireTokens()
	resp := api.Post("/api/paas/agent/install-check", map[string]any{"registration_token": created.RegistrationToken, "region": "us-east", "name": "worker-1"})
	p := decodeProblem(t, resp, http.StatusUnauthorized)
	if want := "registration token expired: regenerate it with POST /api/paas/admin/nodes/" + created.Node.ID + "/token"; p.Detail != want {
		t.Errorf("detail %q, want %q", p.Detail, want)
	}
}

func TestRegisterRefusesAnExpiredTokenAndNeverSendsTheKeyring(t *testing.T) {
	f := newFakeInstallStore()
	keyring := testKeyring(t)
	api := nodeInstallAPI(t, testNodeInstallConfig(t), f, keyring)
	register := func(token string, wantKeyring bool) (int, map[string]any, string) {
		resp := api.Post("/api/paas/agent/register", map[string]any{"registration_token": token, "cpus": 2, "want_keyring": wantKeyring})
		var out map[string]any
		_ = json.Unmarshal(resp.Body.Bytes(), &out)
		return resp.Code, out, resp.Body.String()
	}

	expired := decodeEnrollment(t, api.Post("/api/paas/admin/nodes", map[string]any{"name": "worker-1", "region": "us-east"}).Body)
	f.expireTokens()
	status, out, raw := register(expired.RegistrationToken, true)
	if status != http.StatusUnauthorized || out["detail"] != "registration token expired: regenerate it with POST /api/paas/admin/nodes/"+expired.Node.ID+"/token" {
		t.Errorf("expired token: %d %s", status, raw)
	}
	if strings.Contains(raw, keyring.Spec()) {
		t.Error("a refused registration carries the keyring")
	}

	plain := decodeEnrollment(t, api.Post("/api/paas/admin/nodes", map[string]any{"name": "worker-2", "region": "us-east"}).Body)
	status, out, raw = register(plain.RegistrationToken, false)
	if status != http.StatusOK || out["node_token"] == nil || out["task_queue"] != "node-"+plain.Node.ID {
		t.Fatalf("registration: %d %s", status, raw)
	}
	if _, ok := out["keyring"]; ok {
		t.Errorf("the keyring was sent unasked: %s", raw)
	}
	if status, _, _ := register(plain.RegistrationToken, false); status != http.StatusUnauthorized {
		t.Errorf("the token a second time: %d, want 401", status)
	}

	// An older agent that asks for the platform's keyring registers, and gets none: nodes
	// have keys of their own.
	asking := decodeEnrollment(t, api.Post("/api/paas/admin/nodes", map[string]any{"name": "worker-3", "region": "us-east"}).Body)
	status, out, raw = register(asking.RegistrationToken, true)
	if _, sent := out["keyring"]; status != http.StatusOK || sent || strings.Contains(raw, keyring.Spec()) {
		t.Errorf("registration asking for the keyring: %d %s, want registered without it", status, raw)
	}
}

func TestInstallScriptIsRenderedWithTheControlPlanesValues(t *testing.T) {
	cfg := testNodeInstallConfig(t)
	api := nodeInstallAPI(t, cfg, newFakeInstallStore(), nil)
	resp := api.Get(installScriptPath)
	if resp.Code != http.StatusOK || !strings.HasPrefix(resp.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("%d %v %s", resp.Code, resp.Header(), resp.Body)
	}
	script := resp.Body.String()
	sum := sha256Hex(t, cfg.AgentBinary)
	for _, want := range []string{
		"RENDERED_API_URL='https://panel.example.com'\n",
		"GATEWAY_ADDRESS='gateway.example.com:7243'\n",
		"AGENT_SHA256='" + sum + "'\n",
		"set -euo pipefail",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("the script lacks %q", want)
		}
	}
	if strings.Contains(script, "@@") {
		t.Error("a placeholder is left in the script")
	}
	if got := shellQuote("it's"); got != `'it'\''s'` {
		t.Errorf("shellQuote: %s", got)
	}

	for name, change := range map[string]func(*NodeInstall){
		"no gateway address": func(c *NodeInstall) { c.PublicGatewayAddress = "" },
		"no agent binary":    func(c *NodeInstall) { c.AgentBinary = filepath.Join(t.TempDir(), "missing") },
	} {
		c := cfg
		change(&c)
		p := decodeProblem(t, nodeInstallAPI(t, c, newFakeInstallStore(), nil).Get(installScriptPath), http.StatusServiceUnavailable)
		if strings.Contains(p.Detail, c.AgentBinary) {
			t.Errorf("%s: the anonymous answer shows the binary's path: %s", name, p.Detail)
		}
	}
}

func TestAgentBinaryIsServedAsIs(t *testing.T) {
	cfg := testNodeInstallConfig(t)
	resp := nodeInstallAPI(t, cfg, newFakeInstallStore(), nil).Get(agentBinaryPath)
	want, _ := os.ReadFile(cfg.AgentBinary)
	if resp.Code != http.StatusOK || !bytes.Equal(resp.Body.Bytes(), want) || resp.Header().Get("Content-Type") != "application/octet-stream" {
		t.Errorf("%d %v %q", resp.Code, resp.Header(), resp.Body)
	}
	cfg.AgentBinary = filepath.Join(t.TempDir(), "missing")
	decodeProblem(t, nodeInstallAPI(t, cfg, newFakeInstallStore(), nil).Get(agentBinaryPath), http.StatusServiceUnavailable)
}

// A replaced binary gets a new checksum although the old one is cached.
func TestAgentChecksumFollowsTheFile(t *testing.T) {
	path := testAgentBinary(t, "one")
	b := &agentBinary{path: path}
	first, err := b.checksum()
	if err != nil || first != sha256Hex(t, path) {
		t.Fatal(first, err)
	}
	if err := os.WriteFile(path, []byte("second"), 0o755); err != nil {
		t.Fatal(err)
	}
	if second, err := b.checksum(); err != nil || second == first || second != sha256Hex(t, path) {
		t.Errorf("after the file changed: %s %v", second, err)
	}
}

func TestNodeInstallValidate(t *testing.T) {
	good := NodeInstall{PublicURL: "https://panel.example.com/", PublicGatewayAddress: "10.0.0.5:7243", AgentBinary: "/usr/local/bin/skypanel-agent", RegistrationTokenTTL: DefaultRegistrationTokenTTL}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid settings: %v", err)
	}
	for _, ok := range []string{"", "http://127.0.0.1:8080", "https://[2001:db8::1]:8443/panel", "https://panel.example.com/sky/panel"} {
		c := good
		c.PublicURL = ok
		if err := c.Validate(); err != nil {
			t.Errorf("public url %q: %v", ok, err)
		}
	}
	for _, tc := range []struct {
		change func(*NodeInstall)
		want   string
	}{
		{func(c *NodeInstall) { c.PublicURL = "ftp://panel.example.com" }, "--public-url"},
		{func(c *NodeInstall) { c.PublicURL = "https://user:pw@panel.example.com" }, "--public-url"},
		{func(c *NodeInstall) { c.PublicURL = "https://panel.example.com/?x=1" }, "--public-url"},
		{func(c *NodeInstall) { c.PublicURL = "https://panel.example.com/a b" }, "--public-url"},
		{func(c *NodeInstall) { c.PublicURL = "https://panel.example.com:99999" }, "--public-url"},
		{func(c *NodeInstall) { c.PublicURL = "https://1.2.3" }, "--public-url"},
		{func(c *NodeInstall) { c.PublicURL = "panel.example.com" }, "--public-url"},
		{func(c *NodeInstall) { c.PublicGatewayAddress = "gateway" }, "--public-gateway-address"},
		{func(c *NodeInstall) { c.PublicGatewayAddress = "gateway:0" }, "--public-gateway-address"},
		{func(c *NodeInstall) { c.PublicGatewayAddress = "gate'way:7243" }, "--public-gateway-address"},
		{func(c *NodeInstall) { c.AgentBinary = "" }, "--agent-binary"},
		{func(c *NodeInstall) { c.RegistrationTokenTTL = time.Second }, "--registration-token-ttl"},
		{func(c *NodeInstall) { c.RegistrationTokenTTL = 31 * 24 * time.Hour }, "--registration-token-ttl"},
	} {
		c := good
		tc.change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error naming %s", c, err, tc.want)
		}
	}
}
