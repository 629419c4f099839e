package testsuite

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	sptemporal "github.com/skypanel/skypanel/temporal"
	"github.com/skypanel/skypanel/workflows"
)

// billingPeriod is the test stack's billing period: whole periods pass within a test.
const billingPeriod = 3 * time.Second

// pricePerHour makes a period of one instance cost 3,000: 1,000 minor units a second.
const pricePerHour = 3_600_000

type ledgerEntry struct {
	ID              int64      `json:"id"`
	Kind            string     `json:"kind"`
	Amount          int64      `json:"amount"`
	AppID           *string    `json:"app_id"`
	PeriodStart     *time.Time `json:"period_start"`
	PeriodEnd       *time.Time `json:"period_end"`
	InstanceSeconds *float64   `json:"instance_seconds"`
	CreatedAt       time.Time  `json:"created_at"`
}

type wallet struct {
	OrgID    string `json:"organization_id"`
	Balance  int64  `json:"balance"`
	Currency string `json:"currency"`
}

func (c customer) wallet(t testing.TB) wallet {
	t.Helper()
	var w wallet
	if status, raw := platform.call(http.MethodGet, "/api/paas/wallet", c.token, nil, &w); status != http.StatusOK {
		t.Fatalf("wallet: %d %s", status, raw)
	}
	return w
}

// ledger reads every entry, page by page.
func (c customer) ledger(t testing.TB) []ledgerEntry {
	t.Helper()
	var all []ledgerEntry
	before := int64(0)
	for {
		var page struct {
			Items      []ledgerEntry `json:"items"`
			NextBefore int64         `json:"next_before"`
		}
		path := fmt.Sprintf("/api/paas/wallet/transactions?limit=2&before=%d", before)
		if status, raw := platform.call(http.MethodGet, path, c.token, nil, &page); status != http.StatusOK {
			t.Fatalf("transactions: %d %s", status, raw)
		}
		all = append(all, page.Items...)
		if page.NextBefore == 0 {
			return all
		}
		before = page.NextBefore
	}
}

// testPlan is a plan an e2e test made for itself.
type testPlan struct {
	ID   string `json:"id"`
	Slug string `json:"slug"`
}

// planFields are the fields of a test plan (250 mCPU, 128 MB) at price per instance-hour.
func planFields(slug, name string, price int) map[string]any {
	return map[string]any{"slug": slug, "name": name, "cpu_millis": 250, "memory_mb": 128, "price_per_hour_minor": price}
}

// createPlan makes a plan of its own for a test (250 mCPU, 128 MB) at price per instance-hour.
func createPlan(t testing.TB, slug, name string, price int) testPlan {
	t.Helper()
	var plan testPlan
	if status, raw := platform.call(http.MethodPost, "/api/paas/admin/plans", platform.adminToken, planFields(slug, name, price), &plan); status != http.StatusCreated {
		t.Fatalf("create plan %s: %d %s", slug, status, raw)
	}
	return plan
}

func credit(t testing.TB, orgID string, amount any, reference string) (int, []byte) {
	t.Helper()
	return platform.call(http.MethodPost, "/api/paas/admin/organizations/"+orgID+"/wallet/credit", platform.adminToken,
		map[string]any{"amount": amount, "reference": reference}, nil)
}

