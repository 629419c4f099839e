package db_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/skypanel/skypanel/db"
)

// eventKinds lists the node's event kinds, oldest first.
func eventKinds(t *testing.T, nodeID string) []string {
	t.Helper()
	events, err := testStore.NodeEvents(context.Background(), nodeID, 500)
	if err != nil {
		t.Fatal(err)
	}
	kinds := make([]string, len(events))
	for i, e := range events {
		kinds[len(events)-1-i] = e.Kind
	}
	return kinds
}

// sweepFinds runs the offline sweep and says whether it returned the node (other tests' nodes
// may go offline in the same sweep).
func sweepFinds(t *testing.T, nodeID string) bool {
	t.Helper()
	offline, err := testStore.MarkSilentNodesOffline(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range offline {
		if n.ID == nodeID {
			if n.Status != "offline" {
				t.Errorf("the sweep returned node %s as %s", nodeID, n.Status)
			}
			return true
		}
	}
	return false
}

func ptr[T any](v T) *T { return &v }

// Liveness transitions are recorded once each: online at registration (not again at the
// heartbeats that follow), offline by the sweep once the node missed 3 of its intervals (a
// second sweep finds nothing), online again at its next heartbeat.
func TestLivenessTransitionsAreRecordedOnce(t *testing.T) {
	ctx := context.Background()
	node, _ := newRegisteredNode(t)
	if got := strings.Join(eventKinds(t, node.ID), ","); got != "registered,online" {
		t.Fatalf("events after registration: %s", got)
	}
	for range 3 {
		if err := testStore.RecordHeartbeat(ctx, node.ID, db.NodeHeartbeat{CPUs: 2, IntervalSeconds: 2}); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(eventKinds(t, node.ID), ","); got != "registered,online" {
		t.Fatalf("heartbeats of an online node recorded events: %s", got)
	}
	if sweepFinds(t, node.ID) {
		t.Fatal("the sweep marked a node offline that just heartbeated")
	}

	setHeartbeatAge(t, node.ID, 5*time.Second) // within 3 × 2 s
	if sweepFinds(t, node.ID) {
		t.Fatal("offline after 5 s of silence with a 2 s interval; want 6 s")
	}
	setHeartbeatAge(t, node.ID, 7*time.Second)
	if !sweepFinds(t, node.ID) {
		t.Fatal("the sweep did not mark the node offline after 3 missed heartbeats")
	}
	if sweepFinds(t, node.ID) {
		t.Fatal("a second sweep returned the node again")
	}
	events, err := testStore.NodeEvents(ctx, node.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Kind != db.NodeEventOffline || !strings.Contains(events[0].Detail, "no heartbeat for 7 s") {
		t.Fatalf("newest event %+v", events)
	}

	if err := testStore.RecordHeartbeat(ctx, node.ID, db.NodeHeartbeat{CPUs: 2, IntervalSeconds: 2}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(eventKinds(t, node.ID), ","); got != "registered,online,offline,online" {
		t.Fatalf("events: %s", got)
	}
	if got := nodeStatus(t, node.ID); got != "online" {
		t.Fatalf("after the heartbeat: %s", got)
	}

	// Several control workers sweep at once: the transition is returned and recorded once.
	setHeartbeatAge(t, node.ID, 7*time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	found := 0
	for range 8 {
		wg.Go(func() {
			offline, err := testStore.MarkSilentNodesOffline(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			for _, n := range offline {
				if n.ID == node.ID {
					mu.Lock()
					found++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if found != 1 {
		t.Errorf("8 concurrent sweeps returned the node %d times, want 1", found)
	}
	if got := strings.Join(eventKinds(t, node.ID), ","); got != "registered,online,offline,online,offline" {
		t.Fatalf("events after concurrent sweeps: %s", got)
	}
}

// A heartbeat's figures land on the node row and in a sample; a heartbeat without a container
// count or an interval (Docker not answering; an older agent) keeps the node's last ones.
func TestHeartbeatFiguresAreKeptOnTheNode(t *testing.T) {
	ctx := context.Background()
	node, _ := newRegisteredNode(t)
	usage := db.NodeUsage{CPUPercent: ptr(12.5), MemoryUsedMB: ptr[int64](1024), MemoryTotalMB: ptr[int64](2048),
		DiskUsedMB: ptr[int64](10000), DiskTotalMB: ptr[int64](50000), Load1: ptr(0.5), Load5: ptr(0.25), Load15: ptr(0.125)}
	if err := testStore.RecordHeartbeat(ctx, node.ID, db.NodeHeartbeat{CPUs: 2, Containers: ptr(4), AgentVersion: "1.2.3", IntervalSeconds: 15, Usage: usage}); err != nil {
		t.Fatal(err)
	}
	if err := testStore.RecordHeartbeat(ctx, node.ID, db.NodeHeartbeat{CPUs: 2, AgentVersion: "1.2.3", Usage: db.NodeUsage{Load1: ptr(1.5)}}); err != nil {
		t.Fatal(err)
	}
	got, err := testStore.NodeByID(ctx, node.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Containers != 4 || got.HeartbeatIntervalSeconds != 15 || got.AgentVersion != "1.2.3" || got.Status != "online" || got.AdminState != db.NodeActive {
		t.Errorf("node %+v", got)
	}
	if got.Usage.Load1 == nil || *got.Usage.Load1 != 1.5 || got.Usage.CPUPercent != nil {
		t.Errorf("the latest figures are the last heartbeat's: %+v", got.Usage)
	}
	var samples int
	if err := testStore.Pool().QueryRow(ctx, `SELECT count(*) FROM node_metrics WHERE node_id = $1`, node.ID).Scan(&samples); err != nil {
		t.Fatal(err)
	}
	if samples != 2 {
		t.Errorf("%d samples, want one per heartbeat", samples)
	}
	if _, err := testStore.NodeByID(ctx, uuid.NewString()); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("unknown node: %v", err)
	}
	if _, err := testStore.NodeByID(ctx, "not-a-uuid"); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("malformed id: %v", err)
	}
}

// A day of 10 s heartbeats comes back as at most 300 points, each the average of its bucket;
// samples older than the window are not in it, and the pruning deletes them in batches.
func TestNodeMetricsAreDownsampledAndPruned(t *testing.T) {
	ctx := context.Background()
	node, _ := newRegisteredNode(t)
	// 25 hours of samples every 10 s: cpu_percent is the sample's age in hours (so a bucket's
	// average is known), memory 1000, containers 2; no disk figures.
	if _, err := testStore.Pool().Exec(ctx, `INSERT INTO node_metrics (node_id, at, cpu_percent, memory_used_mb, memory_total_mb, containers)
		SELECT $1, now() - make_interval(secs => s), s / 3600.0, 1000, 4000, 2 FROM generate_series(1, 25 * 3600, 10) s`, node.ID); err != nil {
		t.Fatal(err)
	}
	series, err := testStore.NodeMetrics(ctx, node.ID, db.NodeMetricsRetention, db.NodeMetricsMaxPoints)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(series.Points); n == 0 || n > db.NodeMetricsMaxPoints {
		t.Fatalf("%d points, want 1-%d", n, db.NodeMetricsMaxPoints)
	}
	if series.BucketSeconds != 288 || series.To.Sub(series.From) != 24*time.Hour {
		t.Errorf("window %s … %s, buckets of %v s", series.From, series.To, series.BucketSeconds)
	}
	total := 0
	for i, p := range series.Points {
		total += p.Samples
		if p.At.Before(series.From) || !p.At.Before(series.To) || (i > 0 && !p.At.After(series.Points[i-1].At)) {
			t.Fatalf("point %d at %s: outside the window or out of order", i, p.At)
		}
		if p.Usage.MemoryUsedMB == nil || *p.Usage.MemoryUsedMB != 1000 || p.Containers == nil || *p.Containers != 2 || p.Usage.DiskUsedMB != nil {
			t.Fatalf("point %d: %+v containers %v", i, p.Usage, p.Containers)
		}
		// A bucket holds samples of every age across its 288 s: their average is its middle
		// (within half a sample's spacing), not its oldest or newest sample.
		middle := (series.To.Sub(p.At) - 144*time.Second).Hours()
		if cpu := *p.Usage.CPUPercent; cpu > middle+6.0/3600 || cpu < middle-6.0/3600 {
			t.Fatalf("point %d of the bucket %.4f h ago (middle) averages %.4f: not its bucket's average", i, middle, cpu)
		}
	}
	if total < 24*360-2 || total > 24*360 {
		t.Errorf("%d samples in the window, want the day's 8640", total)
	}

	// Pruning: everything older than 24 h goes (more than one batch of it), the rest stays.
	pruned, err := testStore.PruneNodeMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var old, kept int
	if err := testStore.Pool().QueryRow(ctx, `SELECT count(*) FILTER (WHERE at < now() - interval '24 hours'), count(*)
		FROM node_metrics WHERE node_id = $1`, node.ID).Scan(&old, &kept); err != nil {
		t.Fatal(err)
	}
	if old != 0 || kept < 8638 || pruned < 360 {
		t.Errorf("pruned %d: %d old samples left, %d kept", pruned, old, kept)
	}

	// More than one batch at once.
	if _, err := testStore.Pool().Exec(ctx, `INSERT INTO node_metrics (node_id, at, containers)
		SELECT $1, now() - interval '2 days' - make_interval(secs => s), 1 FROM generate_series(1, 12000) s`, node.ID); err != nil {
		t.Fatal(err)
	}
	if pruned, err := testStore.PruneNodeMetrics(ctx); err != nil || pruned < 12000 {
		t.Errorf("pruned %d %v, want all 12000 in batches", pruned, err)
	}

	if _, err := testStore.NodeMetrics(ctx, uuid.NewString(), time.Hour, 10); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("unknown node: %v", err)
	}
	empty, _ := newRegisteredNode(t)
	if s, err := testStore.NodeMetrics(ctx, empty.ID, time.Hour, 10); err != nil || len(s.Points) != 0 || s.Points == nil {
		t.Errorf("a node without samples: %+v %v", s, err)
	}
}

// Cordon only from active, uncordon only from cordoned; each change is an event naming who.
func TestCordonAndUncordonFollowTheRules(t *testing.T) {
	ctx := context.Background()
	node, _ := newRegisteredNode(t)
	admin, err := testStore.CreateUser(ctx, "ops-"+uuid.NewString()[:8]+"@example.com", "Ops", db.RoleAdmin, []byte(uuid.NewString()))
	if err != nil {
		t.Fatal(err)
	}
	var invalid *db.InvalidStateError

	if _, err := testStore.UncordonNode(ctx, node.ID, admin.ID); !errors.As(err, &invalid) || !strings.Contains(invalid.Reason, "the node is active") {
		t.Fatalf("uncordon an active node: %v", err)
	}
	got, err := testStore.CordonNode(ctx, node.ID, admin.ID)
	if err != nil || got.AdminState != db.NodeCordoned {
		t.Fatalf("cordon: %+v %v", got.AdminState, err)
	}
	if _, err := testStore.CordonNode(ctx, node.ID, admin.ID); !errors.As(err, &invalid) || !strings.Contains(invalid.Reason, "the node is cordoned") {
		t.Fatalf("cordon twice: %v", err)
	}
	if got, err = testStore.UncordonNode(ctx, node.ID, admin.ID); err != nil || got.AdminState != db.NodeActive {
		t.Fatalf("uncordon: %+v %v", got.AdminState, err)
	}
	events, err := testStore.NodeEvents(ctx, node.ID, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].Kind != db.NodeEventUncordoned || events[1].Kind != db.NodeEventCordoned || events[1].Detail != "by "+admin.Email {
		t.Fatalf("events %+v", events)
	}

	// A draining node is neither cordoned nor uncordoned: the drain owns it.
	if _, err := testStore.Pool().Exec(ctx, `UPDATE nodes SET admin_state = 'draining' WHERE id = $1`, node.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := testStore.CordonNode(ctx, node.ID, admin.ID); !errors.As(err, &invalid) || !strings.Contains(invalid.Reason, "draining") {
		t.Errorf("cordon a draining node: %v", err)
	}
	if _, err := testStore.UncordonNode(ctx, node.ID, admin.ID); !errors.As(err, &invalid) || !strings.Contains(invalid.Reason, "draining") {
		t.Errorf("uncordon a draining node: %v", err)
	}
	// A drained node goes back into service with an uncordon.
	if _, err := testStore.Pool().Exec(ctx, `UPDATE nodes SET admin_state = 'drained' WHERE id = $1`, node.ID); err != nil {
		t.Fatal(err)
	}
	if got, err = testStore.UncordonNode(ctx, node.ID, admin.ID); err != nil || got.AdminState != db.NodeActive {
		t.Errorf("uncordon a drained node: %+v %v", got.AdminState, err)
	}
	if _, err := testStore.Pool().Exec(ctx, `UPDATE nodes SET admin_state = 'asleep' WHERE id = $1`, node.ID); err == nil {
		t.Error("the database took an unknown admin state")
	}
	for _, id := range []string{uuid.NewString(), "not-a-uuid"} {
		if _, err := testStore.CordonNode(ctx, id, admin.ID); !errors.Is(err, db.ErrNotFound) {
			t.Errorf("cordon %s: %v", id, err)
		}
	}
}

// A node with applications placed on it is not deleted (the refusal counts them); without, it
// goes with its events and metrics.
func TestDeleteNodeRefusesWhileApplicationsArePlacedOnIt(t *testing.T) {
	ctx := context.Background()
	node, regionID := newRegisteredNode(t)
	if err := testStore.RecordHeartbeat(ctx, node.ID, db.NodeHeartbeat{CPUs: 2}); err != nil {
		t.Fatal(err)
	}
	app := newAppInRegion(t, regionID)
	if placed, err := testStore.PlaceApplication(ctx, app.ID); err != nil || placed != node.ID {
		t.Fatalf("place: %q %v", placed, err)
	}
	var invalid *db.InvalidStateError
	if err := testStore.DeleteNode(ctx, node.ID); !errors.As(err, &invalid) || !strings.Contains(invalid.Reason, "1 application ") {
		t.Fatalf("delete with an app: %v", err)
	}
	if _, err := testStore.NodeByID(ctx, node.ID); err != nil {
		t.Fatalf("the refused delete removed the node: %v", err)
	}

	if _, err := testStore.Pool().Exec(ctx, `UPDATE applications SET node_id = NULL WHERE id = $1`, app.ID); err != nil {
		t.Fatal(err)
	}
	if err := testStore.DeleteNode(ctx, node.ID); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := testStore.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM node_events WHERE node_id = $1) + (SELECT count(*) FROM node_metrics WHERE node_id = $1)`,
		node.ID).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Errorf("%d events and samples outlived their node", rows)
	}
	if _, err := testStore.NodeEvents(ctx, node.ID, 10); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("events of a deleted node: %v", err)
	}
	if err := testStore.DeleteNode(ctx, node.ID); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("delete twice: %v", err)
	}
}
