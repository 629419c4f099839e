package workflows

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/skypanel/skypanel/activities/control/billing"
	"github.com/skypanel/skypanel/activities/control/store"
	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/activities/node/nginx"
	"github.com/skypanel/skypanel/db"
)

// memBilling is billing's store in memory, with the same rules as Postgres: a charge's key is
// unique, the wallet moves only for charges written, the cursor only moves forward.
type memBilling struct {
	mu          sync.Mutex
	usage       []db.UsageSegment
	ledger      map[string]db.Charge
	wallets     map[string]int64
	billedUntil time.Time
	// suspendedCost is, per organization, one period of its suspended apps.
	suspendedCost map[string]int64
	// failAfterCommit makes the next RecordCharges commit, then report an error (a lost reply).
	failAfterCommit bool
	period          time.Duration
}

func newMemBilling(period time.Duration) *memBilling {
	return &memBilling{ledger: map[string]db.Charge{}, wallets: map[string]int64{}, suspendedCost: map[string]int64{}, period: period}
}

func (m *memBilling) BilledUntil(context.Context) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.billedUntil, nil
}

func (m *memBilling) AdvanceBilledUntil(_ context.Context, t time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t.After(m.billedUntil) {
		m.billedUntil = t
	}
	return nil
}

func (m *memBilling) EarliestUsage(context.Context) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var earliest time.Time
	for _, u := range m.usage {
		if earliest.IsZero() || u.StartedAt.Before(earliest) {
			earliest = u.StartedAt
		}
	}
	return earliest, nil
}

func (m *memBilling) UsageBetween(_ context.Context, from, to time.Time) ([]db.UsageSegment, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []db.UsageSegment
	for _, u := range m.usage {
		if u.StartedAt.Before(to) && (u.EndedAt == nil || u.EndedAt.After(from)) {
			out = append(out, u)
		}
	}
	return out, nil
}

func (m *memBilling) AppUsageBetween(ctx context.Context, appID string, from, to time.Time) ([]db.UsageSegment, error) {
	all, _ := m.UsageBetween(ctx, from, to)
	var out []db.UsageSegment
	for _, u := range all {
		if u.AppID == appID {
			out = append(out, u)
		}
	}
	return out, nil
}

func (m *memBilling) RecordCharges(_ context.Context, charges []db.Charge) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	written := 0
	for _, c := range charges {
		key := db.ChargeKey(c.AppID, c.PeriodStart)
		if _, done := m.ledger[key]; done {
			continue
		}
		m.ledger[key] = c
		m.wallets[c.OrgID] -= c.Amount
		written++
	}
	if m.failAfterCommit {
		m.failAfterCommit = false
		return 0, errors.New("connection reset after commit")
	}
	return written, nil
}

func (m *memBilling) runningCost(orgID string) int64 {
	var cost int64
	for _, u := range m.usage {
		if u.OrgID == orgID && u.EndedAt == nil {
			cost += int64(math.Floor(float64(u.PricePerHour)*float64(u.Instances)*m.period.Seconds()/3600 + 0.5))
		}
	}
	return cost
}

func (m *memBilling) OrgsToSuspend(context.Context, time.Duration) ([]db.WalletStanding, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []db.WalletStanding
	for org, balance := range m.wallets {
		if cost := m.runningCost(org); cost > 0 && balance < cost {
			out = append(out, db.WalletStanding{OrgID: org, Balance: balance, NextCost: cost})
		}
	}
	return out, nil
}

func (m *memBilling) OrgsToResume(context.Context, time.Duration) ([]db.WalletStanding, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []db.WalletStanding
	for org, cost := range m.suspendedCost {
		if m.wallets[org] >= cost {
			out = append(out, db.WalletStanding{OrgID: org, Balance: m.wallets[org], NextCost: cost})
		}
	}
	return out, nil
}

