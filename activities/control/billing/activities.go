package billing

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/skypanel/skypanel/db"
)

// DefaultPeriod is the billing period: apps are charged hourly.
const DefaultPeriod = time.Hour

// maxPeriodsPerRun bounds one run's catch-up after a long outage; the next run goes on.
const maxPeriodsPerRun = 500

// Store is what billing reads and writes (db.Store; the workflow tests use an in-memory one).
type Store interface {
	BilledUntil(ctx context.Context) (time.Time, error)
	AdvanceBilledUntil(ctx context.Context, t time.Time) error
	EarliestUsage(ctx context.Context) (time.Time, error)
	UsageBetween(ctx context.Context, from, to time.Time) ([]db.UsageSegment, error)
	AppUsageBetween(ctx context.Context, appID string, from, to time.Time) ([]db.UsageSegment, error)
	RecordCharges(ctx context.Context, charges []db.Charge) (int, error)
	OrgsToSuspend(ctx context.Context, period time.Duration) ([]db.WalletStanding, error)
	OrgsToResume(ctx context.Context, period time.Duration) ([]db.WalletStanding, error)
	EndUsageForSuspension(ctx context.Context, orgID string, paidUntil time.Time) error
}

// Activities run on the control queue. Register a pointer with the control worker.
type Activities struct {
	Store  Store
	Period time.Duration // DefaultPeriod when zero
}

func (a *Activities) period() time.Duration {
	if a.Period <= 0 {
		return DefaultPeriod
	}
	return a.Period
}

// ChargeDuePeriodsInput is the billing run's time: every period that ended by then is charged.
type ChargeDuePeriodsInput struct {
	Now time.Time
}

// ChargeDuePeriodsResult says what the run charged.
type ChargeDuePeriodsResult struct {
	Periods     int // periods looked at
	Charges     int // ledger entries written by this attempt (a retry of a committed one writes 0)
	BilledUntil time.Time
}

// ChargeDuePeriods charges every app for every period that ended by in.Now and was not billed
// yet, one period at a time, each in one transaction. Each charge has the key (app, period), so
// a retried activity, an overlapping run or a manual re-run never charges twice.
func (a *Activities) ChargeDuePeriods(ctx context.Context, in ChargeDuePeriodsInput) (ChargeDuePeriodsResult, error) {
	period := a.period()
	until := PeriodStart(in.Now, period)
	from, err := a.Store.BilledUntil(ctx)
	if err != nil {
		return ChargeDuePeriodsResult{}, err
	}
	if from.IsZero() {
		earliest, err := a.Store.EarliestUsage(ctx)
		if err != nil {
			return ChargeDuePeriodsResult{}, err
		}
		if earliest.IsZero() || !earliest.Before(until) {
			return ChargeDuePeriodsResult{BilledUntil: from}, nil
		}
		from = PeriodStart(earliest, period)
	}
	res := ChargeDuePeriodsResult{BilledUntil: from}
	for start := from; res.Periods < maxPeriodsPerRun; {
		// Periods end on aligned boundaries. A cursor off the boundaries (the period setting
		// changed) first gets a shorter period up to the next boundary, so no period is charged
		// before it has ended and none overlaps one charged under the old setting.
		end := PeriodStart(start, period).Add(period)
		if end.After(until) {
			break
		}
		usage, err := a.Store.UsageBetween(ctx, start, end)
		if err != nil {
			return res, err
		}
		written, err := a.Store.RecordCharges(ctx, ChargesFor(usage, start, end))
		if err != nil {
			return res, fmt.Errorf("charge the period from %s: %w", start.Format(time.RFC3339), err)
		}
		if err := a.Store.AdvanceBilledUntil(ctx, end); err != nil {
			return res, err
		}
		res.Periods++
		res.Charges += written
		res.BilledUntil = end
		start = end
		if activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, res.BilledUntil)
		}
	}
	return res, nil
}

// WalletStandingsResult names the organizations to suspend and to resume.
type WalletStandingsResult struct {
	Suspend []string
	Resume  []string
}

// WalletStandingsInput is when the wallets were last charged up to.
type WalletStandingsInput struct {
	PaidUntil time.Time
}

// WalletStandings finds the organizations whose wallet cannot pay the next period of their
// running apps, and those whose wallet can again pay for their suspended apps. The usage of the
// apps to suspend ends at in.PaidUntil: nothing is charged after the last period paid.
func (a *Activities) WalletStandings(ctx context.Context, in WalletStandingsInput) (WalletStandingsResult, error) {
	suspend, err := a.Store.OrgsToSuspend(ctx, a.period())
	if err != nil {
		return WalletStandingsResult{}, err
	}
	for _, s := range suspend {
		if err := a.Store.EndUsageForSuspension(ctx, s.OrgID, in.PaidUntil); err != nil {
			return WalletStandingsResult{}, err
		}
	}
	resume, err := a.Store.OrgsToResume(ctx, a.period())
	if err != nil {
		return WalletStandingsResult{}, err
	}
	var res WalletStandingsResult
	for _, s := range suspend {
		res.Suspend = append(res.Suspend, s.OrgID)
	}
	for _, r := range resume {
		res.Resume = append(res.Resume, r.OrgID)
	}
	return res, nil
}

// SettleAppInput names a deleted app and when it was deleted.
type SettleAppInput struct {
	AppID string
	Now   time.Time
}

// SettleApp charges a deleted app for the period it was deleted in, right away, with the same
// key the period's billing run uses: that run then finds it charged (its usage ended at the
// deletion, so the amounts agree). Earlier periods not billed yet are charged by the runs.
func (a *Activities) SettleApp(ctx context.Context, in SettleAppInput) (int, error) {
	period := a.period()
	start := PeriodStart(in.Now, period)
	usage, err := a.Store.AppUsageBetween(ctx, in.AppID, start, start.Add(period))
	if err != nil {
		return 0, err
	}
	for _, u := range usage {
		if u.EndedAt == nil {
			return 0, fmt.Errorf("app %s still has open usage: settle it once it is deleted", in.AppID)
		}
	}
	return a.Store.RecordCharges(ctx, ChargesFor(usage, start, start.Add(period)))
}
