package billing

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/skypanel/skypanel/db"
)

// memStore is Store in memory, with db.Store's rules: a charge is written once per
// db.ChargeKey, and the cursor only moves forward. It also records every charge it was asked to
// write, so a test can tell "charged once" from "charged again and deduplicated".
type memStore struct {
	mu          sync.Mutex
	billedUntil time.Time
	usage       []db.UsageSegment
	ledger      map[string]db.Charge
	asked       map[string]int // key: how often RecordCharges was given it
	conflicts   []string       // a key given again with another amount or period
	// failAdvanceAt makes AdvanceBilledUntil fail once for that time: the cursor write is lost
	// after the period's charges were committed.
	failAdvanceAt time.Time
}

func newMemStore(billedUntil time.Time, usage ...db.UsageSegment) *memStore {
	return &memStore{billedUntil: billedUntil, usage: usage, ledger: map[string]db.Charge{}, asked: map[string]int{}}
}

func (s *memStore) BilledUntil(context.Context) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.billedUntil, nil
}

func (s *memStore) AdvanceBilledUntil(_ context.Context, t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.failAdvanceAt.IsZero() && t.Equal(s.failAdvanceAt) {
		s.failAdvanceAt = time.Time{}
		return errors.New("connection lost")
	}
	if t.After(s.billedUntil) {
		s.billedUntil = t
	}
	return nil
}

func (s *memStore) EarliestUsage(context.Context) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var earliest time.Time
	for _, u := range s.usage {
		if earliest.IsZero() || u.StartedAt.Before(earliest) {
			earliest = u.StartedAt
		}
	}
	return earliest, nil
}

func (s *memStore) UsageBetween(ctx context.Context, from, to time.Time) ([]db.UsageSegment, error) {
	return s.AppUsageBetween(ctx, "", from, to)
}

func (s *memStore) AppUsageBetween(_ context.Context, appID string, from, to time.Time) ([]db.UsageSegment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []db.UsageSegment
	for _, u := range s.usage {
		if (appID == "" || u.AppID == appID) && u.StartedAt.Before(to) && (u.EndedAt == nil || u.EndedAt.After(from)) {
			out = append(out, u)
		}
	}
	return out, nil
}

func (s *memStore) RecordCharges(_ context.Context, charges []db.Charge) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	written := 0
	for _, c := range charges {
		if c.Amount <= 0 {
			return 0, fmt.Errorf("charge of app %s: amount %d is not positive", c.AppID, c.Amount)
		}
		key := db.ChargeKey(c.AppID, c.PeriodStart)
		s.asked[key]++
		if prev, ok := s.ledger[key]; ok {
			if prev.Amount != c.Amount || !prev.PeriodEnd.Equal(c.PeriodEnd) {
				s.conflicts = append(s.conflicts, fmt.Sprintf("%s: %d until %s, then %d until %s", key, prev.Amount, prev.PeriodEnd, c.Amount, c.PeriodEnd))
			}
			continue
		}
		s.ledger[key] = c
		written++
	}
	return written, nil
}

func (s *memStore) OrgsToSuspend(context.Context, time.Duration) ([]db.WalletStanding, error) {
	return nil, nil
}

func (s *memStore) OrgsToResume(context.Context, time.Duration) ([]db.WalletStanding, error) {
	return nil, nil
}

func (s *memStore) EndUsageForSuspension(context.Context, string, time.Time) error { return nil }

// entries is the ledger as "app period-start..period-end amount" lines, in order.
func (s *memStore) entries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.ledger {
		out = append(out, fmt.Sprintf("%s %s..%s %d", c.AppID, c.PeriodStart.Format("15:04"), c.PeriodEnd.Format("15:04"), c.Amount))
	}
	sort.Strings(out)
	return out
}

// checkOnce fails the test when a charge was asked for more than once, or twice differently.
func (s *memStore) checkOnce(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, n := range s.asked {
		if n != 1 {
			t.Errorf("charge %s was computed %d times, want once", key, n)
		}
	}
	for _, c := range s.conflicts {
		t.Errorf("one period charged two ways: %s", c)
	}
}