// TestBillingChargesTwoPeriodsSuspendsAndResumes: an app on a pricey plan with a wallet that
// pays exactly two periods is charged twice, the right amounts, then suspended (nginx answers
// 402); a credit brings it back with no other call.
func TestBillingChargesTwoPeriodsSuspendsAndResumes(t *testing.T) {
	owner := newCustomer(t, uniqueName("payer")+"@example.com")
	plan := createPlan(t, uniqueName("metered"), "Metered", pricePerHour)
	slug := plan.Slug
	// 6,000 pays the first (partial) period and one whole one, and never a third: the
	// suspension comes right after the second charge.
	if status, raw := credit(t, owner.orgID, 6000, "topup-"+slug); status != http.StatusCreated {
		t.Fatalf("credit: %d %s", status, raw)
	}
	name := uniqueName("metered")
	r := newHelloRepo(t, name, "paid for")
	var app application
	if status, raw := platform.call(http.MethodPost, "/api/paas/applications", owner.token, map[string]any{
		"name": name, "runtime": "dockerfile", "plan": slug, "region": "local", "git_url": r.URL, "drain_seconds": 1,
	}, &app); status != http.StatusCreated {
		t.Fatalf("create app: %d %s", status, raw)
	}
	remember(&created.apps, app.ID)
	if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
		t.Fatalf("deploy: %+v", dep)
	}
	host := app.Name + ".apps.localhost"

	eventually(t, 60*time.Second, "the app is suspended and nginx answers 402", func() (bool, string) {
		got := owner.getApp(t, app.ID)
		status, body, _ := platform.throughNginx(host)
		return got.Status == "suspended" && status == http.StatusPaymentRequired && strings.Contains(body, "suspended"),
			fmt.Sprintf("status %s, nginx %d %q", got.Status, status, body)
	})
	if n := len(appContainers(t, app.ID)); n != 0 {
		t.Errorf("%d containers left after the suspension", n)
	}
	owner.waitIdle(t, app.ID) // the suspension's own end
	// A suspended app refuses every operation but delete (and billing's own resume). Rollback
	// is refused too (db's TestSuspendedAppRefusesAllButDelete); this app has one release, so a
	// rollback request here fails validation first.
	for _, op := range []struct {
		path string
		body any
	}{
		{"deploy", nil}, {"start", nil}, {"restart", nil}, {"stop", nil}, {"scale", map[string]int{"instances": 2}},
	} {
		if status, raw := platform.call(http.MethodPost, "/api/paas/applications/"+app.ID+"/"+op.path, owner.token, op.body, nil); status != http.StatusConflict || !strings.Contains(string(raw), "suspended") {
			t.Errorf("%s of a suspended app: %d %s, want 409 saying it is suspended", op.path, status, raw)
		}
	}
	if got := owner.getApp(t, app.ID); got.Status != "suspended" || got.Instances != 1 {
		t.Errorf("the refused operations changed the app: %+v", got)
	}

	var charges []ledgerEntry
	var credited int64
	for _, e := range owner.ledger(t) {
		switch e.Kind {
		case "charge":
			charges = append(charges, e)
		case "credit":
			credited += e.Amount
		}
	}
	if len(charges) != 2 {
		t.Fatalf("%d charges, want exactly 2: %+v", len(charges), charges)
	}
	var charged int64
	for _, c := range charges {
		if c.AppID == nil || *c.AppID != app.ID || c.InstanceSeconds == nil || c.PeriodStart == nil || c.PeriodEnd == nil {
			t.Fatalf("charge %+v does not name the app, its period and usage", c)
		}
		if period := c.PeriodEnd.Sub(*c.PeriodStart); period != billingPeriod {
			t.Errorf("charge for a period of %s, want %s", period, billingPeriod)
		}
		// 1,000 a second per instance, rounded half up.
		if want := int64(math.Floor(*c.InstanceSeconds*pricePerHour/3600 + 0.5)); c.Amount != want || *c.InstanceSeconds > billingPeriod.Seconds() {
			t.Errorf("charge of %d for %.3f instance-seconds, want %d", c.Amount, *c.InstanceSeconds, want)
		}
		charged += c.Amount
	}
	// Newest first: the second charge is a whole period.
	if *charges[0].InstanceSeconds != billingPeriod.Seconds() || charges[0].Amount != 3000 {
		t.Errorf("the second charge %+v, want a whole period: 3.000 instance-seconds, 3000", charges[0])
	}
	if w := owner.wallet(t); w.Balance != credited-charged || w.Currency != "USD" || w.OrgID != owner.orgID {
		t.Errorf("wallet %+v, want balance %d (credits %d - charges %d)", w, credited-charged, credited, charged)
	}

	// The same top-up reference again credits nothing; a new one resumes the app by itself.
	if status, raw := credit(t, owner.orgID, 6000, "topup-"+slug); status != http.StatusOK {
		t.Errorf("the same reference again: %d %s, want 200", status, raw)
	}
	var topUp struct {
		Balance  int64  `json:"balance"`
		Resuming string `json:"resuming_workflow_id"`
	}
	status, raw := platform.call(http.MethodPost, "/api/paas/admin/organizations/"+owner.orgID+"/wallet/credit", platform.adminToken,
		map[string]any{"amount": 30000, "reference": "topup-2-" + slug}, &topUp)
	if status != http.StatusCreated || topUp.Resuming == "" {
		t.Fatalf("second credit: %d %s, want 201 naming the resuming workflow", status, raw)
	}
	owner.waitWorkflow(t, topUp.Resuming) // it queues the app's resumption
	owner.waitIdle(t, app.ID)
	if got := owner.getApp(t, app.ID); got.Status != "running" {
		t.Errorf("after the credit the app is %s", got.Status)
	}
	if status, body, _ := platform.throughNginx(host); status != http.StatusOK || body != "paid for" {
		t.Errorf("after the credit nginx answers %d %q", status, body)
	}
	// Stop it before the wallet runs dry again: its billing ends at the stop, so once a billing
	// run has charged the period after the stop, no charge for that period or later exists.
	owner.operation(t, app.ID, "stop")
	afterStop := time.Now().Truncate(billingPeriod).Add(billingPeriod)
	waitForBillingRun(t, afterStop.Add(billingPeriod))
	for _, e := range owner.ledger(t) {
		if e.Kind == "charge" && !e.PeriodStart.Before(afterStop) {
			t.Errorf("charged for a period after the stop: %+v", e)
		}
	}
}

