package workernode

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skypanel/skypanel/activities/node/buildlog"
)

func TestRegistrationIsSavedAndReused(t *testing.T) {
	api := newFakeAPI(t)
	api.failRegister = 1 // the API is still starting: the agent retries
	cfg := Config{APIURL: api.URL, RegistrationToken: "reg-abc", DataDir: t.TempDir()}
	info := SystemInfo{Hostname: "node-a", CPUs: 4, MemoryMB: 2048}

	creds, err := ensureRegistered(context.Background(), cfg, NewAPIClient(api.URL, ""), info, nil)
	if err != nil {
		t.Fatal(err)
	}
	if creds != (Credentials{NodeID: "node-1", NodeToken: testNodeToken}) {
		t.Errorf("credentials %+v", creds)
	}
	if got := api.registrations; len(got) != 1 || got[0] != (RegisterRequest{RegistrationToken: "reg-abc", Hostname: "node-a", CPUs: 4, MemoryMB: 2048}) {
		t.Errorf("registrations %+v", got)
	}
	st, err := os.Stat(filepath.Join(cfg.DataDir, "agent.json"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("agent.json mode %v, want 0600", st.Mode().Perm())
	}
	data, _ := os.ReadFile(filepath.Join(cfg.DataDir, "agent.json"))
	var saved map[string]string
	if err := json.Unmarshal(data, &saved); err != nil || saved["node_id"] != "node-1" || saved["node_token"] != testNodeToken {
		t.Errorf("agent.json %s (%v)", data, err)
	}

	// The next start uses the saved credentials: no token needed, no second registration.
	cfg.RegistrationToken = ""
	again, err := ensureRegistered(context.Background(), cfg, NewAPIClient(api.URL, ""), info, nil)
	if err != nil || again != creds {
		t.Fatalf("second start: %+v %v", again, err)
	}
	if n, _, _, _ := api.counts(); n != 1 {
		t.Errorf("%d registrations, want 1", n)
	}
}

func TestRegistrationRefused(t *testing.T) {
	api := newFakeAPI(t)
	cfg := Config{APIURL: api.URL, RegistrationToken: "wrong", DataDir: t.TempDir()}
	_, err := ensureRegistered(context.Background(), cfg, NewAPIClient(api.URL, ""), SystemInfo{}, nil)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 401 {
		t.Fatalf("error %v, want the API's 401", err)
	}
	for _, name := range []string{"agent.json", "secret.key"} {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, name)); !os.IsNotExist(err) {
			t.Errorf("%s written after a refused registration", name)
		}
	}

	cfg.RegistrationToken = ""
	if _, err := ensureRegistered(context.Background(), cfg, NewAPIClient(api.URL, ""), SystemInfo{}, nil); err == nil {
		t.Error("no token and no agent.json: want an error")
	}
}

func TestHeartbeatCarriesNodeToken(t *testing.T) {
	api := newFakeAPI(t)
	client := NewAPIClient(api.URL+"/", testNodeToken)
	probe := &machineProbe{info: SystemInfo{CPUs: 2, MemoryMB: 512}, procDir: fakeProc(t, sampleProcStat, sampleMemInfo, "0.1 0.1 0.1 1/1 1\n"),
		containers: func(context.Context) (int, error) { return 3, nil }}
	sendHeartbeat(context.Background(), client, 1500*time.Millisecond, probe)
	if len(api.heartbeats) != 1 {
		t.Fatalf("heartbeats %+v", api.heartbeats)
	}
	hb := api.heartbeats[0]
	if hb.CPUs != 2 || hb.MemoryMB != 512 || hb.Containers == nil || *hb.Containers != 3 || hb.AgentVersion != Version || hb.IntervalSeconds != 2 {
		t.Errorf("heartbeat %+v", hb)
	}
	// A rejected token is logged, not fatal.
	sendHeartbeat(context.Background(), client.withToken("stale"), time.Second, probe)
	if _, _, _, bad := api.counts(); bad != 1 {
		t.Errorf("bad auth count %d", bad)
	}
}

func TestHTTPLogSinkRetries(t *testing.T) {
	api := newFakeAPI(t)
	api.failLogs = 2
	sink := NewHTTPLogSink(NewAPIClient(api.URL, testNodeToken))
	sink.backoff = time.Millisecond
	chunk := buildlog.Chunk{DeploymentID: "dep/1", Source: "build", Attempt: 2, Seq: 7, Text: "Step 1/2\n"}
	if err := sink.Append(context.Background(), chunk); err != nil {
		t.Fatal(err)
	}
	if len(api.chunks) != 1 || api.chunks[0] != chunk {
		t.Errorf("chunks %+v", api.chunks)
	}
	if len(api.logPaths) != 3 || api.logPaths[0] != "/api/paas/agent/deployments/dep%2F1/logs" {
		t.Errorf("posted to %v", api.logPaths)
	}

	// Client errors are not retried; a server that keeps failing gives up after a few tries.
	bad := NewHTTPLogSink(NewAPIClient(api.URL, "wrong"))
	bad.backoff = time.Millisecond
	if err := bad.Append(context.Background(), chunk); err == nil {
		t.Error("rejected token: want an error")
	}
	api.failLogs = 100
	before := len(api.logPaths)
	if err := sink.Append(context.Background(), chunk); err == nil {
		t.Error("failing server: want an error")
	}
	if tries := len(api.logPaths) - before; tries != sink.attempts {
		t.Errorf("%d tries, want %d", tries, sink.attempts)
	}
}