func (m *memBilling) EndUsageForSuspension(_ context.Context, orgID string, paidUntil time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, u := range m.usage {
		if u.OrgID == orgID && u.EndedAt == nil {
			end := paidUntil
			if end.Before(u.StartedAt) {
				end = u.StartedAt
			}
			m.usage[i].EndedAt = &end
		}
	}
	return nil
}

func (m *memBilling) charges() map[string]db.Charge {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]db.Charge, len(m.ledger))
	for k, v := range m.ledger {
		out[k] = v
	}
	return out
}

func day(hour, minute int) time.Time {
	return time.Date(2026, 11, 25, hour, minute, 0, 0, time.UTC)
}

// runBilling runs one BillingRun at now against the store; suspensions and resumptions are
// recorded, not run (their own tests run them).
func runBilling(t *testing.T, m *memBilling, now time.Time) (BillingRunResult, *testsuite.TestWorkflowEnvironment) {
	t.Helper()
	env := newTestEnv()
	env.SetStartTime(now)
	env.RegisterActivity(&billing.Activities{Store: m, Period: m.period})
	env.RegisterWorkflow(SuspendOrganization)
	env.RegisterWorkflow(ResumeOrganization)
	env.OnWorkflow(SuspendOrganization, mock.Anything, mock.Anything).Return([]string{}, nil)
	env.OnWorkflow(ResumeOrganization, mock.Anything, mock.Anything).Return([]string{}, nil)
	env.ExecuteWorkflow(BillingRun, BillingRunInput{})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res BillingRunResult
	require.NoError(t, env.GetWorkflowResult(&res))
	return res, env
}

// Each period is charged once, prorated per second, whatever the number of runs; a stop in the
// middle of a period charges until the stop.
func TestBillingChargesEachPeriodOnceProrated(t *testing.T) {
	m := newMemBilling(time.Hour)
	m.wallets["org"] = 1_000_000
	stopped := day(11, 15)
	m.usage = []db.UsageSegment{
		{AppID: "a", OrgID: "org", AppName: "a", Instances: 1, PricePerHour: 100, StartedAt: day(9, 30)},
		{AppID: "b", OrgID: "org", AppName: "b", Instances: 2, PricePerHour: 100, StartedAt: day(10, 0), EndedAt: &stopped},
	}
	res, _ := runBilling(t, m, day(11, 5))
	if res.Charged.Periods != 2 || res.Charged.Charges != 3 {
		t.Fatalf("first run: %+v, want 2 periods (9:00, 10:00) and 3 charges", res.Charged)
	}
	want := map[string]int64{
		db.ChargeKey("a", day(9, 0)):  50,  // started at 9:30
		db.ChargeKey("a", day(10, 0)): 100, // a whole hour
		db.ChargeKey("b", day(10, 0)): 200, // two instances, a whole hour
	}
	assertCharges(t, m, want)

	// Another run within the same hour: nothing is due.
	res, _ = runBilling(t, m, day(11, 40))
	if res.Charged.Charges != 0 {
		t.Errorf("a second run in the same hour charged %d", res.Charged.Charges)
	}
	// The next hour: a's whole hour, b until its stop at 11:15 (2 instances × 15 minutes).
	runBilling(t, m, day(12, 1))
	want[db.ChargeKey("a", day(11, 0))] = 100
	want[db.ChargeKey("b", day(11, 0))] = 50
	assertCharges(t, m, want)
	if got := m.wallets["org"]; got != 1_000_000-500 {
		t.Errorf("wallet %d, want %d", got, 1_000_000-500)
	}
}

// A charge activity whose transaction committed but whose reply was lost is retried: the retry
// finds the charges written and writes none again.
func TestBillingRetryAfterCommitChargesOnce(t *testing.T) {
	m := newMemBilling(time.Hour)
	m.wallets["org"] = 1_000
	m.usage = []db.UsageSegment{{AppID: "a", OrgID: "org", AppName: "a", Instances: 1, PricePerHour: 100, StartedAt: day(8, 0)}}
	m.failAfterCommit = true
	res, _ := runBilling(t, m, day(9, 10))
	if res.Charged.Charges != 0 {
		t.Errorf("the retried attempt wrote %d charges, want 0 (the first attempt wrote it)", res.Charged.Charges)
	}
	assertCharges(t, m, map[string]int64{db.ChargeKey("a", day(8, 0)): 100})
	if got := m.wallets["org"]; got != 900 {
		t.Errorf("wallet %d after a retried charge, want 900", got)
	}
}

