package convergence

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skypanel/skypanel/cmd/skypanel/devharness/localcluster"
	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/temporal/operations"
)

func TestCompareCountsTheCurrentReleasesRunningInstances(t *testing.T) {
	app := db.DesiredApp{ReleaseID: "r2", Instances: 3, Reported: []db.ReportedInstance{
		{Name: "a", ReleaseID: "r2", State: "running"},
		{Name: "b", ReleaseID: "r2", State: "restarting"},
		{Name: "c", ReleaseID: "r1", State: "running"}, // another release's: does not count
	}}
	s := Compare(app)
	if !s.Short() || s.Running != 1 || s.Want != 3 {
		t.Errorf("%+v: want 1 of 3 running, short", s)
	}
	if got, want := s.Describe(), "1 of 3 instances running, 1 restarting, 1 missing"; got != want {
		t.Errorf("Describe() = %q, want %q", got, want)
	}
	whole := Compare(db.DesiredApp{ReleaseID: "r2", Instances: 1, Reported: app.Reported[:1]})
	if whole.Short() || whole.Describe() != "1 of 1 instances running" {
		t.Errorf("an app at its count: %+v %q", whole, whole.Describe())
	}
	if none := Compare(db.DesiredApp{ReleaseID: "r2", Instances: 2}); none.Describe() != "0 of 2 instances running, 2 missing" {
		t.Errorf("nothing reported: %q", none.Describe())
	}
}

// enqueuer queues through the real store, as the operations owner does, without starting a
// workflow: the queue's rows are what the checker reads back.
type enqueuer struct {
	store    *db.Store
	requests []operations.Request
}

func (e *enqueuer) Enqueue(ctx context.Context, r operations.Request) (db.Operation, error) {
	e.requests = append(e.requests, r)
	op, err := operations.New(r)
	if err != nil {
		return db.Operation{}, err
	}
	enq, err := e.store.EnqueueOperation(ctx, r.OrgID, r.AppID, op)
	return enq.Operation, err
}

