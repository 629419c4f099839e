package db_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/skypanel/skypanel/db"
)

// drainRegion is a region of its own with nodes a (3584 MiB to give), b (1536) and c (1536),
// all online and active.
func drainRegion(t *testing.T) (regionID, suffix, a, b, c string) {
	t.Helper()
	suffix = uuid.NewString()[:8]
	region, err := testStore.EnsureRegion(context.Background(), "drain-"+suffix, "Drain test")
	if err != nil {
		t.Fatal(err)
	}
	return region.ID, suffix, registeredNode(t, region.ID, "a-"+suffix, 4096),
		registeredNode(t, region.ID, "b-"+suffix, 2048), registeredNode(t, region.ID, "c-"+suffix, 2048)
}

func placeOn(t *testing.T, appID, nodeID string) {
	t.Helper()
	if _, err := testStore.Pool().Exec(context.Background(), `UPDATE applications SET node_id = $2 WHERE id = $1`, appID, nodeID); err != nil {
		t.Fatal(err)
	}
}

// A move's destination: never the node it leaves, never a cordoned or offline node, the one
// with the smallest reserved share among those with room; none left is a NoRoomError that
// names the node being left.
func TestMoveDestinationExcludesTheNodeLeftAndNodesNotActiveOrOnline(t *testing.T) {
	ctx := context.Background()
	regionID, suffix, a, b, c := drainRegion(t)
	app := newAppInRegion(t, regionID) // starter: 256 MiB
	placeOn(t, app.ID, a)
	// b and c are empty: b by name.
	dest, err := testStore.ChooseMoveDestination(ctx, app.ID, a)
	if err != nil || dest.NodeID != b || dest.NodeName != "b-"+suffix || dest.FromName != "a-"+suffix {
		t.Fatalf("destination %+v (%v), want b", dest, err)
	}
	// b carries an app now: c, the emptier.
	placeOn(t, newAppInRegion(t, regionID).ID, b)
	if dest, err := testStore.ChooseMoveDestination(ctx, app.ID, a); err != nil || dest.NodeID != c {
		t.Fatalf("destination %+v (%v), want c", dest, err)
	}
	if _, err := testStore.CordonNode(ctx, c, ""); err != nil {
		t.Fatal(err)
	}
	if dest, err := testStore.ChooseMoveDestination(ctx, app.ID, a); err != nil || dest.NodeID != b {
		t.Fatalf("c cordoned: destination %+v (%v), want b", dest, err)
	}
	setHeartbeatAge(t, b, time.Hour)
	_, err = testStore.ChooseMoveDestination(ctx, app.ID, a)
	var noRoom *db.NoRoomError
	if !errors.As(err, &noRoom) || noRoom.Nodes != 0 || noRoom.Except != "a-"+suffix {
		t.Fatalf("b offline, c cordoned: %v, want no room", err)
	}
	if want := "region drain-" + suffix + " has no other active, online node than a-" + suffix + " to move the application to: add a node to it"; err.Error() != want {
		t.Errorf("refusal %q", err)
	}
}

// The switch happens only from the node the move left; a retry finds it done.
func TestSwitchApplicationNodeOnlyFromTheNodeLeft(t *testing.T) {
	ctx := context.Background()
	regionID, _, a, b, c := drainRegion(t)
	app := newAppInRegion(t, regionID)
	placeOn(t, app.ID, a)
	if ok, err := testStore.SwitchApplicationNode(ctx, app.ID, c, b, ""); err != nil || ok {
		t.Fatalf("switch from a node the app is not on: %v %v", ok, err)
	}
	if ok, err := testStore.SwitchApplicationNode(ctx, app.ID, a, b, "sp-x-1"); err != nil || !ok {
		t.Fatalf("switch: %v %v", ok, err)
	}
	if ok, err := testStore.SwitchApplicationNode(ctx, app.ID, a, b, "sp-x-1"); err != nil || !ok {
		t.Fatalf("switch retried: %v %v", ok, err)
	}
	target, err := testStore.AppTargetByID(ctx, app.ID)
	if err != nil || target.NodeID != b || target.CurrentInstance != "sp-x-1" {
		t.Fatalf("after the switch: %+v %v", target, err)
	}
	apps, err := testStore.NodeApps(ctx, b)
	if err != nil || len(apps) != 1 || apps[0].AppID != app.ID || apps[0].OrgID != app.OrgID {
		t.Errorf("apps of b: %+v %v", apps, err)
	}
}