// A wallet that cannot pay the next period gets its organization suspended, and its usage ends
// with the last period paid; a wallet that can pay again for suspended apps gets them resumed.
func TestBillingSuspendsWhenTheWalletCannotPayAndResumesWhenItCan(t *testing.T) {
	m := newMemBilling(time.Hour)
	m.wallets["poor"] = 150
	m.wallets["rich"] = 10_000
	m.wallets["back"] = 500
	m.suspendedCost["back"] = 300
	m.usage = []db.UsageSegment{
		{AppID: "p", OrgID: "poor", AppName: "p", Instances: 1, PricePerHour: 100, StartedAt: day(8, 0)},
		{AppID: "r", OrgID: "rich", AppName: "r", Instances: 1, PricePerHour: 100, StartedAt: day(8, 0)},
	}
	res, env := runBilling(t, m, day(9, 30))
	// poor paid 100 for 8:00-9:00 and has 50 left: less than the next hour.
	if len(res.Suspended) != 1 || res.Suspended[0] != "poor" {
		t.Errorf("suspended %v, want [poor]", res.Suspended)
	}
	if len(res.Resumed) != 1 || res.Resumed[0] != "back" {
		t.Errorf("resumed %v, want [back]", res.Resumed)
	}
	env.AssertWorkflowCalled(t, "SuspendOrganization", mock.Anything, OrganizationInput{OrgID: "poor"})
	env.AssertWorkflowCalled(t, "ResumeOrganization", mock.Anything, OrganizationInput{OrgID: "back"})
	if end := m.usage[0].EndedAt; end == nil || !end.Equal(day(9, 0)) {
		t.Errorf("poor's usage ends at %v, want 9:00, the end of the period it paid", end)
	}
	// Later runs charge poor nothing more.
	runBilling(t, m, day(12, 5))
	for key, c := range m.charges() {
		if c.OrgID == "poor" && key != db.ChargeKey("p", day(8, 0)) {
			t.Errorf("poor charged after its suspension: %s %+v", key, c)
		}
	}
}

func assertCharges(t *testing.T, m *memBilling, want map[string]int64) {
	t.Helper()
	got := m.charges()
	if len(got) != len(want) {
		t.Errorf("%d charges, want %d: %v", len(got), len(want), got)
	}
	for key, amount := range want {
		if got[key].Amount != amount {
			t.Errorf("charge %s = %d, want %d", key, got[key].Amount, amount)
		}
	}
}

