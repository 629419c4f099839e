package workernode

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skypanel/skypanel/activities/node/buildlog"
	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
	"github.com/skypanel/skypanel/temporal/nodegateway"
)

// The node gateway's view of the fake control plane: node-1 in good standing with every
// certificate the fake API issued it (a test binary may link db; the agent binary does not).
func (f *fakeAPI) NodeStanding(_ context.Context, nodeID, serial string) (db.NodeStanding, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if nodeID != "node-1" {
		return db.NodeStanding{}, db.ErrNotFound
	}
	return db.NodeStanding{Name: "node-1", CertificateKnown: slices.Contains(f.issued, serial)}, nil
}

func (f *fakeAPI) RevokedNodesAmong(context.Context, []string) ([]db.RevokedNode, error) {
	return nil, nil
}

func (f *fakeAPI) NodesRevokedSince(context.Context, time.Time) ([]db.RevokedNode, error) {
	return nil, nil
}

// fakeAPI speaks the control plane's agent endpoints as the contract describes them.
type fakeAPI struct {
	*httptest.Server
	regToken string
	// platform seals the values a task carries; nodeKeys are the node's own keys, newest
	// first (made by the first /agent/keys call); placed are the apps placed on the node.
	platform *secrets.Keyring
	nodeKeys []string
	placed   map[string]bool
	// placedDatabases are the managed databases placed on the node.
	placedDatabases map[string]bool
	// githubTokens are the GitHub tokens of the users who connected apps (by app id); an app
	// placed on the node without one was disconnected.
	githubTokens map[string]string
	// cloneTokenLabelFor, when set, is the deployment a clone token is sealed for, whatever the
	// request says.
	cloneTokenLabelFor string
	keyCalls           int

	mu             sync.Mutex
	registrations  []RegisterRequest
	heartbeats     []Heartbeat
	reports        []InstancesReport
	foreignApps    []string // the report's answer names them (nil: 204, as an older control plane)
	chunks         []buildlog.Chunk
	logPaths       []string
	failLogs       int // answer this many log posts with 503 first
	failRegister   int // answer this many registrations with 502 first
	badAuth        int
	registerStatus int // when set, answer registrations with it

	// ca, when set, issues the certificates a registration's CSR and a renewal ask for, valid
	// certLifetime (30 days when zero); issued lists their serials, renewals counts renewals.
	ca           *nodegateway.Authority
	certLifetime time.Duration
	issued       []string
	renewals     int
}

// issue signs a CSR for node-1 (the caller holds f.mu).
func (f *fakeAPI) issue(csr string) (*GatewayCertificate, error) {
	lifetime := f.certLifetime
	if lifetime == 0 {
		lifetime = nodegateway.DefaultCertificateLifetime
	}
	cert, err := f.ca.IssueNode("node-1", []byte(csr), time.Now(), lifetime)
	if err != nil {
		return nil, err
	}
	f.issued = append(f.issued, cert.Serial)
	return &GatewayCertificate{Certificate: string(cert.PEM), CACertificate: string(f.ca.CertificatePEM()), ExpiresAt: cert.NotAfter}, nil
}

