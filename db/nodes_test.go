package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/skypanel/skypanel/db"
)

// nodeStatus finds the node in ListNodes and returns its derived status.
func nodeStatus(t *testing.T, nodeID string) string {
	t.Helper()
	nodes, err := testStore.ListNodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.ID == nodeID {
			return n.Status
		}
	}
	t.Fatalf("node %s not listed", nodeID)
	return ""
}

// setHeartbeatAge makes the node's last heartbeat age old.
func setHeartbeatAge(t *testing.T, nodeID string, age time.Duration) {
	t.Helper()
	if _, err := testStore.Pool().Exec(context.Background(),
		`UPDATE nodes SET last_heartbeat_at = now() - make_interval(secs => $2) WHERE id = $1`, nodeID, age.Seconds()); err != nil {
		t.Fatal(err)
	}
}

// newAppInRegion creates an app of a new customer in the region.
func newAppInRegion(t *testing.T, regionID string) db.Application {
	t.Helper()
	ctx := context.Background()
	u, err := testStore.CreateUser(ctx, uuid.NewString()+"@example.com", "Test", db.RoleCustomer, []byte(uuid.NewString()))
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := testStore.RuntimeByRef(ctx, "dockerfile")
	plan, _ := testStore.PlanByRef(ctx, "starter")
	app, err := testStore.CreateApplication(ctx, db.NewApplication{
		OrgID: u.OrgID, Name: "app-" + uuid.NewString()[:8], RuntimeID: rt.ID, PlanID: plan.ID, RegionID: regionID,
		GitURL: "https://example.com/x.git", GitBranch: "main",
	})
	if err != nil {
		t.Fatal(err)
	}
	return app
}

// newRegisteredNode registers a node of its own region (so no other test's node is a candidate
// for placement there) and returns it with its region.
func newRegisteredNode(t *testing.T) (db.Node, string) {
	t.Helper()
	ctx := context.Background()
	region, err := testStore.EnsureRegion(ctx, "health-"+uuid.NewString()[:8], "Health test")
	if err != nil {
		t.Fatal(err)
	}
	regHash := []byte(uuid.NewString())
	node, err := testStore.CreateNode(ctx, "node-"+uuid.NewString()[:8], region.ID, "", regHash, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	node, err = testStore.RegisterNode(ctx, regHash, []byte(uuid.NewString()), db.NodeRegistration{Host: "h1", CPUs: 2, MemoryMB: 2048})
	if err != nil {
		t.Fatal(err)
	}
	return node, region.ID
}

// A node registers once with its token, is online while it heartbeats, and counts as offline
// (and is no longer chosen for new apps) once it missed three of its own heartbeat intervals:
// 3 × 10 s while it never reported one, 3 × its interval once it has.
func TestNodeRegistersOnceAndGoesOfflineWhenSilent(t *testing.T) {
	ctx := context.Background()
	// A region of its own, so no other test's node is a candidate for placement.
	region, err := testStore.EnsureRegion(ctx, "offline-"+uuid.NewString()[:8], "Offline test")
	if err != nil {
		t.Fatal(err)
	}
	regHash := []byte(uuid.NewString())
	node, err := testStore.CreateNode(ctx, "node-"+uuid.NewString()[:8], region.ID, "", regHash, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got := nodeStatus(t, node.ID); got != "pending" {
		t.Fatalf("a node that has not registered is %s, want pending", got)
	}
	if _, err := testStore.PlaceApplication(ctx, newAppInRegion(t, region.ID).ID); !errors.Is(err, db.ErrNoNode) {
		t.Fatalf("placement on a pending node: %v, want ErrNoNode", err)
	}

	if _, err := testStore.RegisterNode(ctx, regHash, []byte(uuid.NewString()), db.NodeRegistration{CPUs: 2, MemoryMB: 4096}); err != nil {
		t.Fatal(err)
	}
	if _, err := testStore.RegisterNode(ctx, regHash, []byte(uuid.NewString()), db.NodeRegistration{CPUs: 2, MemoryMB: 4096}); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("the registration token worked a second time: %v", err)
	}

	// No interval reported yet: the default 10 s, offline after 30 s.
	setHeartbeatAge(t, node.ID, 28*time.Second)
	if got := nodeStatus(t, node.ID); got != "online" {
		t.Fatalf("a node silent for 28 s is %s, want online", got)
	}
	setHeartbeatAge(t, node.ID, 32*time.Second)
	if got := nodeStatus(t, node.ID); got != "offline" {
		t.Fatalf("a node silent for 32 s with the default interval is %s, want offline", got)
	}

	// An agent that heartbeats every 20 s is online for 60 s of silence.
	if err := testStore.RecordHeartbeat(ctx, node.ID, db.NodeHeartbeat{CPUs: 2, IntervalSeconds: 20}); err != nil {
		t.Fatal(err)
	}
	setHeartbeatAge(t, node.ID, 58*time.Second)
	if got := nodeStatus(t, node.ID); got != "online" {
		t.Fatalf("a node of 20 s heartbeats silent for 58 s is %s, want online", got)
	}
	placed, err := testStore.PlaceApplication(ctx, newAppInRegion(t, region.ID).ID)
	if err != nil || placed != node.ID {
		t.Fatalf("placement on the online node: %q %v", placed, err)
	}

	setHeartbeatAge(t, node.ID, 62*time.Second)
	if got := nodeStatus(t, node.ID); got != "offline" {
		t.Fatalf("a node of 20 s heartbeats silent for 62 s is %s, want offline", got)
	}
	if _, err := testStore.PlaceApplication(ctx, newAppInRegion(t, region.ID).ID); !errors.Is(err, db.ErrNoNode) {
		t.Fatalf("placement on an offline node: %v, want ErrNoNode", err)
	}

	if err := testStore.RecordHeartbeat(ctx, node.ID, db.NodeHeartbeat{CPUs: 2, MemoryMB: 4096}); err != nil {
		t.Fatal(err)
	}
	if got := nodeStatus(t, node.ID); got != "online" {
		t.Fatalf("after a heartbeat the node is %s, want online", got)
	}
}
