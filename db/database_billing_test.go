package db_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/skypanel/skypanel/activities/control/billing"
	"github.com/skypanel/skypanel/db"
)

// billedDatabase records a database of orgID on a database plan of its own at price per hour,
// its provisioning's turn given back (status provisioning).
func billedDatabase(t *testing.T, orgID string, price int64) db.Database {
	t.Helper()
	ctx := context.Background()
	region, err := testStore.RegionByRef(ctx, "local")
	if err != nil {
		t.Fatal(err)
	}
	d, enq := newDatabase(t, orgID, region.ID, "db-"+uuid.NewString()[:8])
	var planID string
	slug := "dbbill-" + uuid.NewString()[:8]
	if err := testStore.Pool().QueryRow(ctx, `INSERT INTO database_plans (slug, name, cpu_millis, memory_mb, storage_mb, price_per_hour_minor)
		VALUES ($1, $1, 500, 256, 1024, $2) RETURNING id::text`, slug, price).Scan(&planID); err != nil {
		t.Fatal(err)
	}
	if _, err := testStore.Pool().Exec(ctx, `UPDATE databases SET plan_id = $2 WHERE id = $1`, d.ID, planID); err != nil {
		t.Fatal(err)
	}
	if _, err := testStore.FinishDatabaseOperation(ctx, d.ID, enq.Operation.WorkflowID, db.OperationSucceeded, ""); err != nil {
		t.Fatal(err)
	}
	return d
}

