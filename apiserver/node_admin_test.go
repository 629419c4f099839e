package apiserver

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/humatest"

	"github.com/skypanel/skypanel/db"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeNodes is one node, "n1", with a cordon state machine as the store enforces it.
type fakeNodes struct {
	node      db.Node
	apps      int
	lastLimit int
	// others is how many other active, online nodes the node's region has.
	others int
	// drains are the drains started, "drain n1" or "evacuate n1"; running refuses the next.
	drains  []string
	running bool
	// revokes counts the store's revocations that changed the node; cut lists the gateway's.
	revokes int
	cut     []string
}

func (f *fakeNodes) RevokeNode(_ context.Context, id, _ string) (db.Node, bool, error) {
	if err := f.find(id); err != nil {
		return db.Node{}, false, err
	}
	if f.node.AdminState == db.NodeRevoked {
		return f.node, false, nil
	}
	f.node.AdminState = db.NodeRevoked
	f.revokes++
	return f.node, true, nil
}

// Revoke is the node gateway's side.
func (f *fakeNodes) Revoke(nodeID, name string) { f.cut = append(f.cut, nodeID+" "+name) }

func (f *fakeNodes) OtherActiveOnlineNodes(_ context.Context, id string) (int, error) {
	return f.others, f.find(id)
}

func (f *fakeNodes) StartDrain(_ context.Context, nodeID string, evacuate bool, _ string) (string, error) {
	kind := "drain"
	if evacuate {
		kind = "evacuate"
	}
	if f.running {
		return kind + "/" + nodeID, errDrainRunning
	}
	f.drains = append(f.drains, kind+" "+nodeID)
	f.running = true
	return kind + "/" + nodeID, nil
}

func (f *fakeNodes) find(id string) error {
	if id != f.node.ID {
		return db.ErrNotFound
	}
	return nil
}

func (f *fakeNodes) NodeByID(_ context.Context, id string) (db.Node, error) {
	return f.node, f.find(id)
}

func (f *fakeNodes) NodeMetrics(_ context.Context, id string, window time.Duration, maxPoints int) (db.NodeMetricSeries, error) {
	if err := f.find(id); err != nil {
		return db.NodeMetricSeries{}, err
	}
	to := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	cpu := 42.5
	return db.NodeMetricSeries{From: to.Add(-window), To: to, BucketSeconds: window.Seconds() / float64(maxPoints),
		Points: []db.NodeMetricPoint{{At: to.Add(-time.Hour), Samples: 28, Usage: db.NodeUsage{CPUPercent: &cpu}}}}, nil
}

func (f *fakeNodes) NodeEvents(_ context.Context, id string, limit int) ([]db.NodeEvent, error) {
	f.lastLimit = limit
	return []db.NodeEvent{{ID: 2, Kind: db.NodeEventOffline}, {ID: 1, Kind: db.NodeEventOnline}}, f.find(id)
}

func (f *fakeNodes) CordonNode(_ context.Context, id, _ string) (db.Node, error) {
	return f.move(id, db.NodeActive, db.NodeCordoned)
}

func (f *fakeNodes) UncordonNode(_ context.Context, id, _ string) (db.Node, error) {
	return f.move(id, db.NodeCordoned, db.NodeActive)
}

func (f *fakeNodes) move(id, from, to string) (db.Node, error) {
	if err := f.find(id); err != nil {
		return db.Node{}, err
	}
	if f.node.AdminState != from {
		return db.Node{}, &db.InvalidStateError{Reason: "the node is " + f.node.AdminState}
	}
	f.node.AdminState = to
	return f.node, nil
}

func (f *fakeNodes) DeleteNode(_ context.Context, id string) error {
	if err := f.find(id); err != nil {
		return err
	}
	if f.apps > 0 {
		return &db.InvalidStateError{Reason: "the node still has 2 applications placed on it: delete them first"}
	}
	return nil
}

