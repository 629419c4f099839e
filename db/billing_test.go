package db_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/skypanel/skypanel/db"
)

// Usage follows the app's state: it opens when the app runs, splits when it scales, closes when
// it stops; a stopped app has no open usage.
func TestUsageFollowsTheAppsState(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	runningWithRelease(t, f)
	if err := testStore.SetInstanceCount(ctx, f.app.ID, 3); err != nil {
		t.Fatal(err)
	}
	if err := testStore.SetAppStopped(ctx, f.app.ID); err != nil {
		t.Fatal(err)
	}
	usage, err := testStore.UsageBetween(ctx, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var mine []db.UsageSegment
	for _, u := range usage {
		if u.AppID == f.app.ID {
			mine = append(mine, u)
		}
	}
	if len(mine) != 2 || mine[0].Instances+mine[1].Instances != 4 {
		t.Fatalf("usage %+v, want a 1-instance then a 3-instance segment", mine)
	}
	for _, u := range mine {
		if u.EndedAt == nil {
			t.Errorf("a stopped app has open usage: %+v", u)
		}
	}
}

// Two billing runs of the same period at once write each charge once and lower the wallet once.
func TestConcurrentChargesOfOnePeriodChargeOnce(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	if _, _, err := testStore.Credit(ctx, f.org, 1_000, "topup-1"); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	charge := db.Charge{OrgID: f.org, AppID: f.app.ID, AppName: f.app.Name, PeriodStart: start, PeriodEnd: start.Add(time.Hour),
		InstanceSeconds: 3600, PricePerHour: 250, Amount: 250}
	var wg sync.WaitGroup
	written := make([]int, 4)
	for i := range written {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := testStore.RecordCharges(ctx, []db.Charge{charge})
			if err != nil {
				t.Error(err)
			}
			written[i] = n
		}()
	}
	wg.Wait()
	if total := written[0] + written[1] + written[2] + written[3]; total != 1 {
		t.Errorf("%v entries written by 4 concurrent runs, want 1 in all", written)
	}
	w, _ := testStore.GetWallet(ctx, f.org)
	ledger, _ := testStore.LedgerBalance(ctx, f.org)
	if w.Balance != 750 || ledger != 750 {
		t.Errorf("balance %d, ledger %d, want 750", w.Balance, ledger)
	}
}

// A credit happens once per reference; the cached balance always equals the ledger's.
func TestCreditIsIdempotentByReference(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	first, created, err := testStore.Credit(ctx, f.org, 500, "invoice-7")
	if err != nil || !created {
		t.Fatalf("first credit: %v %v", created, err)
	}
	again, created, err := testStore.Credit(ctx, f.org, 500, "invoice-7")
	if err != nil || created || again.ID != first.ID {
		t.Fatalf("the same reference again: created %v, entry %d vs %d, %v", created, again.ID, first.ID, err)
	}
	w, _ := testStore.GetWallet(ctx, f.org)
	ledger, _ := testStore.LedgerBalance(ctx, f.org)
	if w.Balance != 500 || ledger != 500 || w.Currency != "USD" {
		t.Errorf("wallet %+v, ledger %d, want 500 USD", w, ledger)
	}
	if _, _, err := testStore.Credit(ctx, "00000000-0000-4000-8000-000000000000", 5, "x"); err != db.ErrNotFound {
		t.Errorf("credit to an unknown organization: %v", err)
	}
}

// A plan change is billed at the new price only once a rollout has started containers of it:
// changing a pro app to starter, then scaling to the same count, keeps billing pro; the
// restart that applies starter bills starter from then on.
func TestAPlanChangeIsBilledFromTheRolloutThatAppliesIt(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	pro, err := testStore.PlanByRef(ctx, "pro")
	if err != nil {
		t.Fatal(err)
	}
	starter, err := testStore.PlanByRef(ctx, "starter")
	if err != nil {
		t.Fatal(err)
	}
	changePlan := func(id string) {
		t.Helper()
		if _, err := testStore.UpdateApplication(ctx, f.org, f.app.ID, db.ApplicationChanges{PlanID: &id}); err != nil {
			t.Fatal(err)
		}
	}
	openPrice := func() int64 {
		t.Helper()
		usage, err := testStore.AppUsageBetween(ctx, f.app.ID, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range usage {
			if u.EndedAt == nil {
				return u.PricePerHour
			}
		}
		t.Fatalf("no open usage: %+v", usage)
		return 0
	}
	changePlan(pro.ID)
	runningWithRelease(t, f)
	if got := openPrice(); got != pro.PricePerHourMinor {
		t.Fatalf("a pro app is billed %d, want %d", got, pro.PricePerHourMinor)
	}
	changePlan(starter.ID)
	if err := testStore.SetInstanceCount(ctx, f.app.ID, 1); err != nil {
		t.Fatal(err)
	}
	if got := openPrice(); got != pro.PricePerHourMinor {
		t.Errorf("after a change to starter and a scale to the same count, billed %d: pro containers still run, want %d", got, pro.PricePerHourMinor)
	}
	if err := testStore.SetAppRunning(ctx, f.app.ID, "sp-x-2", "http://x/"); err != nil { // the restart's rollout
		t.Fatal(err)
	}
	if got := openPrice(); got != starter.PricePerHourMinor {
		t.Errorf("after the rollout of starter, billed %d, want %d", got, starter.PricePerHourMinor)
	}
}
