package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/skypanel/skypanel/db"
)

// registeredNode is an online node of region with memoryMB.
func registeredNode(t *testing.T, regionID, name string, memoryMB int64) string {
	t.Helper()
	ctx := context.Background()
	regHash := []byte(uuid.NewString())
	node, err := testStore.CreateNode(ctx, name, regionID, "", regHash, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testStore.RegisterNode(ctx, regHash, []byte(uuid.NewString()), db.NodeRegistration{CPUs: 2, MemoryMB: memoryMB}); err != nil {
		t.Fatal(err)
	}
	return node.ID
}

// Placement by memory: each node offers its memory less a system share (a tenth, at least
// 512 MiB); a new app goes to the node with room whose reserved share is the smallest; when
// none has room the refusal names the region, the need and the most any node has left, and a
// scale past the app's node's room names the node.
func TestPlacementFollowsUnreservedMemory(t *testing.T) {
	ctx := context.Background()
	suffix := uuid.NewString()[:8]
	region, err := testStore.EnsureRegion(ctx, "place-"+suffix, "Placement test")
	if err != nil {
		t.Fatal(err)
	}
	// a: 4096 − 512 = 3584 MiB to give; b: 2048 − 512 = 1536 MiB.
	a := registeredNode(t, region.ID, "a-"+suffix, 4096)
	b := registeredNode(t, region.ID, "b-"+suffix, 2048)
	plan, err := testStore.CreatePlan(ctx, db.Plan{Slug: "gig-" + suffix, Name: "1 GiB", CPUMillis: 500, MemoryMB: 1024, PricePerHourMinor: 1, Currency: "USD", Active: true})
	if err != nil {
		t.Fatal(err)
	}
	newApp := func() db.Application {
		app := newAppInRegion(t, region.ID)
		if _, err := testStore.UpdateApplication(ctx, app.OrgID, app.ID, db.ApplicationChanges{PlanID: &plan.ID}); err != nil {
			t.Fatal(err)
		}
		return app
	}
	var apps []db.Application
	// a (0 of 3584) ties with b (0 of 1536): a by name; then b (0%) over a (29%); then a (29%)
	// over b (67%); then a (57%) over b (67%).
	for i, want := range []string{a, b, a, a} {
		app := newApp()
		got, err := testStore.PlaceApplication(ctx, app.ID)
		if err != nil || got != want {
			t.Fatalf("app %d placed on %q (%v), want %q", i+1, got, err, want)
		}
		apps = append(apps, app)
	}
	// a has 512 MiB left, b 512: a fifth 1 GiB app fits nowhere.
	var noRoom *db.NoRoomError
	_, err = testStore.PlaceApplication(ctx, newApp().ID)
	if !errors.As(err, &noRoom) || noRoom.NeedMB != 1024 || noRoom.FreeMB != 512 || noRoom.Nodes != 2 || noRoom.Region != "place-"+suffix {
		t.Fatalf("fifth app: %v (%+v), want no room: need 1024, 512 at most, 2 nodes", err, noRoom)
	}
	if err := testStore.CheckRoomInRegion(ctx, region.ID, plan.ID); !errors.As(err, &noRoom) {
		t.Errorf("a new app of the plan in the full region: %v, want no room", err)
	}
	starter, _ := testStore.PlanByRef(ctx, "starter") // 256 MiB: still fits
	if err := testStore.CheckRoomInRegion(ctx, region.ID, starter.ID); err != nil {
		t.Errorf("a small app in the full region: %v", err)
	}
	// Scaling the app on b to 2 needs 1024 more, b has 512.
	if err := testStore.CheckRoomToScale(ctx, apps[1].OrgID, apps[1].ID, 2); !errors.As(err, &noRoom) || noRoom.Node != "b-"+suffix {
		t.Errorf("scale past b's room: %v, want no room on b", err)
	}
	if err := testStore.CheckRoomToScale(ctx, apps[1].OrgID, apps[1].ID, 1); err != nil {
		t.Errorf("scale to the count it has: %v", err)
	}
	// A cordoned node takes no new app, however much room it has: a plan that fits a (512 MiB
	// left) but not b once a is cordoned.
	small, err := testStore.CreatePlan(ctx, db.Plan{Slug: "half-" + suffix, Name: "512 MiB", CPUMillis: 250, MemoryMB: 512, PricePerHourMinor: 1, Currency: "USD", Active: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := testStore.CheckRoomInRegion(ctx, region.ID, small.ID); err != nil {
		t.Fatalf("512 MiB before cordoning: %v", err)
	}
	if _, err := testStore.CordonNode(ctx, a, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := testStore.CordonNode(ctx, b, ""); err != nil {
		t.Fatal(err)
	}
	if err := testStore.CheckRoomInRegion(ctx, region.ID, small.ID); !errors.As(err, &noRoom) || noRoom.Nodes != 0 {
		t.Errorf("every node cordoned: %v, want no node to place on", err)
	}
	// A region without an online node: ErrNoNode.
	empty, _ := testStore.EnsureRegion(ctx, "empty-"+suffix, "Empty")
	if err := testStore.CheckRoomInRegion(ctx, empty.ID, starter.ID); !errors.Is(err, db.ErrNoNode) {
		t.Errorf("a region without nodes: %v, want ErrNoNode", err)
	}
}
