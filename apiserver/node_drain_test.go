package apiserver

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/skypanel/skypanel/db"
)

func drainNode(state, status string, others int) *fakeNodes {
	return &fakeNodes{node: db.Node{ID: "n1", Name: "worker-1", Region: "eu", AdminState: state, Status: status}, others: others}
}

// A drain of an online node with somewhere to move its apps starts drain/<id>: 202 with the
// workflow; a second one while it runs is 409.
func TestDrainStartsTheWorkflowOnceAtATime(t *testing.T) {
	f := drainNode(db.NodeActive, "online", 1)
	api := nodeAdminAPI(t, f)
	resp := api.Post("/api/paas/admin/nodes/n1/drain")
	if resp.Code != http.StatusAccepted {
		t.Fatalf("drain: %d %s", resp.Code, resp.Body)
	}
	var body struct {
		WorkflowID string `json:"workflow_id"`
		Status     string `json:"status"`
	}
	if err := json.Unmarshal(resp.Body.Bytes(), &body); err != nil || body.WorkflowID != "drain/n1" || body.Status != "draining" {
		t.Fatalf("drain answer %s (%v)", resp.Body, err)
	}
	if p := decodeProblem(t, api.Post("/api/paas/admin/nodes/n1/drain"), http.StatusConflict); !strings.Contains(p.Detail, "runs already") {
		t.Errorf("second drain: %+v", p)
	}
	if len(f.drains) != 1 || f.drains[0] != "drain n1" {
		t.Errorf("drains started: %v", f.drains)
	}
	decodeProblem(t, api.Post("/api/paas/admin/nodes/nope/drain"), http.StatusNotFound)
}

// A drain is refused, naming why and the field at fault, for a node that is the last of its
// region, is draining, drained or revoked already, or is offline (evacuate it).
func TestDrainRefusals(t *testing.T) {
	for _, tc := range []struct {
		name     string
		f        *fakeNodes
		detail   string
		location string
	}{
		{"last node", drainNode(db.NodeActive, "online", 0), "node worker-1 is the only active, online node of region eu: there is nothing to move its apps to", "path.id"},
		{"draining", drainNode(db.NodeDraining, "online", 1), "node worker-1 is draining: only an active or cordoned node can be drained or evacuated", "path.id"},
		{"drained", drainNode(db.NodeDrained, "online", 1), "node worker-1 is drained", "path.id"},
		{"revoked", drainNode(db.NodeRevoked, "offline", 1), "node worker-1 is revoked: it cannot hand its apps over; evacuate it instead", "path.id"},
		{"offline", drainNode(db.NodeCordoned, "offline", 1), "node worker-1 is offline: it cannot hand its apps over; evacuate it instead", "path.id"},
	} {
		p := decodeProblem(t, nodeAdminAPI(t, tc.f).Post("/api/paas/admin/nodes/n1/drain"), http.StatusConflict)
		if !strings.HasPrefix(p.Detail, tc.detail) || len(p.Errors) != 1 || p.Errors[0].Location != tc.location {
			t.Errorf("%s: %+v", tc.name, p)
		}
		if len(tc.f.drains) != 0 {
			t.Errorf("%s: a drain started", tc.name)
		}
	}
}

// An evacuation is for a node that is offline; an online one needs force.
func TestEvacuateAnOnlineNodeNeedsForce(t *testing.T) {
	f := drainNode(db.NodeActive, "online", 1)
	api := nodeAdminAPI(t, f)
	p := decodeProblem(t, api.Post("/api/paas/admin/nodes/n1/evacuate", map[string]any{}), http.StatusConflict)
	if p.Detail != "node worker-1 is online: drain it, or evacuate with force" || len(p.Errors) != 1 || p.Errors[0].Location != "body.force" {
		t.Errorf("evacuate online: %+v", p)
	}
	resp := api.Post("/api/paas/admin/nodes/n1/evacuate", map[string]any{"force": true})
	if resp.Code != http.StatusAccepted || !strings.Contains(resp.Body.String(), `"workflow_id":"evacuate/n1"`) || !strings.Contains(resp.Body.String(), `"status":"evacuating"`) {
		t.Fatalf("evacuate with force: %d %s", resp.Code, resp.Body)
	}

	dead := drainNode(db.NodeActive, "offline", 2)
	if resp := nodeAdminAPI(t, dead).Post("/api/paas/admin/nodes/n1/evacuate", map[string]any{}); resp.Code != http.StatusAccepted {
		t.Fatalf("evacuate an offline node: %d %s", resp.Code, resp.Body)
	}
	if len(dead.drains) != 1 || dead.drains[0] != "evacuate n1" {
		t.Errorf("drains started: %v", dead.drains)
	}
	if p := decodeProblem(t, nodeAdminAPI(t, drainNode(db.NodeActive, "offline", 0)).Post("/api/paas/admin/nodes/n1/evacuate", map[string]any{}), http.StatusConflict); !strings.Contains(p.Detail, "nothing to move its apps to") {
		t.Errorf("evacuate the last node: %+v", p)
	}
	decodeProblem(t, nodeAdminAPI(t, f).Post("/api/paas/admin/nodes/nope/evacuate", map[string]any{}), http.StatusNotFound)

	// A revoked node is cut off, whatever its last heartbeat says: no force is needed.
	revoked := drainNode(db.NodeRevoked, "online", 1)
	if resp := nodeAdminAPI(t, revoked).Post("/api/paas/admin/nodes/n1/evacuate", map[string]any{}); resp.Code != http.StatusAccepted {
		t.Fatalf("evacuate a revoked node: %d %s", resp.Code, resp.Body)
	}
	if len(revoked.drains) != 1 || revoked.drains[0] != "evacuate n1" {
		t.Errorf("drains started: %v", revoked.drains)
	}
}