// SuspendOrganization queues a suspension in each running app's turn and in each available
// database's turn (one that refuses it, deleted meanwhile, is left out); ResumeOrganization
// queues each suspended app's and database's resumption.
func TestOrganizationWorkflowsQueueInEachAppsAndDatabasesTurn(t *testing.T) {
	for _, tc := range []struct {
		workflow               any
		status, databaseStatus string
		kind, databaseKind     string
	}{
		{SuspendOrganization, db.AppRunning, db.DatabaseAvailable, db.OpSuspend, db.DatabaseOpSuspend},
		{ResumeOrganization, db.AppSuspended, db.DatabaseSuspended, db.OpResume, db.DatabaseOpResume},
	} {
		env := newTestEnv()
		env.OnActivity(storeActs.ListOrgApps, mock.Anything, store.ListOrgAppsInput{OrgID: "org-1", Status: tc.status}).Return([]string{testAppID, "gone-app"}, nil)
		env.OnActivity(storeActs.QueueAppOperation, mock.Anything, store.QueueAppOperationInput{OrgID: "org-1", AppID: testAppID, Kind: tc.kind, Via: "billing"}).Return("op-1", nil).Once()
		env.OnActivity(storeActs.QueueAppOperation, mock.Anything, store.QueueAppOperationInput{OrgID: "org-1", AppID: "gone-app", Kind: tc.kind, Via: "billing"}).Return("", nil).Once()
		env.OnActivity(storeActs.ListOrgDatabases, mock.Anything, store.ListOrgDatabasesInput{OrgID: "org-1", Status: tc.databaseStatus}).
			Return([]string{testDatabaseID, "gone-db"}, nil).Once()
		env.OnActivity(storeActs.QueueDatabaseOperation, mock.Anything, store.QueueDatabaseOperationInput{
			OrgID: "org-1", DatabaseID: testDatabaseID, Kind: tc.databaseKind, Via: "billing"}).Return("op-2", nil).Once()
		env.OnActivity(storeActs.QueueDatabaseOperation, mock.Anything, store.QueueDatabaseOperationInput{
			OrgID: "org-1", DatabaseID: "gone-db", Kind: tc.databaseKind, Via: "billing"}).Return("", nil).Once()
		forbidActivities(t, env, dockerActs.RemoveDatabase)
		env.ExecuteWorkflow(tc.workflow, OrganizationInput{OrgID: "org-1"})
		require.True(t, env.IsWorkflowCompleted())
		require.NoError(t, env.GetWorkflowError())
		var queued []string
		require.NoError(t, env.GetWorkflowResult(&queued))
		require.Equal(t, []string{testAppID, testDatabaseID}, queued, tc.kind)
		env.AssertExpectations(t)
	}
}