// The checker against a real Postgres: one short report is not enough (Docker may be
// restarting a crashed instance), the same report twice is not two, a report older than the
// app's last change is not believed; two reports short queue one heal with the shortfall as
// its reason, and none more while it waits; after 3 heals the app is degraded instead; an app
// at its count is left alone.
func TestCheckerQueuesOneHealAfterTwoShortReportsThenDegrades(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	pg, err := localcluster.Start(ctx, localcluster.Options{Dir: filepath.Join(t.TempDir(), "pg")})
	if err != nil {
		t.Fatalf("start Postgres (make deps installs it): %v", err)
	}
	defer pg.Stop(context.Background()) //nolint:errcheck
	pool, err := db.Open(ctx, pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := db.Migrate(ctx, pool, quiet); err != nil {
		t.Fatal(err)
	}
	store := db.NewStore(pool)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}

	user, err := store.CreateUser(ctx, "converge@example.com", "Converge", "customer", []byte("converge-token-hash"))
	if err != nil {
		t.Fatal(err)
	}
	region, _ := store.RegionByRef(ctx, "local")
	plan, _ := store.PlanByRef(ctx, "starter")
	runtime, _ := store.RuntimeByRef(ctx, "dockerfile")
	app, err := store.CreateApplication(ctx, db.NewApplication{OrgID: user.OrgID, Name: "converge", RuntimeID: runtime.ID, PlanID: plan.ID,
		RegionID: region.ID, GitURL: "https://example.com/converge.git", GitBranch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	var nodeID, release string
	if err := pool.QueryRow(ctx, `INSERT INTO nodes (name, region_id) VALUES ('n1', $1) RETURNING id::text`, region.ID).Scan(&nodeID); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `INSERT INTO deployments (app_id, workflow_id, git_url, git_branch, status, image)
		VALUES ($1, 'deploy/x', 'https://example.com/converge.git', 'main', 'succeeded', 'img') RETURNING id::text`, app.ID).Scan(&release); err != nil {
		t.Fatal(err)
	}
	exec(`UPDATE applications SET status = 'running', node_id = $2, current_deployment_id = $3, instances = 2 WHERE id = $1`, app.ID, nodeID, release)

	ops := &enqueuer{store: store}
	checker := &Checker{Store: store, Ops: ops, Log: quiet}
	report := func(states ...string) {
		t.Helper()
		var list []db.ReportedInstance
		for i, s := range states {
			list = append(list, db.ReportedInstance{Name: "i" + string(rune('1'+i)), ReleaseID: release, State: s})
		}
		if err := store.RecordNodeReport(ctx, nodeID, map[string][]db.ReportedInstance{app.ID: list}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(wantQueued int, when string) {
		t.Helper()
		if err := checker.Check(ctx); err != nil {
			t.Fatalf("%s: check: %v", when, err)
		}
		if len(ops.requests) != wantQueued {
			t.Fatalf("%s: %d heals queued in all, want %d: %+v", when, len(ops.requests), wantQueued, ops.requests)
		}
	}

	report("running", "restarting")
	check(0, "one short report")
	check(0, "the same report again")
	// An operation ends after the report was taken: the report may predate it.
	exec(`INSERT INTO app_operations (id, app_id, kind, workflow_type, workflow_id, input, status, started_at, finished_at)
		VALUES (gen_random_uuid(), $1, 'scale', 'ScaleApp', 'scale/x', '{}', 'succeeded', now(), now())`, app.ID)
	report("running", "restarting")
	check(0, "a second short report, but the first came before the app's last change")
	report("running", "restarting")
	check(1, "two short reports after the change")
	if r := ops.requests[0]; r.Kind != db.OpHeal || r.Via != "convergence" || r.AppID != app.ID ||
		r.Reason != "the node reported 1 of 2 instances running, 1 restarting" {
		t.Errorf("heal request: %+v", r)
	}
	report("restarting")
	report("restarting")
	check(1, "reports while the heal waits")

	// The heal and two more ran and failed: the next shortfall makes the app degraded.
	exec(`UPDATE app_operations SET status = 'failed', started_at = now(), finished_at = now(), reason = 'boom: giving up' WHERE kind = 'heal'`)
	for i := 0; i < 2; i++ {
		exec(`INSERT INTO app_operations (id, app_id, kind, workflow_type, workflow_id, input, status, reason, started_at, finished_at)
			VALUES (gen_random_uuid(), $1, 'heal', 'HealApp', 'heal/'||gen_random_uuid(), '{}', 'failed', 'boom: giving up', now(), now())`, app.ID)
	}
	report("restarting")
	check(1, "first report after the third heal")
	report("restarting")
	check(1, "second report after the third heal: degraded, not healed")
	got, err := store.GetApplication(ctx, user.OrgID, app.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got.DegradedReason, "3 heals") || !strings.Contains(got.DegradedReason, "boom: giving up") {
		t.Errorf("degraded reason %q, want the 3 heals and the last one's reason", got.DegradedReason)
	}
	report("restarting")
	report("restarting")
	check(1, "a degraded app")

	// A successful deploy (any operation but a heal) gives it a fresh start.
	exec(`INSERT INTO app_operations (id, app_id, kind, workflow_type, workflow_id, input, status, started_at)
		VALUES (gen_random_uuid(), $1, 'restart', 'RestartApp', 'restart/y', '{}', 'running', now())`, app.ID)
	if _, err := store.FinishOperation(ctx, app.ID, "restart/y", db.OperationSucceeded, ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := store.GetApplication(ctx, user.OrgID, app.ID); got.DegradedReason != "" {
		t.Errorf("after a successful restart the app is still degraded: %q", got.DegradedReason)
	}
	report("running", "running")
	report("running", "running")
	check(1, "an app at its count")
}