const testNodeToken = "node-token-123"

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{regToken: "reg-abc"}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/paas/agent/register", func(w http.ResponseWriter, r *http.Request) {
		var req RegisterRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.failRegister > 0 {
			f.failRegister--
			http.Error(w, "starting", http.StatusBadGateway)
			return
		}
		if f.registerStatus != 0 {
			http.Error(w, `{"title":"nope"}`, f.registerStatus)
			return
		}
		if req.RegistrationToken != f.regToken {
			http.Error(w, `{"title":"Unauthorized"}`, http.StatusUnauthorized)
			return
		}
		f.registrations = append(f.registrations, req)
		resp := RegisterResponse{NodeID: "node-1", NodeToken: testNodeToken, TaskQueue: "node-node-1"}
		if req.CSR != "" && f.ca != nil {
			cert, err := f.issue(req.CSR)
			if err != nil {
				http.Error(w, err.Error(), http.StatusUnprocessableEntity)
				return
			}
			resp.GatewayCertificate = cert
		}
		json.NewEncoder(w).Encode(resp)
	})
	authed := func(h func(w http.ResponseWriter, r *http.Request)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+testNodeToken || r.Header.Get("Content-Type") != "application/json" {
				f.mu.Lock()
				f.badAuth++
				f.mu.Unlock()
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("POST /api/paas/agent/heartbeat", authed(func(w http.ResponseWriter, r *http.Request) {
		var hb Heartbeat
		if err := json.NewDecoder(r.Body).Decode(&hb); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.heartbeats = append(f.heartbeats, hb)
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("POST /api/paas/agent/certificate", authed(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			CSR string `json:"csr"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || f.ca == nil {
			http.Error(w, "no", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		cert, err := f.issue(req.CSR)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		f.renewals++
		json.NewEncoder(w).Encode(cert)
	}))
	mux.HandleFunc("POST /api/paas/agent/keys", authed(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Rotate bool `json:"rotate"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.keyCalls++
		if len(f.nodeKeys) == 0 || req.Rotate {
			entry, err := secrets.NewKeyEntry(fmt.Sprintf("n%d", len(f.nodeKeys)+1))
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			f.nodeKeys = append([]string{entry}, f.nodeKeys...)
		}
		json.NewEncoder(w).Encode(map[string]string{"keyring": strings.Join(f.nodeKeys, ",")})
	}))
	mux.HandleFunc("POST /api/paas/agent/env/open", authed(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			AppID string          `json:"app_id"`
			Vars  []sealedVarJSON `json:"vars"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.placed[req.AppID] {
			http.Error(w, `{"detail":"application `+req.AppID+` is not placed on this node"}`, http.StatusForbidden)
			return
		}
		ring, err := secrets.ParseKeyring(strings.Join(f.nodeKeys, ","))
		if err != nil {
			http.Error(w, "no node key", http.StatusConflict)
			return
		}
		out := make([]sealedVarJSON, len(req.Vars))
		for i, v := range req.Vars {
			label := secrets.AppEnvValue(req.AppID, v.Key)
			plain, err := f.platform.Decrypt(v.Sealed, label)
			if err != nil {
				http.Error(w, `{"detail":"`+v.Key+`: does not open"}`, http.StatusUnprocessableEntity)
				return
			}
			sealed, _ := ring.Encrypt(plain, label)
			out[i] = sealedVarJSON{Key: v.Key, Sealed: sealed}
		}
		json.NewEncoder(w).Encode(map[string]any{"vars": out})
	}))
	mux.HandleFunc("POST /api/paas/agent/databases/open", authed(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			DatabaseID string `json:"database_id"`
			Sealed     string `json:"sealed"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.placedDatabases[req.DatabaseID] {
			http.Error(w, `{"detail":"database `+req.DatabaseID+` is not placed on this node"}`, http.StatusForbidden)
			return
		}
		ring, err := secrets.ParseKeyring(strings.Join(f.nodeKeys, ","))
		if err != nil {
			http.Error(w, "no node key", http.StatusConflict)
			return
		}
		label := secrets.DatabasePassword(req.DatabaseID)
		plain, err := f.platform.Decrypt(req.Sealed, label)
		if err != nil {
			http.Error(w, `{"detail":"the password does not open"}`, http.StatusUnprocessableEntity)
			return
		}
		sealed, _ := ring.Encrypt(plain, label)
		json.NewEncoder(w).Encode(map[string]string{"sealed": sealed})
	}))
	mux.HandleFunc("POST /api/paas/agent/github/clone-token", authed(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			AppID        string `json:"app_id"`
			DeploymentID string `json:"deployment_id"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.placed[req.AppID] {
			http.Error(w, `{"detail":"application `+req.AppID+` is not placed on this node"}`, http.StatusForbidden)
			return
		}
		token, ok := f.githubTokens[req.AppID]
		if !ok {
			http.Error(w, `{"title":"Conflict","detail":"the user who connected this app disconnected GitHub: reconnect GitHub"}`, http.StatusConflict)
			return
		}
		ring, err := secrets.ParseKeyring(strings.Join(f.nodeKeys, ","))
		if err != nil {
			http.Error(w, "no node key", http.StatusServiceUnavailable)
			return
		}
		deployment := req.DeploymentID
		if f.cloneTokenLabelFor != "" {
			deployment = f.cloneTokenLabelFor
		}
		sealed, _ := ring.Encrypt([]byte(token), secrets.GitHubCloneToken(deployment))
		json.NewEncoder(w).Encode(map[string]string{"sealed": sealed})
	}))
	mux.HandleFunc("POST /api/paas/agent/instances", authed(func(w http.ResponseWriter, r *http.Request) {
		var rep InstancesReport
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.reports = append(f.reports, rep)
		foreign := f.foreignApps
		f.mu.Unlock()
		if foreign == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(InstancesAnswer{ForeignApps: foreign})
	}))
	mux.HandleFunc("POST /api/paas/agent/deployments/{id}/logs", authed(func(w http.ResponseWriter, r *http.Request) {
		var c buildlog.Chunk
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil || c.DeploymentID != r.PathValue("id") {
			http.Error(w, "bad chunk", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.logPaths = append(f.logPaths, r.URL.EscapedPath())
		if f.failLogs > 0 {
			f.failLogs--
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		f.chunks = append(f.chunks, c)
		w.WriteHeader(http.StatusNoContent)
	}))
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPI) registrationsSnapshot() []RegisterRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.registrations)
}

func (f *fakeAPI) renewalCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.renewals
}

func (f *fakeAPI) counts() (registrations, heartbeats, chunks, badAuth int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.registrations), len(f.heartbeats), len(f.chunks), f.badAuth
}

func (f *fakeAPI) logText() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, c := range f.chunks {
		b.WriteString(c.Text)
	}
	return b.String()
}

func (f *fakeAPI) keyCallCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.keyCalls
}

// nodeKeyring is the node's keyring as the gateway reads it (the API's store, in production).
func (f *fakeAPI) nodeKeyring(_ context.Context, nodeID string) (*secrets.Keyring, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if nodeID != "node-1" || len(f.nodeKeys) == 0 {
		return nil, fmt.Errorf("no keys for node %s", nodeID)
	}
	return secrets.ParseKeyring(strings.Join(f.nodeKeys, ","))
}