// chargeDue runs ChargeDuePeriods as the billing run does: as an activity.
func chargeDue(t *testing.T, a *Activities, now time.Time) (ChargeDuePeriodsResult, error) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	val, err := env.ExecuteActivity(a.ChargeDuePeriods, ChargeDuePeriodsInput{Now: now})
	if err != nil {
		return ChargeDuePeriodsResult{}, err
	}
	var res ChargeDuePeriodsResult
	if err := val.Get(&res); err != nil {
		t.Fatal(err)
	}
	return res, nil
}

func hour(h, m int) time.Time { return time.Date(2026, 11, 25, h, m, 0, 0, time.UTC) }

// After an outage (no billing run from 10:00 to 16:25) the first run charges every period that
// ended meanwhile, each once and prorated, but not the current one; a second run (another
// firing, an overlapping run) charges nothing.
func TestChargeDuePeriodsCatchesUpAfterAnOutage(t *testing.T) {
	store := newMemStore(hour(10, 0),
		// a: 2 instances at 100/h since before the outage, still running: 200 every hour.
		db.UsageSegment{AppID: "a", OrgID: "o1", Instances: 2, PricePerHour: 100, StartedAt: hour(8, 0)},
		// b: 1 instance at 60/h from 12:30 to 14:15: 30, 60, 15.
		db.UsageSegment{AppID: "b", OrgID: "o2", Instances: 1, PricePerHour: 60, StartedAt: hour(12, 30), EndedAt: ptr(hour(14, 15))},
		// c: started in the current period: nothing yet.
		db.UsageSegment{AppID: "c", OrgID: "o2", Instances: 1, PricePerHour: 100, StartedAt: hour(16, 5)},
	)
	a := &Activities{Store: store, Period: time.Hour}

	res, err := chargeDue(t, a, hour(16, 25))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"a 10:00..11:00 200", "a 11:00..12:00 200", "a 12:00..13:00 200",
		"a 13:00..14:00 200", "a 14:00..15:00 200", "a 15:00..16:00 200",
		"b 12:00..13:00 30", "b 13:00..14:00 60", "b 14:00..15:00 15",
	}
	if got := store.entries(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ledger after the catch-up run:\n got %q\nwant %q", got, want)
	}
	if res.Periods != 6 || res.Charges != len(want) || !res.BilledUntil.Equal(hour(16, 0)) {
		t.Errorf("result %+v, want 6 periods, %d charges, billed until 16:00", res, len(want))
	}
	if until, _ := store.BilledUntil(context.Background()); !until.Equal(hour(16, 0)) {
		t.Errorf("cursor at %s, want 16:00", until)
	}
	store.checkOnce(t)

	// The schedule's next firing in the same period, or an overlapping run: nothing to do.
	res, err = chargeDue(t, a, hour(16, 40))
	if err != nil {
		t.Fatal(err)
	}
	if res.Periods != 0 || res.Charges != 0 || !res.BilledUntil.Equal(hour(16, 0)) {
		t.Errorf("second run in the same period: %+v, want nothing charged", res)
	}
	store.checkOnce(t)

	// The next period's run charges that period only.
	res, err = chargeDue(t, a, hour(17, 0))
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, "a 16:00..17:00 200", "c 16:00..17:00 92")
	sort.Strings(want)
	if got := store.entries(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ledger after 17:00:\n got %q\nwant %q", got, want)
	}
	if res.Periods != 1 || res.Charges != 2 {
		t.Errorf("run at 17:00: %+v, want 1 period and 2 charges", res)
	}
	store.checkOnce(t)
}

// A run that lost its cursor write after committing a period's charges (the activity is then
// retried): the retry recomputes that period with the same key and amount, writes nothing new,
// and goes on.
func TestChargeDuePeriodsRetryAfterALostCursorWrite(t *testing.T) {
	store := newMemStore(hour(10, 0),
		db.UsageSegment{AppID: "a", OrgID: "o1", Instances: 1, PricePerHour: 100, StartedAt: hour(9, 0)})
	store.failAdvanceAt = hour(12, 0)
	a := &Activities{Store: store, Period: time.Hour}

	if _, err := chargeDue(t, a, hour(14, 30)); err == nil {
		t.Fatal("the run did not report the lost cursor write")
	}
	res, err := chargeDue(t, a, hour(14, 30))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a 10:00..11:00 100", "a 11:00..12:00 100", "a 12:00..13:00 100", "a 13:00..14:00 100"}
	if got := store.entries(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ledger:\n got %q\nwant %q", got, want)
	}
	if res.Periods != 3 || res.Charges != 2 || !res.BilledUntil.Equal(hour(14, 0)) {
		t.Errorf("retry: %+v, want 3 periods from 11:00, 2 new charges, billed until 14:00", res)
	}
	store.mu.Lock()
	asked := store.asked[db.ChargeKey("a", hour(11, 0))]
	conflicts := store.conflicts
	store.mu.Unlock()
	if asked != 2 || len(conflicts) != 0 {
		t.Errorf("the period whose cursor write was lost: computed %d times (want 2: the run and its retry), conflicts %q", asked, conflicts)
	}
}