// waitForBillingRun waits until a billing run started at or after since has completed: it has
// charged every period that ended by since.
func waitForBillingRun(t *testing.T, since time.Time) {
	t.Helper()
	query := fmt.Sprintf(`SkyPanelOperation = "billing" AND ExecutionStatus = "Completed" AND StartTime >= "%s"`, since.UTC().Format(time.RFC3339Nano))
	eventually(t, 30*time.Second, "a billing run after "+since.Format(time.RFC3339), func() (bool, string) {
		resp, err := platform.temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: 1})
		if err != nil {
			return false, err.Error()
		}
		return len(resp.GetExecutions()) > 0, "none yet"
	})
}

// TestConcurrentBillingRunsChargeOnce starts two billing runs together on top of the
// scheduled ones: every app has at most one charge per period.
func TestConcurrentBillingRunsChargeOnce(t *testing.T) {
	owner, app, _, _ := liveHelloApp(t, "twice", "twice")
	// The platform's cheapest plan costs too little for a few seconds: make this app pricey.
	slug := createPlan(t, uniqueName("twice"), "Twice", pricePerHour).Slug
	if status, raw := credit(t, owner.orgID, 1_000_000, "topup-"+slug); status != http.StatusCreated {
		t.Fatalf("credit: %d %s", status, raw)
	}
	if status, raw := platform.call(http.MethodPut, "/api/paas/applications/"+app.ID, owner.token, map[string]any{"plan": slug}, nil); status != http.StatusOK {
		t.Fatalf("change plan: %d %s", status, raw)
	}
	owner.operation(t, app.ID, "restart") // the new plan's price applies from this rollout

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	deadline := time.Now().Add(3 * billingPeriod)
	for time.Now().Before(deadline) {
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				run, err := platform.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
					ID:        workflows.BillingRunWorkflowID(fmt.Sprintf("%s-%d-%d", slug, time.Now().UnixNano(), i)),
					TaskQueue: sptemporal.ControlTaskQueue,
				}, workflows.BillingRun, workflows.BillingRunInput{})
				if err == nil {
					err = run.Get(ctx, nil)
				}
				if err != nil {
					t.Errorf("billing run: %v", err)
				}
			}()
		}
		wg.Wait()
	}
	perPeriod := map[string]int{}
	charges := 0
	for _, e := range owner.ledger(t) {
		if e.Kind != "charge" {
			continue
		}
		charges++
		key := (*e.AppID) + "@" + e.PeriodStart.Format(time.RFC3339Nano)
		if perPeriod[key]++; perPeriod[key] > 1 {
			t.Errorf("two charges for one period: %s", key)
		}
	}
	if charges < 2 {
		t.Errorf("%d charges after %s of runs: the runs charged nothing, the check proves nothing", charges, 3*billingPeriod)
	}
}