// A drain begins from active or cordoned only, records who asked, and ends drained or cordoned
// again with its event.
func TestDrainStatesAndEvents(t *testing.T) {
	ctx := context.Background()
	_, _, a, b, c := drainRegion(t)
	if n, err := testStore.OtherActiveOnlineNodes(ctx, a); err != nil || n != 2 {
		t.Fatalf("other nodes of a: %d %v", n, err)
	}
	if err := testStore.BeginNodeDrain(ctx, a, false, ""); err != nil {
		t.Fatal(err)
	}
	if err := testStore.BeginNodeDrain(ctx, a, false, ""); err != nil {
		t.Fatalf("a retried begin: %v", err)
	}
	if n, err := testStore.OtherActiveOnlineNodes(ctx, b); err != nil || n != 1 {
		t.Fatalf("other nodes of b, a draining: %d %v", n, err)
	}
	if err := testStore.FinishNodeDrain(ctx, a, true, "drained: 2 of 2 applications moved"); err != nil {
		t.Fatal(err)
	}
	var invalid *db.InvalidStateError
	if err := testStore.BeginNodeDrain(ctx, a, false, ""); !errors.As(err, &invalid) || invalid.Reason != "the node is drained: only an active or cordoned node can be drained" {
		t.Fatalf("drain a drained node: %v", err)
	}
	if err := testStore.BeginNodeDrain(ctx, b, true, ""); err != nil {
		t.Fatal(err)
	}
	if err := testStore.FinishNodeDrain(ctx, b, false, "1 of 1 application did not move"); err != nil {
		t.Fatal(err)
	}
	if node, _ := testStore.NodeByID(ctx, b); node.AdminState != db.NodeCordoned {
		t.Errorf("b after an incomplete drain: %s", node.AdminState)
	}
	events, err := testStore.NodeEvents(ctx, a, 10)
	if err != nil || events[0].Kind != db.NodeEventDrained || events[0].Detail != "drained: 2 of 2 applications moved" || events[1].Kind != db.NodeEventDraining {
		t.Errorf("events of a: %+v %v", events, err)
	}
	if events, _ := testStore.NodeEvents(ctx, b, 10); events[0].Kind != db.NodeEventDrainIncomplete || events[1].Kind != db.NodeEventEvacuating {
		t.Errorf("events of b: %+v", events)
	}
	if _, err := testStore.OtherActiveOnlineNodes(ctx, uuid.NewString()); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("unknown node: %v", err)
	}
	_ = c
}

// The apps a node reports that are not its own: placed elsewhere or gone, unless an operation
// of theirs waits or runs (a move starts the app on its destination before placing it there).
func TestForeignAppsOfANodeReport(t *testing.T) {
	ctx := context.Background()
	regionID, _, a, b, _ := drainRegion(t)
	own, moved, moving := newAppInRegion(t, regionID), newAppInRegion(t, regionID), newAppInRegion(t, regionID)
	placeOn(t, own.ID, a)
	placeOn(t, moved.ID, b)
	placeOn(t, moving.ID, b)
	// moving's move runs: its containers on a are the move's.
	if _, err := testStore.Pool().Exec(ctx, `INSERT INTO app_operations (id, app_id, kind, workflow_type, workflow_id, input, status)
		VALUES ($1, $2, 'move', 'MoveApp', $3, '{}', 'running')`, uuid.NewString(), moving.ID, "move/"+moving.ID); err != nil {
		t.Fatal(err)
	}
	gone := uuid.NewString()
	foreign, err := testStore.ForeignApps(ctx, a, []string{own.ID, moved.ID, moving.ID, gone, "not-a-uuid"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{moved.ID, gone, "not-a-uuid"}
	slices.Sort(want)
	if !slices.Equal(foreign, want) {
		t.Errorf("foreign %v, want %v", foreign, want)
	}
	if foreign, err := testStore.ForeignApps(ctx, a, nil); err != nil || len(foreign) != 0 {
		t.Errorf("empty report: %v %v", foreign, err)
	}
}

// Moves running at once (two drains) see each other: the room a move chose is reserved for it
// until its switch, or until its operation ends without one.
func TestMovesReserveTheirDestinationUntilTheSwitch(t *testing.T) {
	ctx := context.Background()
	regionID, _, a, b, c := drainRegion(t)
	// Three apps of 1024 MiB on a; b and c give 1536 each: room for one such app each.
	var apps []string
	for range 3 {
		app := newAppInRegion(t, regionID)
		placeOn(t, app.ID, a)
		if _, err := testStore.Pool().Exec(ctx, `UPDATE applications SET instances = 4 WHERE id = $1`, app.ID); err != nil {
			t.Fatal(err)
		}
		apps = append(apps, app.ID)
	}
	first, err := testStore.ChooseMoveDestination(ctx, apps[0], a)
	if err != nil || first.NodeID != b {
		t.Fatalf("first move: %+v %v, want b", first, err)
	}
	// Chosen again (a retried activity), the first move does not count itself twice.
	if again, err := testStore.ChooseMoveDestination(ctx, apps[0], a); err != nil || again.NodeID != b {
		t.Fatalf("first move chosen again: %+v %v, want b", again, err)
	}
	second, err := testStore.ChooseMoveDestination(ctx, apps[1], a)
	if err != nil || second.NodeID != c {
		t.Fatalf("second move while the first is under way: %+v %v, want c (b's room is the first's)", second, err)
	}
	var noRoom *db.NoRoomError
	if _, err := testStore.ChooseMoveDestination(ctx, apps[2], a); !errors.As(err, &noRoom) {
		t.Fatalf("third move: %v, want no room (b and c reserved)", err)
	}

	// The first move switches: its room stays taken, now by the app itself.
	if ok, err := testStore.SwitchApplicationNode(ctx, apps[0], a, b, ""); err != nil || !ok {
		t.Fatalf("switch: %v %v", ok, err)
	}
	if _, err := testStore.ChooseMoveDestination(ctx, apps[2], a); !errors.As(err, &noRoom) {
		t.Fatalf("third move after the first switched: %v, want no room", err)
	}
	// The second move's operation ends without a switch: c's room is free again.
	if _, err := testStore.FinishOperation(ctx, apps[1], "move/"+apps[1]+"/gone", db.OperationFailed, "failed"); err != nil {
		t.Fatal(err)
	}
	if third, err := testStore.ChooseMoveDestination(ctx, apps[2], a); err != nil || third.NodeID != c {
		t.Fatalf("third move once the second ended: %+v %v, want c", third, err)
	}
}