// nodeAdminAPI serves the admin node routes over the fake, without authentication (that is
// the server's middleware, checked in TestNodeAdminRoutesNeedAToken).
func nodeAdminAPI(t *testing.T, f *fakeNodes) humatest.TestAPI {
	_, api := humatest.New(t)
	s := &Server{log: quietLog}
	nodeAdmin{store: f, drains: f, gateway: f, problem: s.problem, log: quietLog}.register(api, func(id, method, path, summary string, status int) huma.Operation {
		return huma.Operation{OperationID: id, Method: method, Path: path, Summary: summary, DefaultStatus: status}
	})
	return api
}

type problemBody struct {
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Location string `json:"location"`
	} `json:"errors"`
}

func decodeProblem(t *testing.T, resp *httptest.ResponseRecorder, status int) problemBody {
	t.Helper()
	if resp.Code != status {
		t.Fatalf("status %d, want %d: %s", resp.Code, status, resp.Body)
	}
	var p problemBody
	if err := json.Unmarshal(resp.Body.Bytes(), &p); err != nil {
		t.Fatalf("not a problem: %v %s", err, resp.Body)
	}
	return p
}

func TestNodeDetailAnswersTheNodeAndItsMetrics(t *testing.T) {
	f := &fakeNodes{node: db.Node{ID: "n1", Name: "worker-1", Status: "online", AdminState: db.NodeActive, HeartbeatIntervalSeconds: 10}}
	api := nodeAdminAPI(t, f)

	resp := api.Get("/api/paas/admin/nodes/n1")
	if resp.Code != http.StatusOK {
		t.Fatalf("%d %s", resp.Code, resp.Body)
	}
	var body struct {
		Node struct {
			Name       string `json:"name"`
			AdminState string `json:"admin_state"`
			Interval   int    `json:"heartbeat_interval_seconds"`
		} `json:"node"`
		Metrics struct {
			BucketSeconds float64 `json:"bucket_seconds"`
			Points        []struct {
				Samples    int      `json:"samples"`
				CPUPercent *float64 `json:"cpu_percent"`
			} `json:"points"`
		} `json:"metrics"`
	}
	if err := json.Unmarshal(resp.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body.Node.Name != "worker-1" || body.Node.AdminState != "active" || body.Node.Interval != 10 {
		t.Errorf("node %+v", body.Node)
	}
	// 24 h in 300 points.
	if body.Metrics.BucketSeconds != 288 || len(body.Metrics.Points) != 1 || body.Metrics.Points[0].Samples != 28 || *body.Metrics.Points[0].CPUPercent != 42.5 {
		t.Errorf("metrics %+v", body.Metrics)
	}
	if strings.Contains(resp.Body.String(), "memory_used_mb") {
		t.Errorf("a figure no sample carried is sent: %s", resp.Body)
	}

	p := decodeProblem(t, api.Get("/api/paas/admin/nodes/nope"), http.StatusNotFound)
	if p.Detail != "node not found" {
		t.Errorf("unknown node: %+v", p)
	}
}

func TestNodeEventsAreLimited(t *testing.T) {
	f := &fakeNodes{node: db.Node{ID: "n1"}}
	api := nodeAdminAPI(t, f)
	resp := api.Get("/api/paas/admin/nodes/n1/events")
	if resp.Code != http.StatusOK || !strings.Contains(resp.Body.String(), `"kind":"offline"`) {
		t.Fatalf("%d %s", resp.Code, resp.Body)
	}
	if f.lastLimit != 50 {
		t.Errorf("default limit %d, want 50", f.lastLimit)
	}
	if resp := api.Get("/api/paas/admin/nodes/n1/events?limit=500"); resp.Code != http.StatusOK || f.lastLimit != 500 {
		t.Errorf("limit 500: %d, passed %d", resp.Code, f.lastLimit)
	}
	for _, limit := range []string{"0", "501"} {
		p := decodeProblem(t, api.Get("/api/paas/admin/nodes/n1/events?limit="+limit), http.StatusUnprocessableEntity)
		if len(p.Errors) != 1 || p.Errors[0].Location != "query.limit" {
			t.Errorf("limit %s: %+v", limit, p)
		}
	}
	decodeProblem(t, api.Get("/api/paas/admin/nodes/nope/events"), http.StatusNotFound)
}

func TestCordonUncordonAndDeleteAnswerConflictsWithTheReason(t *testing.T) {
	f := &fakeNodes{node: db.Node{ID: "n1", AdminState: db.NodeActive}, apps: 2}
	api := nodeAdminAPI(t, f)

	if p := decodeProblem(t, api.Post("/api/paas/admin/nodes/n1/uncordon"), http.StatusConflict); p.Detail != "the node is active" {
		t.Errorf("uncordon an active node: %+v", p)
	}
	resp := api.Post("/api/paas/admin/nodes/n1/cordon")
	if resp.Code != http.StatusOK || !strings.Contains(resp.Body.String(), `"admin_state":"cordoned"`) {
		t.Fatalf("cordon: %d %s", resp.Code, resp.Body)
	}
	if p := decodeProblem(t, api.Post("/api/paas/admin/nodes/n1/cordon"), http.StatusConflict); p.Detail != "the node is cordoned" {
		t.Errorf("cordon twice: %+v", p)
	}
	if resp := api.Post("/api/paas/admin/nodes/n1/uncordon"); resp.Code != http.StatusOK {
		t.Errorf("uncordon: %d %s", resp.Code, resp.Body)
	}
	decodeProblem(t, api.Post("/api/paas/admin/nodes/nope/cordon"), http.StatusNotFound)

	if p := decodeProblem(t, api.Delete("/api/paas/admin/nodes/n1"), http.StatusConflict); !strings.Contains(p.Detail, "2 applications") {
		t.Errorf("delete with apps: %+v", p)
	}
	f.apps = 0
	if resp := api.Delete("/api/paas/admin/nodes/n1"); resp.Code != http.StatusNoContent {
		t.Errorf("delete: %d %s", resp.Code, resp.Body)
	}
	decodeProblem(t, api.Delete("/api/paas/admin/nodes/nope"), http.StatusNotFound)
}

// Every admin node route sits behind the server's authentication.
func TestNodeAdminRoutesNeedAToken(t *testing.T) {
	s := New(Config{Keyring: testKeyring(t)}, nil, nil, quietLog)
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/api/paas/admin/nodes/n1"},
		{http.MethodGet, "/api/paas/admin/nodes/n1/events"},
		{http.MethodPost, "/api/paas/admin/nodes/n1/cordon"},
		{http.MethodPost, "/api/paas/admin/nodes/n1/uncordon"},
		{http.MethodPost, "/api/paas/admin/nodes/n1/drain"},
		{http.MethodPost, "/api/paas/admin/nodes/n1/evacuate"},
		{http.MethodDelete, "/api/paas/admin/nodes/n1"},
		{http.MethodPost, "/api/paas/admin/nodes/n1/revoke"},
	} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(r.method, r.path, nil))
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %d", r.method, r.path, rec.Code)
		}
	}
	doc := s.API().OpenAPI()
	for _, path := range []string{"/api/paas/admin/nodes/{id}", "/api/paas/admin/nodes/{id}/events", "/api/paas/admin/nodes/{id}/cordon", "/api/paas/admin/nodes/{id}/drain", "/api/paas/admin/nodes/{id}/evacuate"} {
		item := doc.Paths[path]
		if item == nil {
			t.Errorf("%s not in the OpenAPI document", path)
			continue
		}
		for _, op := range []*huma.Operation{item.Get, item.Post, item.Delete} {
			if op != nil && (len(op.Security) == 0 || len(op.Tags) != 1 || op.Tags[0] != "admin") {
				t.Errorf("%s %s: security %v tags %v", op.Method, path, op.Security, op.Tags)
			}
		}
	}
}