// TestDeleteSettlesItsLastPeriodAtOnce: deleting an app charges the period it was deleted in
// right away (SettleApp), not at the next billing run. Billing runs charge only periods that
// have ended, so a charge for the deletion's period written before that period ended can only
// be the settlement. A delete that runs past the period's end cannot tell the two apart; it is
// tried again with a new app, at most three times.
func TestDeleteSettlesItsLastPeriodAtOnce(t *testing.T) {
	slug := createPlan(t, uniqueName("settle"), "Settle", pricePerHour).Slug
	for attempt := 1; attempt <= 3; attempt++ {
		owner := newCustomer(t, uniqueName("settle")+"@example.com")
		if status, raw := credit(t, owner.orgID, 1_000_000, "topup-"+slug); status != http.StatusCreated {
			t.Fatalf("credit: %d %s", status, raw)
		}
		name := uniqueName("settle")
		app := owner.createApp(t, name, newHelloRepo(t, name, "settle").URL)
		if status, raw := platform.call(http.MethodPut, "/api/paas/applications/"+app.ID, owner.token, map[string]any{"plan": slug, "drain_seconds": 1}, nil); status != http.StatusOK {
			t.Fatalf("change plan: %d %s", status, raw)
		}
		if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
			t.Fatalf("deploy: %+v", dep)
		}

		for time.Since(time.Now().Truncate(billingPeriod)) > billingPeriod/10 {
			time.Sleep(10 * time.Millisecond) // until just after the next boundary: at most one period
		}
		deleting := time.Now()
		owner.operation(t, app.ID, "delete")
		took := time.Since(deleting)
		period := deleting.Truncate(billingPeriod)
		end := period.Add(billingPeriod)

		var charge *ledgerEntry
		eventually(t, 30*time.Second, "a charge for the deletion's period", func() (bool, string) {
			for _, e := range owner.ledger(t) {
				if e.Kind == "charge" && e.AppID != nil && *e.AppID == app.ID && e.PeriodStart != nil && e.PeriodStart.Equal(period) {
					charge = &e
					return true, ""
				}
			}
			return false, "none"
		})
		if charge.Amount <= 0 {
			t.Errorf("the settlement charged %d", charge.Amount)
		}
		if charge.CreatedAt.Before(end) {
			t.Logf("attempt %d: the delete took %s; the period %s was charged at %s, before it ended at %s: settled at once",
				attempt, took.Round(time.Millisecond), period.Format(time.RFC3339Nano), charge.CreatedAt.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano))
			return
		}
		t.Logf("attempt %d: the delete took %s and its period was charged at %s, after it ended: a billing run may have written it; trying again",
			attempt, took.Round(time.Millisecond), charge.CreatedAt.Format(time.RFC3339Nano))
	}
	t.Error("in three deletions, no charge for the deletion's period was written before that period ended: the delete does not settle at once")
}

