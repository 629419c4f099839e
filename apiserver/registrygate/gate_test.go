package registrygate

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// tokens are the nodes' credentials the test authenticator knows.
var tokens = map[string]string{"spn_a": "node-a", "spn_b": "node-b"}

func authenticate(_ context.Context, token string) (string, error) {
	if id, ok := tokens[token]; ok {
		return id, nil
	}
	return "", ErrUnknownCredential
}

// gateOver runs a gate in front of a stand-in registry that records what reached it.
func gateOver(t *testing.T, auth Authenticator) (gate *httptest.Server, reached *atomic.Int32, lastAuth *atomic.Value) {
	t.Helper()
	reached, lastAuth = &atomic.Int32{}, &atomic.Value{}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		lastAuth.Store(r.Header.Get("Authorization") + "|host=" + r.Host)
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Location", "/v2/skypanel/app-x/blobs/uploads/u1")
		w.WriteHeader(http.StatusAccepted)
		w.Write(body) //nolint:errcheck
	}))
	t.Cleanup(upstream.Close)
	g, err := New(upstream.URL, auth, nil)
	if err != nil {
		t.Fatal(err)
	}
	gate = httptest.NewServer(g)
	t.Cleanup(gate.Close)
	return gate, reached, lastAuth
}

func send(t *testing.T, method, url, user, password, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if user != "" || password != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

// Only a node's own credential passes, and what passes reaches the registry whole (body,
// status, headers), without the node's credential.
func TestOnlyANodesOwnCredentialReachesTheRegistry(t *testing.T) {
	gate, reached, lastAuth := gateOver(t, authenticate)
	for _, tc := range []struct{ name, user, password string }{
		{"no credential", "", ""},
		{"unknown token", "node-a", "spn_nope"},
		{"node b's token as node a", "node-a", "spn_b"},
		{"empty user", "", "spn_a"},
	} {
		resp, body := send(t, http.MethodGet, gate.URL+"/v2/", tc.user, tc.password, "")
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `Basic realm="SkyPanel registry"`) ||
			!strings.Contains(body, `"code":"UNAUTHORIZED"`) {
			t.Errorf("%s: %d %q %s, want a 401 Basic challenge in the registry's error format", tc.name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
	}
	if n := reached.Load(); n != 0 {
		t.Fatalf("%d refused requests reached the registry", n)
	}

	resp, body := send(t, http.MethodPatch, gate.URL+"/v2/skypanel/app-x/blobs/uploads/u1", "node-a", "spn_a", "layer bytes")
	if resp.StatusCode != http.StatusAccepted || body != "layer bytes" || resp.Header.Get("Location") != "/v2/skypanel/app-x/blobs/uploads/u1" {
		t.Errorf("node a's upload: %d %q %q", resp.StatusCode, body, resp.Header.Get("Location"))
	}
	if got := lastAuth.Load().(string); strings.HasPrefix(got, "Basic") || !strings.Contains(got, "host="+strings.TrimPrefix(gate.URL, "http://")) {
		t.Errorf("the registry saw %q: want no node credential, and the gate's host (its upload locations point back there)", got)
	}
}

// Outside the registry API nothing is served; a credential that cannot be checked is a 503,
// never a pass.
func TestTheGateServesOnlyTheRegistryAPIAndFailsClosed(t *testing.T) {
	gate, reached, _ := gateOver(t, authenticate)
	if resp, _ := send(t, http.MethodGet, gate.URL+"/debug/vars", "node-a", "spn_a", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/debug/vars: %d, want 404", resp.StatusCode)
	}
	broken, brokenReached, _ := gateOver(t, func(context.Context, string) (string, error) { return "", errors.New("database down") })
	if resp, _ := send(t, http.MethodGet, broken.URL+"/v2/", "node-a", "spn_a", ""); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("authenticator down: %d, want 503", resp.StatusCode)
	}
	if reached.Load()+brokenReached.Load() != 0 {
		t.Error("a request reached the registry")
	}
}