func databaseUsage(t *testing.T, databaseID string) []db.UsageSegment {
	t.Helper()
	usage, err := testStore.UsageBetween(context.Background(), time.Now().Add(-24*time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var mine []db.UsageSegment
	for _, u := range usage {
		if u.Subject == db.SubjectDatabase && u.DatabaseID == databaseID {
			mine = append(mine, u)
		}
	}
	return mine
}

func setDatabaseStatus(t *testing.T, databaseID, status string) {
	t.Helper()
	if err := testStore.SetDatabaseStatus(context.Background(), databaseID, status, ""); err != nil {
		t.Fatalf("set database %s %s: %v", databaseID, status, err)
	}
}

// A database's usage follows its status: none while it is provisioned, open once available
// (one instance at its plan's price), closed when suspended, reopened by the resume, closed
// when it is deleted.
func TestDatabaseUsageFollowsItsStatus(t *testing.T) {
	org := billingOrg(t, 1000)
	d := billedDatabase(t, org, 100)
	if u := databaseUsage(t, d.ID); len(u) != 0 {
		t.Fatalf("a database being provisioned has usage %+v", u)
	}
	setDatabaseStatus(t, d.ID, db.DatabaseAvailable)
	u := databaseUsage(t, d.ID)
	if len(u) != 1 || u[0].EndedAt != nil || u[0].Instances != 1 || u[0].PricePerHour != 100 || u[0].DatabaseName != d.Name || u[0].OrgID != org || u[0].AppID != "" {
		t.Fatalf("usage of an available database %+v, want one open segment at 100/h", u)
	}
	setDatabaseStatus(t, d.ID, db.DatabaseAvailable) // again (a retried activity): the same segment
	if u := databaseUsage(t, d.ID); len(u) != 1 || u[0].EndedAt != nil {
		t.Fatalf("available twice: usage %+v, want the one open segment", u)
	}
	setDatabaseStatus(t, d.ID, db.DatabaseSuspended)
	if u := databaseUsage(t, d.ID); len(u) != 1 || u[0].EndedAt == nil {
		t.Fatalf("a suspended database's usage %+v, want it closed", u)
	}
	setDatabaseStatus(t, d.ID, db.DatabaseAvailable) // the resume
	if u := databaseUsage(t, d.ID); len(u) != 2 || u[1].EndedAt != nil || u[0].EndedAt == nil {
		t.Fatalf("after the resume, usage %+v, want a second, open segment", u)
	}
	setDatabaseStatus(t, d.ID, db.DatabaseDeleted)
	for _, s := range databaseUsage(t, d.ID) {
		if s.EndedAt == nil {
			t.Errorf("a deleted database has open usage: %+v", s)
		}
	}
}

// The ledger shows one charge per database per hour, however often billing runs: three runs
// over the same three hours write three entries for the database, each naming it, and lower
// the wallet once each. An app whose id is the database's (no UUID is shared, but the keys
// must not rely on it) is charged beside it under the app's own key, whose form is the one
// every app charge has always had.
func TestTheLedgerShowsOneChargePerDatabasePerHourHoweverOftenBillingRuns(t *testing.T) {
	ctx := context.Background()
	org := billingOrg(t, 1000)
	d := billedDatabase(t, org, 100)
	base := time.Date(2031, 3, 4, 10, 0, 0, 0, time.UTC)
	// 10:00 to 12:30 for both: the database at 100/h, the "app" (the same id) at 50/h.
	if _, err := testStore.Pool().Exec(ctx, `INSERT INTO usage_segments (subject_kind, database_id, database_name, org_id, instances, price_per_hour, currency, started_at, ended_at)
		VALUES ('database', $1, $2, $3, 1, 100, 'USD', $4, $5)`, d.ID, d.Name, org, base, base.Add(150*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := testStore.Pool().Exec(ctx, `INSERT INTO usage_segments (app_id, app_name, org_id, instances, price_per_hour, currency, started_at, ended_at)
		VALUES ($1, 'web', $2, 1, 50, 'USD', $3, $4)`, d.ID, org, base, base.Add(150*time.Minute)); err != nil {
		t.Fatal(err)
	}
	written := 0
	for run := range 3 {
		for h := range 3 {
			from := base.Add(time.Duration(h) * time.Hour)
			usage, err := testStore.UsageBetween(ctx, from, from.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			var mine []db.UsageSegment
			for _, u := range usage {
				if u.OrgID == org {
					mine = append(mine, u)
				}
			}
			n, err := testStore.RecordCharges(ctx, billing.ChargesFor(mine, from, from.Add(time.Hour)))
			if err != nil {
				t.Fatal(err)
			}
			if run > 0 && n != 0 {
				t.Errorf("run %d charged hour %d again: %d entries", run+1, h, n)
			}
			written += n
		}
	}
	if written != 6 {
		t.Errorf("%d entries written, want 6: 3 hours of the database and of the app", written)
	}
	entries, err := testStore.ListLedger(ctx, org, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	byHour := map[time.Time]int{}
	var databaseTotal, appTotal int64
	for _, e := range entries {
		if e.Kind != db.LedgerCharge || e.PeriodStart == nil || e.PeriodStart.Before(base) {
			continue
		}
		switch {
		case e.DatabaseID != nil:
			if *e.DatabaseID != d.ID || e.DatabaseName == nil || *e.DatabaseName != d.Name || e.AppID != nil {
				t.Errorf("a database's charge names %v/%v (app %v), want %s/%s", e.DatabaseID, e.DatabaseName, e.AppID, d.ID, d.Name)
			}
			if !strings.Contains(e.Description, d.Name) {
				t.Errorf("description %q does not name the database", e.Description)
			}
			byHour[e.PeriodStart.UTC()]++
			databaseTotal += e.Amount
		case e.AppID != nil:
			appTotal += e.Amount
		}
	}
	if len(byHour) != 3 {
		t.Errorf("database charges for %d hours, want 3: %v", len(byHour), byHour)
	}
	for hour, n := range byHour {
		if n != 1 {
			t.Errorf("%d charges of the database for %s, want 1", n, hour)
		}
	}
	if databaseTotal != 250 || appTotal != 125 {
		t.Errorf("charged %d for the database and %d for the app, want 250 and 125", databaseTotal, appTotal)
	}
	w, _ := testStore.GetWallet(ctx, org)
	ledger, _ := testStore.LedgerBalance(ctx, org)
	if w.Balance != 1000-375 || ledger != w.Balance {
		t.Errorf("balance %d, ledger %d, want %d", w.Balance, ledger, 1000-375)
	}
	// The keys: an app's keeps its exact form, a database's has its own.
	if got, want := db.ChargeKey(d.ID, base), "charge:"+d.ID+":2031-03-04T10:00:00Z"; got != want {
		t.Errorf("app charge key %q, want %q", got, want)
	}
	if got, want := db.DatabaseChargeKey(d.ID, base), "charge:database:"+d.ID+":2031-03-04T10:00:00Z"; got != want {
		t.Errorf("database charge key %q, want %q", got, want)
	}
}

// Suspension and resumption count databases: an organization whose only running thing is a
// database at 100/h is suspended below 100, its usage ends at the end of the period paid, it
// is resumable from 100 again, and a resume already waiting is not asked for twice. The gates
// count available databases too.
func TestWalletStandingsCountDatabases(t *testing.T) {
	ctx := context.Background()
	org := billingOrg(t, 150)
	d := billedDatabase(t, org, 100)
	setDatabaseStatus(t, d.ID, db.DatabaseAvailable)
	listed := func(f func(context.Context, time.Duration) ([]db.WalletStanding, error)) bool {
		t.Helper()
		standings, err := f(ctx, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		_, ok := standingOf(standings, org)
		return ok
	}
	if listed(testStore.OrgsToSuspend) || listed(testStore.OrgsToResume) {
		t.Fatal("150 covers a period of 100: neither suspended nor resumed")
	}
	funds, err := testStore.CheckFunds(ctx, org, 60, time.Hour, "")
	if err != nil || funds.RunningCost != 100 || funds.Enough() {
		t.Errorf("funds %+v (%v): want the database's 100 running, and 150 short of 100+60", funds, err)
	}
	setBalance(t, org, 50)
	if !listed(testStore.OrgsToSuspend) {
		t.Fatal("50 left for a database of 100/h: not suspended")
	}
	time.Sleep(5 * time.Millisecond)
	paidUntil := time.Now().UTC().Truncate(time.Microsecond)
	if err := testStore.EndUsageForSuspension(ctx, org, paidUntil); err != nil {
		t.Fatal(err)
	}
	if u := databaseUsage(t, d.ID); len(u) != 1 || u[0].EndedAt == nil || !u[0].EndedAt.Equal(paidUntil) {
		t.Fatalf("usage once the suspension is decided %+v, want it ended at %s", u, paidUntil)
	}
	setDatabaseStatus(t, d.ID, db.DatabaseSuspended)
	if u := databaseUsage(t, d.ID); len(u) != 1 || !u[0].EndedAt.Equal(paidUntil) {
		t.Fatalf("the suspension moved the end of usage: %+v", u)
	}
	if listed(testStore.OrgsToSuspend) || listed(testStore.OrgsToResume) {
		t.Error("with 50 for a suspended database of 100/h: suspended again or resumed")
	}
	setBalance(t, org, 100)
	if !listed(testStore.OrgsToResume) {
		t.Fatal("not resumed with 100 for a database of 100/h")
	}
	if ok, err := testStore.CanResume(ctx, org, time.Hour); err != nil || !ok {
		t.Errorf("CanResume %v %v, want true", ok, err)
	}
	opID := uuid.NewString()
	if _, err := testStore.EnqueueDatabaseOperation(ctx, org, d.ID, db.NewOperation{ID: opID, Kind: db.DatabaseOpResume, WorkflowType: "ResumeDatabase",
		WorkflowID: "database-resume/" + d.ID + "/" + opID, Input: map[string]string{}}); err != nil {
		t.Fatal(err)
	}
	if listed(testStore.OrgsToResume) {
		t.Error("resumed twice: its resume is already queued")
	}
	if pending, _ := testStore.DatabaseOperationPending(ctx, d.ID, db.DatabaseOpResume); !pending {
		t.Error("the queued resume is not pending")
	}
}

// A suspended database's engine is stopped: a backup, a restore or a delete with its final
// backup is refused (InvalidStateError, 409), a delete without one is taken and leaves the
// database suspended (not billed) until it is deleted.
func TestASuspendedDatabaseRefusesWhatNeedsItsEngine(t *testing.T) {
	ctx := context.Background()
	org := billingOrg(t, 0)
	d := billedDatabase(t, org, 100)
	setDatabaseStatus(t, d.ID, db.DatabaseSuspended)
	op := func(kind string) db.NewOperation {
		id := uuid.NewString()
		return db.NewOperation{ID: id, Kind: kind, WorkflowType: "X", WorkflowID: "database-" + kind + "/" + d.ID + "/" + id, Input: map[string]string{}}
	}
	var invalid *db.InvalidStateError
	if _, err := testStore.QueueBackup(ctx, org, d.ID, uuid.NewString(), "manual", op(db.DatabaseOpBackup)); !errors.As(err, &invalid) {
		t.Errorf("backup of a suspended database: %v, want an InvalidStateError", err)
	}
	if _, err := testStore.QueueDelete(ctx, org, d.ID, uuid.NewString(), op(db.DatabaseOpDelete)); !errors.As(err, &invalid) {
		t.Errorf("delete with a final backup of a suspended database: %v, want an InvalidStateError", err)
	}
	enq, err := testStore.QueueDelete(ctx, org, d.ID, "", op(db.DatabaseOpDelete))
	if err != nil || enq.Start == nil {
		t.Fatalf("delete without a final backup: %+v %v", enq, err)
	}
	got, _ := testStore.DatabaseByID(ctx, d.ID)
	if got.Status != db.DatabaseSuspended {
		t.Errorf("a suspended database being deleted is %s, want suspended (it is not running, and not billed)", got.Status)
	}
	if u := databaseUsage(t, d.ID); len(u) != 0 {
		t.Errorf("usage %+v of a database that never ran for its owner", u)
	}
}

// Migration 0029 applied again (as after a restore of an older dump, or by hand) changes
// nothing: its columns, constraints and index are made only when missing, and an available
// database that has its open usage segment gets no second one.
func TestDatabaseBillingMigrationIsIdempotent(t *testing.T) {
	ctx := context.Background()
	org := billingOrg(t, 100)
	d := billedDatabase(t, org, 100)
	setDatabaseStatus(t, d.ID, db.DatabaseAvailable)
	sql, err := os.ReadFile("migrations/0029_database_billing.sql")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := testStore.Pool().Exec(ctx, string(sql)); err != nil {
			t.Fatalf("apply 0029 again: %v", err)
		}
	}
	if u := databaseUsage(t, d.ID); len(u) != 1 || u[0].EndedAt != nil {
		t.Errorf("usage after 0029 again: %+v, want the one open segment", u)
	}
	var apps int
	if err := testStore.Pool().QueryRow(ctx, `SELECT count(*) FROM usage_segments WHERE subject_kind <> 'app' AND app_id IS NOT NULL`).Scan(&apps); err != nil || apps != 0 {
		t.Errorf("%d app segments not of subject app (%v)", apps, err)
	}
}