// TestCreditBadInputWritesNothing: zero, negative and fractional amounts, a missing reference
// and an unknown organization are refused, and the wallet does not move.
func TestCreditBadInputWritesNothing(t *testing.T) {
	owner := newCustomer(t, uniqueName("badcredit")+"@example.com")
	cases := []struct {
		name     string
		org      string
		amount   any
		ref      string
		status   int
		location string
	}{
		{"zero", owner.orgID, 0, "r1", 422, "body.amount"},
		{"negative", owner.orgID, -500, "r2", 422, "body.amount"},
		{"fractional", owner.orgID, 12.5, "r3", 422, "body.amount"},
		{"a string", owner.orgID, "100", "r4", 422, "body.amount"},
		{"no reference", owner.orgID, 100, "", 422, "body.reference"},
		{"unknown organization", "7b2d0000-0000-4000-8000-00000000dead", 100, "r5", 404, "path.orgId"},
		{"not an id", "not-a-uuid", 100, "r6", 404, "path.orgId"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, raw := credit(t, c.org, c.amount, c.ref)
			if status != c.status || !strings.Contains(string(raw), c.location) {
				t.Errorf("%d %s, want %d naming %s", status, raw, c.status, c.location)
			}
		})
	}
	if status, _ := platform.call(http.MethodPost, "/api/paas/admin/organizations/"+owner.orgID+"/wallet/credit", owner.token,
		map[string]any{"amount": 100, "reference": "self"}, nil); status != http.StatusForbidden {
		t.Errorf("a customer crediting itself: %d, want 403", status)
	}
	if w := owner.wallet(t); w.Balance != 0 {
		t.Errorf("refused credits moved the wallet to %d", w.Balance)
	}
	if entries := owner.ledger(t); len(entries) != 0 {
		t.Errorf("refused credits wrote %d entries", len(entries))
	}
}

// An organization whose wallet cannot pay one period gets 402 on create, deploy and a scale
// up, with nothing changed; credited, the same calls pass.
func TestAnEmptyWalletGets402UntilCredited(t *testing.T) {
	owner := newCustomer(t, uniqueName("broke")+"@example.com")
	plan := createPlan(t, uniqueName("broke"), "Broke", pricePerHour) // one instance: 3000 a period
	name := uniqueName("broke")
	r := newHelloRepo(t, name, "paid at last")
	create := func() (int, []byte, application) {
		var app application
		status, raw := platform.call(http.MethodPost, "/api/paas/applications", owner.token, map[string]any{
			"name": name, "runtime": "dockerfile", "plan": plan.Slug, "region": "local", "git_url": r.URL,
		}, &app)
		return status, raw, app
	}
	if status, raw, _ := create(); status != http.StatusPaymentRequired || !strings.Contains(string(raw), "credit the wallet") {
		t.Fatalf("create with an empty wallet: %d %s, want 402 saying what to do", status, raw)
	}
	var list struct{ Items []application }
	if platform.call(http.MethodGet, "/api/paas/applications", owner.token, nil, &list); len(list.Items) != 0 {
		t.Errorf("the refused create made %d apps", len(list.Items))
	}

	// 20,000 pays about six periods of one instance.
	if status, raw := credit(t, owner.orgID, 20000, "broke-1-"+plan.Slug); status != http.StatusCreated {
		t.Fatalf("credit: %d %s", status, raw)
	}
	status, raw, app := create()
	if status != http.StatusCreated {
		t.Fatalf("create once credited: %d %s", status, raw)
	}
	remember(&created.apps, app.ID)

	// The plan now costs more than the wallet holds for a period: the first deploy is refused,
	// and nothing is queued or built.
	reprice := func(price int) {
		t.Helper()
		if status, raw := platform.call(http.MethodPut, "/api/paas/admin/plans/"+plan.ID, platform.adminToken, planFields(plan.Slug, "Broke", price), nil); status != http.StatusOK {
			t.Fatalf("reprice: %d %s", status, raw)
		}
	}
	reprice(100 * pricePerHour)
	if status, raw := platform.call(http.MethodPost, "/api/paas/applications/"+app.ID+"/deploy", owner.token, nil, nil); status != http.StatusPaymentRequired {
		t.Errorf("deploy the wallet cannot pay: %d %s, want 402", status, raw)
	}
	var deps struct{ Items []deployment }
	if platform.call(http.MethodGet, "/api/paas/applications/"+app.ID+"/deployments", owner.token, nil, &deps); len(deps.Items) != 0 {
		t.Errorf("the refused deploy made %d deployments", len(deps.Items))
	}
	reprice(pricePerHour)
	if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
		t.Fatalf("deploy once affordable: %+v", dep)
	}

	// Ten instances cost 30,000 a period: refused, and the app keeps its one.
	if status, raw := platform.call(http.MethodPost, "/api/paas/applications/"+app.ID+"/scale", owner.token, map[string]int{"instances": 10}, nil); status != http.StatusPaymentRequired {
		t.Errorf("scale to 10 on 20,000: %d %s, want 402", status, raw)
	}
	if got := owner.getApp(t, app.ID); got.Instances != 1 {
		t.Errorf("the refused scale changed the app: %+v", got)
	}
	if status, raw := credit(t, owner.orgID, 500000, "broke-2-"+plan.Slug); status != http.StatusCreated {
		t.Fatalf("credit: %d %s", status, raw)
	}
	if status, raw := platform.call(http.MethodPost, "/api/paas/applications/"+app.ID+"/scale", owner.token, map[string]int{"instances": 2}, nil); status != http.StatusAccepted {
		t.Errorf("scale to 2 once credited: %d %s", status, raw)
	}
	owner.waitIdle(t, app.ID)
}