// An outage longer than one run's bound: the first run charges maxPeriodsPerRun periods, the
// next goes on from there; every period is charged once.
func TestChargeDuePeriodsLongOutageSpansRuns(t *testing.T) {
	const missed = maxPeriodsPerRun + 100
	start := hour(0, 0)
	now := start.Add(missed*time.Hour + 10*time.Minute)
	store := newMemStore(start,
		db.UsageSegment{AppID: "a", OrgID: "o1", Instances: 1, PricePerHour: 100, StartedAt: start.Add(-time.Hour)})
	a := &Activities{Store: store, Period: time.Hour}

	res, err := chargeDue(t, a, now)
	if err != nil {
		t.Fatal(err)
	}
	if maxPeriodsPerRun != 500 || res.Periods != 500 || res.Charges != 500 || !res.BilledUntil.Equal(start.Add(500*time.Hour)) {
		t.Fatalf("first run: %+v, want the documented 500 periods (maxPeriodsPerRun %d)", res, maxPeriodsPerRun)
	}
	res, err = chargeDue(t, a, now)
	if err != nil {
		t.Fatal(err)
	}
	if res.Periods != 100 || res.Charges != 100 || !res.BilledUntil.Equal(start.Add(missed*time.Hour)) {
		t.Fatalf("second run: %+v, want the remaining 100 periods", res)
	}
	store.checkOnce(t)
	entries := store.entries()
	if len(entries) != missed {
		t.Fatalf("%d charges, want %d", len(entries), missed)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	for i := 0; i < missed; i++ {
		c, ok := store.ledger[db.ChargeKey("a", start.Add(time.Duration(i)*time.Hour))]
		if !ok || c.Amount != 100 || !c.PeriodEnd.Equal(start.Add(time.Duration(i+1)*time.Hour)) {
			t.Fatalf("period %d: %+v (found %v), want 100 for one hour", i, c, ok)
		}
	}
}

// The first run ever starts at the period of the oldest usage; a cursor off the period's
// boundaries (the period setting changed) first gets a short period up to the next boundary.
func TestChargeDuePeriodsStartingPoints(t *testing.T) {
	t.Run("never billed", func(t *testing.T) {
		store := newMemStore(time.Time{},
			db.UsageSegment{AppID: "a", OrgID: "o1", Instances: 1, PricePerHour: 60, StartedAt: hour(11, 30)})
		res, err := chargeDue(t, &Activities{Store: store, Period: time.Hour}, hour(14, 1))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"a 11:00..12:00 30", "a 12:00..13:00 60", "a 13:00..14:00 60"}
		if got := store.entries(); fmt.Sprint(got) != fmt.Sprint(want) || res.Periods != 3 {
			t.Errorf("ledger %q (%+v), want %q", got, res, want)
		}
		store.checkOnce(t)
	})
	t.Run("cursor off the boundaries", func(t *testing.T) {
		store := newMemStore(hour(10, 20),
			db.UsageSegment{AppID: "a", OrgID: "o1", Instances: 1, PricePerHour: 60, StartedAt: hour(9, 0)})
		res, err := chargeDue(t, &Activities{Store: store, Period: time.Hour}, hour(12, 5))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"a 10:20..11:00 40", "a 11:00..12:00 60"}
		if got := store.entries(); fmt.Sprint(got) != fmt.Sprint(want) || res.Periods != 2 {
			t.Errorf("ledger %q (%+v), want %q", got, res, want)
		}
		store.checkOnce(t)
	})
}