// SuspendApp puts the 402 page up before it removes the instances, records the suspension and
// ends its operation.
func TestSuspendAppServesThe402PageThenStopsTheInstances(t *testing.T) {
	env := newTestEnv()
	target := testPlan.AppTarget
	target.Image, target.ReleaseID = "skypanel/app-x:v1", "rel-1"
	var order []string
	env.OnActivity(storeActs.LoadAppTarget, mock.Anything, store.LoadAppTargetInput{AppID: testAppID}).Return(target, nil)
	env.OnActivity(nginxActs.PublishRoute, mock.Anything, mock.MatchedBy(func(in nginx.PublishRouteInput) bool {
		return in.AppID == testAppID && in.Mode == nginx.RouteSuspended && in.ReleaseID == "op-1" && len(in.Upstreams) == 0
	})).Return(func(context.Context, nginx.PublishRouteInput) error { order = append(order, "402 page"); return nil }).Once()
	env.OnActivity(dockerActs.RemoveInstances, mock.Anything, docker.RemoveInstancesInput{AppID: testAppID, GracePeriod: testDrain}).
		Return(func(context.Context, docker.RemoveInstancesInput) (docker.RemoveInstancesResult, error) {
			order = append(order, "remove")
			return docker.RemoveInstancesResult{}, nil
		}).Once()
	env.OnActivity(storeActs.MarkAppSuspended, mock.Anything, store.MarkAppSuspendedInput{AppID: testAppID}).Return(nil).Once()
	env.OnActivity(storeActs.ReleaseOperation, mock.Anything, mock.MatchedBy(func(in store.ReleaseOperationInput) bool {
		return in.AppID == testAppID && in.Status == store.OperationSucceeded
	})).Return(nil).Once()

	env.ExecuteWorkflow(SuspendApp, AppOperationInput{AppID: testAppID, OperationID: "op-1"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []string{"402 page", "remove"}, order)
	env.AssertExpectations(t)
}

// ResumeApp starts the suspended app with the zero-downtime start and marks it running.
func TestResumeAppStartsTheSuspendedApp(t *testing.T) {
	env := newTestEnv()
	target := testPlan.AppTarget
	target.Image, target.ReleaseID = "skypanel/app-x:v1", "rel-1"
	env.OnActivity(storeActs.LoadAppTarget, mock.Anything, store.LoadAppTargetInput{AppID: testAppID}).Return(target, nil)
	env.OnActivity(dockerActs.EnsureNetwork, mock.Anything, mock.Anything).Return(docker.EnsureNetworkResult{Network: "n"}, nil)
	env.OnActivity(dockerActs.StartInstance, mock.Anything, mock.MatchedBy(func(in docker.StartInstanceInput) bool {
		return in.Image == target.Image && in.ReleaseID == "rel-1"
	})).Return(docker.StartInstanceResult{HostPort: 40100}, nil).Once()
	env.OnActivity(dockerActs.WaitReady, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(nginxActs.PublishRoute, mock.Anything, mock.MatchedBy(func(in nginx.PublishRouteInput) bool {
		return in.Serves() && len(in.Upstreams) == 1
	})).Return(nil).Once()
	env.OnActivity(dockerActs.RemoveInstances, mock.Anything, mock.Anything).Return(docker.RemoveInstancesResult{}, nil).Once()
	env.OnActivity(storeActs.MarkAppRunning, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(storeActs.ReleaseOperation, mock.Anything, mock.Anything).Return(nil).Once()

	env.ExecuteWorkflow(ResumeApp, AppOperationInput{AppID: testAppID, OperationID: "op-1"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}

// After the period setting changes, a cursor off the new boundaries gets a short period up to
// the next boundary: nothing is charged twice and nothing before it has ended.
func TestBillingRealignsAfterThePeriodChanges(t *testing.T) {
	m := newMemBilling(time.Hour)
	m.wallets["org"] = 1_000_000
	m.usage = []db.UsageSegment{{AppID: "a", OrgID: "org", AppName: "a", Instances: 1, PricePerHour: 120, StartedAt: day(9, 0)}}
	m.billedUntil = day(10, 30) // billed every 30 minutes until now
	res, _ := runBilling(t, m, day(12, 10))
	if res.Charged.Periods != 2 || !res.Charged.BilledUntil.Equal(day(12, 0)) {
		t.Fatalf("%+v, want 10:30-11:00 and 11:00-12:00", res.Charged)
	}
	assertCharges(t, m, map[string]int64{
		db.ChargeKey("a", day(10, 30)): 60,
		db.ChargeKey("a", day(11, 0)):  120,
	})
}

// Deleting an app settles the period it was deleted in at once, under the key the period's
// billing run uses, so that run charges nothing more.
func TestDeleteAppSettlesThePeriodAtOnce(t *testing.T) {
	m := newMemBilling(time.Hour)
	m.wallets["org"] = 1_000
	deleted := day(10, 30)
	m.usage = []db.UsageSegment{{AppID: testAppID, OrgID: "org", AppName: "hello", Instances: 1, PricePerHour: 100, StartedAt: day(10, 0), EndedAt: &deleted}}
	env := newTestEnv()
	env.SetStartTime(deleted)
	env.RegisterActivity(&billing.Activities{Store: m, Period: time.Hour})
	target := testPlan.AppTarget
	target.NodeID = "" // nothing on a node: only the records go
	env.OnActivity(storeActs.LoadAppTarget, mock.Anything, mock.Anything).Return(target, nil)
	env.OnActivity(storeActs.DeleteApplicationRecord, mock.Anything, store.DeleteApplicationRecordInput{AppID: testAppID}).Return(nil).Once()
	env.OnActivity(storeActs.ReleaseOperation, mock.Anything, mock.Anything).Return(nil)
	env.ExecuteWorkflow(DeleteApp, AppOperationInput{AppID: testAppID, OperationID: "op"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	assertCharges(t, m, map[string]int64{db.ChargeKey(testAppID, day(10, 0)): 50})

	runBilling(t, m, day(11, 1))
	assertCharges(t, m, map[string]int64{db.ChargeKey(testAppID, day(10, 0)): 50})
	if m.wallets["org"] != 950 {
		t.Errorf("wallet %d, want 950: the period was charged once", m.wallets["org"])
	}
}