// The heartbeat's figures are bounded, and a used figure above its total is refused, each
// naming the field; an older agent's heartbeat (no figures) is still taken.
func TestHeartbeatInputIsValidated(t *testing.T) {
	_, api := humatest.New(t)
	var got db.NodeHeartbeat
	huma.Register(api, huma.Operation{OperationID: "hb", Method: http.MethodPost, Path: "/hb", DefaultStatus: http.StatusNoContent},
		func(_ context.Context, in *heartbeatInput) (*struct{}, error) {
			got = in.Body.record()
			return &struct{}{}, nil
		})

	full := map[string]any{"cpus": 4, "memory_mb": 7933, "containers": 3, "agent_version": "1.2.3", "interval_seconds": 10,
		"cpu_percent": 12.5, "memory_used_mb": 2048, "memory_total_mb": 7933, "disk_used_mb": 1000, "disk_total_mb": 50000,
		"load1": 0.5, "load5": 0.25, "load15": 0.1}
	if resp := api.Post("/hb", full); resp.Code != http.StatusNoContent {
		t.Fatalf("a full heartbeat: %d %s", resp.Code, resp.Body)
	}
	if got.IntervalSeconds != 10 || *got.Containers != 3 || *got.Usage.CPUPercent != 12.5 || *got.Usage.MemoryUsedMB != 2048 ||
		*got.Usage.DiskTotalMB != 50000 || *got.Usage.Load15 != 0.1 {
		t.Errorf("recorded %+v usage %+v", got, got.Usage)
	}
	if resp := api.Post("/hb", map[string]any{"cpus": 2, "memory_mb": 512, "containers": 1, "agent_version": "0.9"}); resp.Code != http.StatusNoContent {
		t.Fatalf("an older agent's heartbeat: %d %s", resp.Code, resp.Body)
	}
	if got.IntervalSeconds != 0 || got.Usage.CPUPercent != nil {
		t.Errorf("figures invented for an older agent: %+v", got)
	}

	for field, bad := range map[string]map[string]any{
		"body.cpu_percent":      {"cpu_percent": 100.5},
		"body.interval_seconds": {"interval_seconds": 0},
		"body.containers":       {"containers": -1},
		"body.load5":            {"load5": -0.1},
		"body.disk_total_mb":    {"disk_total_mb": -5},
		"body.memory_used_mb":   {"memory_used_mb": 9000, "memory_total_mb": 8000},
		"body.disk_used_mb":     {"disk_used_mb": 2, "disk_total_mb": 1},
	} {
		p := decodeProblem(t, api.Post("/hb", bad), http.StatusUnprocessableEntity)
		if len(p.Errors) != 1 || p.Errors[0].Location != field {
			t.Errorf("%v: %+v, want one error on %s", bad, p, field)
		}
	}
}

// A revoke marks the node revoked and cuts it off the gateway of this process; a second one
// changes nothing in the store but cuts again (a gateway that was down at the first).
func TestRevokeCutsTheNodeOffTheGateway(t *testing.T) {
	f := &fakeNodes{node: db.Node{ID: "n1", Name: "worker-1", AdminState: db.NodeDraining}}
	api := nodeAdminAPI(t, f)
	for range 2 {
		resp := api.Post("/api/paas/admin/nodes/n1/revoke")
		if resp.Code != http.StatusOK || !strings.Contains(resp.Body.String(), `"admin_state":"revoked"`) {
			t.Fatalf("revoke: %d %s", resp.Code, resp.Body)
		}
	}
	if f.revokes != 1 || len(f.cut) != 2 || f.cut[0] != "n1 worker-1" {
		t.Errorf("store revocations %d, gateway cuts %v", f.revokes, f.cut)
	}
	decodeProblem(t, api.Post("/api/paas/admin/nodes/nope/revoke"), http.StatusNotFound)
	if len(f.cut) != 2 {
		t.Errorf("an unknown node was cut: %v", f.cut)
	}
}
