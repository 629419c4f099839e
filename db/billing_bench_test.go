package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/skypanel/skypanel/activities/control/billing"
)

// BenchmarkBillingRun10000Apps seeds 10,000 running apps (100 organizations of 100 apps, usage
// rows only: no containers) and times one billing run over them: the period's charges, then the
// wallet standings, as BillingRun executes them. It reports the run's seconds and the entries
// written, which must be exactly 10,000 (`make bench`).
func BenchmarkBillingRun10000Apps(b *testing.B) {
	ctx := context.Background()
	pool := testStore.Pool()
	const orgs, appsPerOrg = 100, 100
	period := time.Hour
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// Each iteration bills a new hour, far from any other test's.
		periodStart := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * period)
		if _, err := pool.Exec(ctx, `
			WITH o AS (INSERT INTO organizations (name) SELECT 'bench-' || g FROM generate_series(1, $1) g RETURNING id),
			w AS (INSERT INTO wallets (org_id, balance) SELECT id, 100000000 FROM o RETURNING org_id),
			a AS (
				INSERT INTO applications (org_id, name, runtime_id, plan_id, region_id, git_url, git_branch, status)
				SELECT w.org_id, 'bench-' || substr(md5(random()::text), 1, 16), rt.id, p.id, rg.id, 'https://example.com/x.git', 'main', 'running'
				FROM w CROSS JOIN generate_series(1, $2) g
				CROSS JOIN (SELECT id FROM runtimes WHERE slug = 'dockerfile') rt
				CROSS JOIN (SELECT id FROM plans WHERE slug = 'standard') p
				CROSS JOIN (SELECT id FROM regions WHERE slug = 'local') rg
				RETURNING id, org_id, name)
			INSERT INTO usage_segments (app_id, org_id, app_name, instances, price_per_hour, currency, started_at)
			SELECT id, org_id, name, 2, 100, 'USD', $3 FROM a`, orgs, appsPerOrg, periodStart.Add(-time.Minute)); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `INSERT INTO billing_cursor (billed_until) VALUES ($1)
			ON CONFLICT (id) DO UPDATE SET billed_until = EXCLUDED.billed_until`, periodStart); err != nil {
			b.Fatal(err)
		}
		acts := &billing.Activities{Store: testStore, Period: period}
		b.StartTimer()
		started := time.Now()
		res, err := acts.ChargeDuePeriods(ctx, billing.ChargeDuePeriodsInput{Now: periodStart.Add(period + time.Second)})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := acts.WalletStandings(ctx, billing.WalletStandingsInput{PaidUntil: res.BilledUntil}); err != nil {
			b.Fatal(err)
		}
		took := time.Since(started)
		b.StopTimer()
		if res.Periods != 1 || res.Charges != orgs*appsPerOrg {
			b.Fatalf("the run charged %d entries over %d periods, want exactly %d over 1", res.Charges, res.Periods, orgs*appsPerOrg)
		}
		b.ReportMetric(took.Seconds(), "run-s")
		b.ReportMetric(float64(res.Charges), "entries")
		// Close the seeded usage so the next iteration bills only its own apps.
		if _, err := pool.Exec(ctx, `UPDATE usage_segments SET ended_at = $1 WHERE ended_at IS NULL AND app_name LIKE 'bench-%'`, periodStart.Add(period)); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `UPDATE applications SET status = 'stopped' WHERE name LIKE 'bench-%'`); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
