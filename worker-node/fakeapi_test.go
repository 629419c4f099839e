package workernode

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/skypanel/skypanel/activities/node/buildlog"
)

// fakeAPI speaks the control plane's agent endpoints as the contract describes them.
type fakeAPI struct {
	*httptest.Server
	regToken string
	// keyring is sent to a registration that asks for it (empty: the API sends none).
	keyring string

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
		if req.WantKeyring {
			resp.Keyring = f.keyring
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
