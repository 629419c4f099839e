package db_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/skypanel/skypanel/db"
)

// The wallet rules of docs/billing.md (suspension, resumption, the end of a suspended
// organization's usage, the billing cursor) over real rows. Every case has an organization of
// its own, created through the Store, and every assertion is on those organizations only: the
// package's tests share one database.

// billingPlan creates a plan of its own at price minor units per instance-hour, so no seeded
// price (and no other test's plan change) decides a case.
func billingPlan(t *testing.T, price int64) db.Plan {
	t.Helper()
	slug := "bill-" + uuid.NewString()[:8]
	p, err := testStore.CreatePlan(context.Background(), db.Plan{Slug: slug, Name: slug, CPUMillis: 250, MemoryMB: 256,
		PricePerHourMinor: price, Currency: "USD", Active: true})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// billingOrg creates an organization (with its wallet at 0) and brings its balance to balance:
// a credit above zero, a charge below (charges are written whatever the balance).
func billingOrg(t *testing.T, balance int64) string {
	t.Helper()
	ctx := context.Background()
	u, err := testStore.CreateUser(ctx, uuid.NewString()+"@example.com", "Billing", db.RoleCustomer, []byte(uuid.NewString()))
	if err != nil {
		t.Fatal(err)
	}
	setBalance(t, u.OrgID, balance)
	return u.OrgID
}

// setBalance moves the organization's balance to balance with one credit or one charge.
func setBalance(t *testing.T, orgID string, balance int64) {
	t.Helper()
	ctx := context.Background()
	w, err := testStore.GetWallet(ctx, orgID)
	if err != nil {
		t.Fatal(err)
	}
	switch diff := balance - w.Balance; {
	case diff > 0:
		if _, _, err := testStore.Credit(ctx, orgID, diff, "ref-"+uuid.NewString()); err != nil {
			t.Fatal(err)
		}
	case diff < 0:
		start := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
		if _, err := testStore.RecordCharges(ctx, []db.Charge{{OrgID: orgID, AppID: uuid.NewString(), AppName: "gone",
			PeriodStart: start, PeriodEnd: start.Add(time.Hour), InstanceSeconds: 3600, PricePerHour: -diff, Amount: -diff}}); err != nil {
			t.Fatal(err)
		}
	}
	if w, _ := testStore.GetWallet(ctx, orgID); w.Balance != balance {
		t.Fatalf("setup: balance %d, want %d", w.Balance, balance)
	}
}

// App states a case can ask for.
const (
	stateCreated   = "created"   // never deployed
	stateRunning   = "running"   // deployed, running
	stateStopped   = "stopped"   // deployed, then stopped by its owner
	stateSuspended = "suspended" // deployed, then suspended by billing
)

// billingApp creates an app of orgID on plan with instances instances, brought to state
// through the Store's own transitions (so its usage follows as in production).
func billingApp(t *testing.T, orgID string, plan db.Plan, instances int, state string) string {
	t.Helper()
	ctx := context.Background()
	rt, _ := testStore.RuntimeByRef(ctx, "dockerfile")
	region, _ := testStore.RegionByRef(ctx, "local")
	app, err := testStore.CreateApplication(ctx, db.NewApplication{
		OrgID: orgID, Name: "bill-" + uuid.NewString()[:8], RuntimeID: rt.ID, PlanID: plan.ID, RegionID: region.ID,
		GitURL: "https://example.com/x.git", GitBranch: "main",
	})
	if err != nil {
		t.Fatal(err)
	}
	if state == stateCreated {
		return app.ID
	}
	runningWithRelease(t, fixture{org: orgID, app: app})
	if instances != 1 {
		if err := testStore.SetInstanceCount(ctx, app.ID, instances); err != nil {
			t.Fatal(err)
		}
	}
	switch state {
	case stateStopped:
		err = testStore.SetAppStopped(ctx, app.ID)
	case stateSuspended:
		err = testStore.SetAppSuspended(ctx, app.ID)
	}
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := testStore.GetApplication(ctx, orgID, app.ID); got.Status != state || got.Instances != instances {
		t.Fatalf("setup: app %s %d instances, want %s %d", got.Status, got.Instances, state, instances)
	}
	return app.ID
}

// lockApp gives the app's turn to an operation of kind, as a running operation holds it.
func lockApp(t *testing.T, orgID, appID, kind string) db.Operation {
	t.Helper()
	enq := enqueue(t, orgID, appID, kind)
	if enq.Start == nil || enq.Start.ID != enq.Operation.ID {
		t.Fatalf("%s did not get the app's turn", kind)
	}
	return *enq.Start
}

// standingOf finds orgID in standings.
func standingOf(standings []db.WalletStanding, orgID string) (db.WalletStanding, bool) {
	for _, s := range standings {
		if s.OrgID == orgID {
			return s, true
		}
	}
	return db.WalletStanding{}, false
}

// standingCase is an organization and what a standings query must say of it.
type standingCase struct {
	name   string
	org    string
	listed bool
	// the standing when listed
	balance, cost int64
}

func checkStandings(t *testing.T, what string, standings []db.WalletStanding, cases []standingCase) {
	t.Helper()
	for _, c := range cases {
		s, listed := standingOf(standings, c.org)
		switch {
		case listed != c.listed:
			t.Errorf("%s: %s: listed %v (%+v), want %v", what, c.name, listed, s, c.listed)
		case listed && (s.Balance != c.balance || s.NextCost != c.cost):
			t.Errorf("%s: %s: balance %d, next cost %d, want %d and %d", what, c.name, s.Balance, s.NextCost, c.balance, c.cost)
		}
	}
}

// An organization is suspended when its balance is below one period of its running apps
// (Σ price × instances over them, at their current plan): one minor unit short is suspended,
// exactly one period is not. Stopped, suspended and never-deployed apps cost nothing; a balance
// below zero suspends even free apps.
func TestOrgsToSuspendWhenTheBalanceIsBelowOnePeriodOfRunningApps(t *testing.T) {
	ctx := context.Background()
	p100, p250, free := billingPlan(t, 100), billingPlan(t, 250), billingPlan(t, 0)

	withApps := func(balance int64, apps ...func(org string)) string {
		org := billingOrg(t, balance)
		for _, app := range apps {
			app(org)
		}
		return org
	}
	app := func(plan db.Plan, instances int, state string) func(string) {
		return func(org string) { billingApp(t, org, plan, instances, state) }
	}
	// Moves a running app to a dearer plan without a rollout: the next period is charged at
	// the plan its containers run (docs/billing.md, "A plan change is billed from the rollout
	// that applies it"), so that is what the wallet must cover.
	planChangedTo := func(plan db.Plan) func(string) {
		return func(org string) {
			id := billingApp(t, org, p100, 1, stateRunning)
			if _, err := testStore.UpdateApplication(ctx, org, id, db.ApplicationChanges{PlanID: &plan.ID}); err != nil {
				t.Fatal(err)
			}
		}
	}

	cases := []standingCase{
		{name: "one app, one unit short", org: withApps(99, app(p100, 1, stateRunning)), listed: true, balance: 99, cost: 100},
		{name: "one app, exactly one period", org: withApps(100, app(p100, 1, stateRunning))},
		{name: "three instances, one unit short", org: withApps(299, app(p100, 3, stateRunning)), listed: true, balance: 299, cost: 300},
		{name: "three instances, exactly one period", org: withApps(300, app(p100, 3, stateRunning))},
		{name: "two apps, one unit short", org: withApps(349, app(p100, 1, stateRunning), app(p250, 1, stateRunning)), listed: true, balance: 349, cost: 350},
		{name: "two apps, exactly one period", org: withApps(350, app(p100, 1, stateRunning), app(p250, 1, stateRunning))},
		{name: "a stopped app beside a running one", org: withApps(100, app(p100, 1, stateRunning), app(p250, 3, stateStopped))},
		{name: "a suspended app beside a running one", org: withApps(100, app(p100, 1, stateRunning), app(p250, 3, stateSuspended))},
		{name: "a never-deployed app beside a running one", org: withApps(100, app(p100, 1, stateRunning), app(p250, 1, stateCreated))},
		{name: "only a stopped app, empty wallet", org: withApps(0, app(p100, 2, stateStopped))},
		{name: "only a stopped app, balance below zero", org: withApps(-50, app(p100, 2, stateStopped))},
		{name: "only a suspended app, balance below zero", org: withApps(-50, app(p100, 2, stateSuspended))},
		{name: "only a never-deployed app, balance below zero", org: withApps(-50, app(p100, 1, stateCreated))},
		{name: "no app, balance below zero", org: withApps(-50)},
		{name: "a free app, balance below zero", org: withApps(-1, app(free, 2, stateRunning)), listed: true, balance: -1, cost: 0},
		{name: "a free app, empty wallet", org: withApps(0, app(free, 2, stateRunning))},
		{name: "plan changed to a dearer one, not rolled out yet: the running plan's cost", org: withApps(249, planChangedTo(p250))},
		{name: "plan changed to a dearer one, not rolled out yet, one unit short of the running plan", org: withApps(99, planChangedTo(p250)), listed: true, balance: 99, cost: 100},
	}
	standings, err := testStore.OrgsToSuspend(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	checkStandings(t, "OrgsToSuspend(1h)", standings, cases)
}

// One period's cost is for the period asked (not always an hour), and is rounded half up per
// app, as charges are: 0.5 is charged 1, less than 0.5 nothing.
func TestOrgsToSuspendCostsOnePeriodRoundedPerAppAsCharges(t *testing.T) {
	ctx := context.Background()
	p100, p1 := billingPlan(t, 100), billingPlan(t, 1)
	org := func(balance int64, plan db.Plan, apps int) string {
		o := billingOrg(t, balance)
		for range apps {
			billingApp(t, o, plan, 1, stateRunning)
		}
		return o
	}
	for _, tc := range []struct {
		period time.Duration
		cases  []standingCase
	}{
		{30 * time.Minute, []standingCase{
			{name: "100/h for 30 min, one unit short", org: org(49, p100, 1), listed: true, balance: 49, cost: 50},
			{name: "100/h for 30 min, exactly one period", org: org(50, p100, 1)},
			// 1/h for 30 min is 0.5: rounded up to 1, so an empty wallet cannot pay it.
			{name: "1/h for 30 min, empty wallet", org: org(0, p1, 1), listed: true, balance: 0, cost: 1},
			// Rounded per app: two apps of 0.5 cost 1 + 1, not round(1.0).
			{name: "two apps of 1/h for 30 min, balance 1", org: org(1, p1, 2), listed: true, balance: 1, cost: 2},
			{name: "two apps of 1/h for 30 min, balance 2", org: org(2, p1, 2)},
		}},
		{29 * time.Minute, []standingCase{
			// 0.48 rounds to nothing, as a charge of it writes nothing.
			{name: "1/h for 29 min, empty wallet", org: org(0, p1, 1)},
		}},
		{2 * time.Hour, []standingCase{
			{name: "100/h for 2 h, one unit short", org: org(199, p100, 1), listed: true, balance: 199, cost: 200},
			{name: "100/h for 2 h, exactly one period", org: org(200, p100, 1)},
		}},
	} {
		standings, err := testStore.OrgsToSuspend(ctx, tc.period)
		if err != nil {
			t.Fatal(err)
		}
		checkStandings(t, "OrgsToSuspend("+tc.period.String()+")", standings, tc.cases)
	}
}

// An organization with suspended apps is resumed once its balance covers one period of them
// (those no other workflow holds), and not one unit before; running, stopped and never-deployed
// apps are not resumed. CanResume says the same for one organization.
func TestOrgsToResumeWhenTheBalanceCoversOnePeriodOfSuspendedApps(t *testing.T) {
	ctx := context.Background()
	p100, p250, free := billingPlan(t, 100), billingPlan(t, 250), billingPlan(t, 0)

	short := billingOrg(t, 349)
	billingApp(t, short, p100, 1, stateSuspended)
	billingApp(t, short, p250, 1, stateSuspended)
	exact := billingOrg(t, 350)
	billingApp(t, exact, p100, 1, stateSuspended)
	billingApp(t, exact, p250, 1, stateSuspended)
	instances := billingOrg(t, 299)
	billingApp(t, instances, p100, 3, stateSuspended)
	// One of its apps is being resumed already (resume/<org> holds its lock): the other is
	// what the wallet must cover.
	partlyLocked := billingOrg(t, 100)
	billingApp(t, partlyLocked, p100, 1, stateSuspended)
	lockApp(t, partlyLocked, billingApp(t, partlyLocked, p250, 1, stateSuspended), db.OpResume)
	allLocked := billingOrg(t, 1_000)
	lockApp(t, allLocked, billingApp(t, allLocked, p100, 1, stateSuspended), db.OpResume)
	// A stopped app is not resumed, and does not count in what resuming costs.
	stoppedBeside := billingOrg(t, 100)
	billingApp(t, stoppedBeside, p100, 1, stateSuspended)
	billingApp(t, stoppedBeside, p250, 1, stateStopped)
	onlyRunning := billingOrg(t, 1_000)
	billingApp(t, onlyRunning, p100, 1, stateRunning)
	onlyStopped := billingOrg(t, 1_000)
	billingApp(t, onlyStopped, p100, 1, stateStopped)
	onlyCreated := billingOrg(t, 1_000)
	billingApp(t, onlyCreated, p100, 1, stateCreated)
	freeBelowZero := billingOrg(t, -1)
	billingApp(t, freeBelowZero, free, 1, stateSuspended)
	freeAtZero := billingOrg(t, 0)
	billingApp(t, freeAtZero, free, 1, stateSuspended)

	cases := []standingCase{
		{name: "two suspended apps, one unit short", org: short},
		{name: "two suspended apps, exactly one period", org: exact, listed: true, balance: 350, cost: 350},
		{name: "three suspended instances, one unit short", org: instances},
		{name: "one suspended app held by a resume", org: partlyLocked, listed: true, balance: 100, cost: 100},
		{name: "every suspended app held by a resume", org: allLocked},
		{name: "a stopped app beside a suspended one", org: stoppedBeside, listed: true, balance: 100, cost: 100},
		{name: "only a running app", org: onlyRunning},
		{name: "only a stopped app", org: onlyStopped},
		{name: "only a never-deployed app", org: onlyCreated},
		{name: "a suspended free app, balance below zero", org: freeBelowZero},
		{name: "a suspended free app, empty wallet", org: freeAtZero, listed: true, balance: 0, cost: 0},
	}
	standings, err := testStore.OrgsToResume(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	checkStandings(t, "OrgsToResume(1h)", standings, cases)
	for _, c := range cases {
		if can, err := testStore.CanResume(ctx, c.org, time.Hour); err != nil || can != c.listed {
			t.Errorf("CanResume: %s: %v %v, want %v", c.name, can, err, c.listed)
		}
	}

	// The missing unit arrives: resumed now, and not before.
	setBalance(t, short, 350)
	setBalance(t, instances, 300)
	standings, err = testStore.OrgsToResume(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	checkStandings(t, "OrgsToResume(1h) after the credits", standings, []standingCase{
		{name: "two suspended apps, credited to one period", org: short, listed: true, balance: 350, cost: 350},
		{name: "three suspended instances, credited to one period", org: instances, listed: true, balance: 300, cost: 300},
	})
	// The cost of resuming is for the period asked, too.
	if can, err := testStore.CanResume(ctx, instances, 2*time.Hour); err != nil || can {
		t.Errorf("CanResume for 2 h with one hour's balance: %v %v, want false", can, err)
	}
}

// appUsage is one app's usage segments, oldest first.
func appUsage(t *testing.T, appID string, around time.Time) []db.UsageSegment {
	t.Helper()
	usage, err := testStore.AppUsageBetween(context.Background(), appID, around.Add(-time.Hour), around.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(usage, func(a, b db.UsageSegment) int { return a.StartedAt.Compare(b.StartedAt) })
	return usage
}

func endedAt(u db.UsageSegment) string {
	if u.EndedAt == nil {
		return "open"
	}
	return u.EndedAt.UTC().Format(time.RFC3339Nano)
}

// ends lists where each segment ends, for failure messages.
func ends(usage []db.UsageSegment) []string {
	var out []string
	for _, u := range usage {
		out = append(out, endedAt(u))
	}
	return out
}

// When billing suspends an organization, the open usage of its running apps ends at the end of
// the last period paid, not when the suspension happens: an app busy with another operation
// too, and an app whose usage started after that end stops at once (nothing to charge).
// Closed usage, other organizations' usage and an app being deleted (its delete settles it)
// are left alone; the suspension recorded afterwards changes none of it.
func TestEndUsageForSuspensionEndsAtTheLastPeriodPaid(t *testing.T) {
	ctx := context.Background()
	p100 := billingPlan(t, 100)
	org := billingOrg(t, 0)
	scaled := billingApp(t, org, p100, 1, stateRunning)
	if err := testStore.SetInstanceCount(ctx, scaled, 2); err != nil { // closes a segment, opens one
		t.Fatal(err)
	}
	busy := billingApp(t, org, p100, 1, stateRunning)
	lockApp(t, org, busy, db.OpRestart)
	deleting := billingApp(t, org, p100, 1, stateRunning)
	lockApp(t, org, deleting, db.OpDelete)
	other := billingOrg(t, 0)
	otherApp := billingApp(t, other, p100, 1, stateRunning)

	// paidUntil is after every segment above started and before the suspension.
	time.Sleep(5 * time.Millisecond)
	paidUntil := time.Now().UTC().Truncate(time.Microsecond)
	time.Sleep(5 * time.Millisecond)
	late := billingApp(t, org, p100, 1, stateRunning) // its usage starts after paidUntil
	time.Sleep(20 * time.Millisecond)

	before := map[string][]db.UsageSegment{}
	for _, id := range []string{scaled, busy, deleting, otherApp, late} {
		before[id] = appUsage(t, id, paidUntil)
	}
	if u := before[scaled]; len(u) != 2 || u[0].EndedAt == nil || !u[0].EndedAt.Before(paidUntil) || u[1].EndedAt != nil {
		t.Fatalf("setup: usage of the scaled app %+v, want a closed then an open segment before %s", u, paidUntil)
	}
	for _, id := range []string{busy, deleting, otherApp} {
		if u := before[id]; len(u) != 1 || u[0].EndedAt != nil || !u[0].StartedAt.Before(paidUntil) {
			t.Fatalf("setup: usage %+v, want one open segment started before %s", u, paidUntil)
		}
	}
	if u := before[late]; len(u) != 1 || u[0].EndedAt != nil || !u[0].StartedAt.After(paidUntil) {
		t.Fatalf("setup: usage %+v, want one open segment started after %s", u, paidUntil)
	}

	if err := testStore.EndUsageForSuspension(ctx, org, paidUntil); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		want := paidUntil.Format(time.RFC3339Nano)
		if u := appUsage(t, scaled, paidUntil); len(u) != 2 || endedAt(u[0]) != endedAt(before[scaled][0]) || endedAt(u[1]) != want {
			t.Errorf("%s: the scaled app's usage ends %v, want its closed segment untouched (%s), its open one ended at %s",
				when, ends(u), endedAt(before[scaled][0]), want)
		}
		if u := appUsage(t, busy, paidUntil); len(u) != 1 || endedAt(u[0]) != want {
			t.Errorf("%s: the busy app's usage ends %v, want %s", when, ends(u), want)
		}
		if u := appUsage(t, late, paidUntil); len(u) != 1 || u[0].EndedAt == nil || !u[0].EndedAt.Equal(u[0].StartedAt) {
			t.Errorf("%s: usage started after the last period paid (%s) ends %v, want at its start", when,
				before[late][0].StartedAt.UTC().Format(time.RFC3339Nano), ends(u))
		}
		if u := appUsage(t, deleting, paidUntil); len(u) != 1 || u[0].EndedAt != nil {
			t.Errorf("%s: the usage of an app being deleted ends %v, want open until the delete is recorded", when, ends(u))
		}
		if u := appUsage(t, otherApp, paidUntil); len(u) != 1 || u[0].EndedAt != nil {
			t.Errorf("%s: another organization's usage ends %v, want open", when, ends(u))
		}
	}
	check("after EndUsageForSuspension")

	// The suspension is recorded later (after the drain): no usage moves or reopens.
	for _, id := range []string{scaled, late} {
		if err := testStore.SetAppSuspended(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	check("after SetAppSuspended")

	// Ending it again (a retried activity) changes nothing.
	if err := testStore.EndUsageForSuspension(ctx, org, paidUntil.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	check("after a second EndUsageForSuspension")
}

// The doc's example, over real rows: a wallet of 150, one app at 100/h. Once a period is
// charged, 50 is left, the organization is suspended and its usage ends at the end of the period
// paid. It is resumed only when credited back to one period, and its usage reopens only when
// the resume records the app running.
func TestAWalletIsSuspendedThenResumedOverRealRows(t *testing.T) {
	ctx := context.Background()
	p100 := billingPlan(t, 100)
	org := billingOrg(t, 150)
	app := billingApp(t, org, p100, 1, stateRunning)
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

	time.Sleep(5 * time.Millisecond)
	paidUntil := time.Now().UTC().Truncate(time.Microsecond)
	start := paidUntil.Add(-time.Hour)
	if _, err := testStore.RecordCharges(ctx, []db.Charge{{OrgID: org, AppID: app, AppName: "web", PeriodStart: start, PeriodEnd: paidUntil,
		InstanceSeconds: 3600, PricePerHour: 100, Amount: 100}}); err != nil {
		t.Fatal(err)
	}
	if !listed(testStore.OrgsToSuspend) {
		t.Fatal("50 left for a period of 100: not suspended")
	}
	time.Sleep(5 * time.Millisecond)
	if err := testStore.EndUsageForSuspension(ctx, org, paidUntil); err != nil {
		t.Fatal(err)
	}
	if err := testStore.SetAppSuspended(ctx, app); err != nil {
		t.Fatal(err)
	}
	if u := appUsage(t, app, paidUntil); len(u) != 1 || u[0].EndedAt == nil || !u[0].EndedAt.Equal(paidUntil) {
		t.Fatalf("usage after the suspension %+v, want one segment ended at %s", u, paidUntil)
	}
	if listed(testStore.OrgsToSuspend) {
		t.Error("suspended again with no running app")
	}
	if listed(testStore.OrgsToResume) {
		t.Error("resumed with 50 for a period of 100")
	}
	setBalance(t, org, 99)
	if listed(testStore.OrgsToResume) {
		t.Error("resumed with 99 for a period of 100")
	}
	setBalance(t, org, 100)
	if !listed(testStore.OrgsToResume) {
		t.Fatal("not resumed with 100 for a period of 100")
	}

	// ResumeOrganization: the lock (the app is no longer resumable meanwhile), then running.
	resume := lockApp(t, org, app, db.OpResume)
	if listed(testStore.OrgsToResume) {
		t.Error("resumed twice: its only app is held by the running resume")
	}
	if err := testStore.SetAppRunning(ctx, app, "sp-x-2", "http://x/"); err != nil {
		t.Fatal(err)
	}
	finish(t, resume, db.OperationSucceeded)
	u := appUsage(t, app, paidUntil)
	if len(u) != 2 || u[1].EndedAt != nil || !u[1].StartedAt.After(paidUntil) {
		t.Errorf("usage after the resume %+v, want a new open segment", u)
	}
	if listed(testStore.OrgsToSuspend) || listed(testStore.OrgsToResume) {
		t.Error("100 covers the resumed app's period: neither suspended nor resumed")
	}
	w, _ := testStore.GetWallet(ctx, org)
	ledger, _ := testStore.LedgerBalance(ctx, org)
	if w.Balance != 100 || ledger != 100 {
		t.Errorf("balance %d, ledger %d, want 100", w.Balance, ledger)
	}
}

// The billing cursor only moves forward: an earlier time (an overlapping run that is behind)
// leaves it, the same time again changes nothing, and of concurrent advances the latest wins.
// It is the platform's one cursor, so the test moves it only past wherever it is.
func TestBilledUntilOnlyMovesForward(t *testing.T) {
	ctx := context.Background()
	cursor := func() time.Time {
		t.Helper()
		c, err := testStore.BilledUntil(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	advance := func(to time.Time) {
		t.Helper()
		if err := testStore.AdvanceBilledUntil(ctx, to); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	if c := cursor(); c.After(base) {
		base = c.Truncate(time.Hour).Add(time.Hour)
	}
	first := base.Add(time.Hour)
	advance(first) // the first run inserts the row; later ones update it
	if c := cursor(); !c.Equal(first) {
		t.Fatalf("cursor %s after advancing to %s", c, first)
	}
	advance(first)
	if c := cursor(); !c.Equal(first) {
		t.Errorf("cursor %s after advancing to %s twice", c, first)
	}
	for _, back := range []time.Time{first.Add(-time.Hour), first.Add(-time.Microsecond), base.Add(-24 * time.Hour)} {
		advance(back)
		if c := cursor(); !c.Equal(first) {
			t.Errorf("advancing to %s moved the cursor back to %s, want %s", back, c, first)
		}
	}
	second := first.Add(time.Hour)
	advance(second)
	if c := cursor(); !c.Equal(second) {
		t.Errorf("cursor %s after advancing to %s", c, second)
	}

	// Overlapping runs write their ends in any order: the latest stays.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := testStore.AdvanceBilledUntil(ctx, second.Add(time.Duration(8-i)*time.Hour)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if c, want := cursor(), second.Add(8*time.Hour); !c.Equal(want) {
		t.Errorf("cursor %s after concurrent advances, want the latest %s", c, want)
	}
}