// A plan change is priced from the rollout that starts containers of the new plan: a pricey app
// moved to a cheap plan and scaled to the same count is still charged the pricey price (its
// containers are the pricey plan's), and the cheap price only after the restart that applies it.
func TestAPlanChangeIsChargedFromItsRollout(t *testing.T) {
	owner := newCustomer(t, uniqueName("replan")+"@example.com")
	pricey := createPlan(t, uniqueName("pricey"), "Pricey", pricePerHour) // 1,000 a second
	cheap := createPlan(t, uniqueName("cheap"), "Cheap", pricePerHour/10) // 100 a second
	if status, raw := credit(t, owner.orgID, 10_000_000, "replan-"+pricey.Slug); status != http.StatusCreated {
		t.Fatalf("credit: %d %s", status, raw)
	}
	name := uniqueName("replan")
	var app application
	if status, raw := platform.call(http.MethodPost, "/api/paas/applications", owner.token, map[string]any{
		"name": name, "runtime": "dockerfile", "plan": pricey.Slug, "region": "local", "git_url": newHelloRepo(t, name, "replan").URL, "drain_seconds": 1,
	}, &app); status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, raw)
	}
	remember(&created.apps, app.ID)
	if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
		t.Fatalf("deploy: %+v", dep)
	}
	owner.waitIdle(t, app.ID)
	if status, raw := platform.call(http.MethodPut, "/api/paas/applications/"+app.ID, owner.token, map[string]any{"plan": cheap.Slug}, nil); status != http.StatusOK {
		t.Fatalf("change plan: %d %s", status, raw)
	}
	owner.scale(t, app.ID, 1)
	scaled := time.Now()

	// perSecond is the price of the app's charges for periods that started after from.
	perSecond := func(from time.Time) (float64, string) {
		var rates []string
		rate := 0.0
		for _, e := range owner.ledger(t) {
			if e.Kind != "charge" || e.AppID == nil || *e.AppID != app.ID || e.PeriodStart.Before(from) || *e.InstanceSeconds < 1 {
				continue
			}
			rate = float64(e.Amount) / *e.InstanceSeconds
			rates = append(rates, fmt.Sprintf("%d for %.1fs", e.Amount, *e.InstanceSeconds))
		}
		return rate, strings.Join(rates, ", ")
	}
	var rate float64
	eventually(t, time.Minute, "a period after the scale is charged", func() (bool, string) {
		var seen string
		rate, seen = perSecond(scaled.Add(billingPeriod))
		return rate > 0, seen
	})
	if rate < 900 {
		t.Errorf("after a change to the cheap plan and a scale to the same count, charged %.0f a second: the pricey containers still run, want 1000", rate)
	}

	owner.operation(t, app.ID, "restart") // the rollout of the cheap plan
	restarted := time.Now()
	eventually(t, time.Minute, "a period after the restart is charged", func() (bool, string) {
		var seen string
		rate, seen = perSecond(restarted.Add(billingPeriod))
		return rate > 0, seen
	})
	if rate > 110 {
		t.Errorf("after the restart onto the cheap plan, charged %.0f a second, want 100", rate)
	}
}
