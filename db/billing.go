package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// AppSuspended: the organization's wallet cannot pay for the app; its instances are stopped
// and nginx answers 402 until funds are added.
const AppSuspended = "suspended"

// Ledger entry kinds.
const (
	LedgerCredit = "credit"
	LedgerCharge = "charge"
)

// Wallet is an organization's prepaid balance, in minor units of Currency.
type Wallet struct {
	OrgID    string
	Balance  int64
	Currency string
}

// Billing subjects: what a usage segment or a charge is of.
const (
	SubjectApp      = "app"
	SubjectDatabase = "database"
)

// LedgerEntry is one credit or charge.
type LedgerEntry struct {
	ID              int64
	Kind            string
	Amount          int64
	Currency        string
	AppID           *string
	AppName         *string
	DatabaseID      *string // a database's charge
	DatabaseName    *string
	PeriodStart     *time.Time
	PeriodEnd       *time.Time
	InstanceSeconds *float64
	PricePerHour    *int64
	Reference       *string
	Description     string
	CreatedAt       time.Time
}

// UsageSegment is a stretch of time an app ran with a fixed instance count and price, or a
// database was available (one instance, its plan's price).
type UsageSegment struct {
	Subject      string // SubjectApp ("" reads as an app) or SubjectDatabase
	AppID        string
	OrgID        string
	AppName      string
	DatabaseID   string
	DatabaseName string
	Instances    int
	PricePerHour int64
	StartedAt    time.Time
	EndedAt      *time.Time // nil: still running
}

// SubjectKey names the segment's subject uniquely across apps and databases.
func (u UsageSegment) SubjectKey() string {
	if u.Subject == SubjectDatabase {
		return SubjectDatabase + ":" + u.DatabaseID
	}
	return SubjectApp + ":" + u.AppID
}

// Charge is what an app or a database owes for one period; Key makes it happen once.
type Charge struct {
	Subject         string // SubjectApp ("" reads as an app) or SubjectDatabase
	OrgID           string
	AppID           string
	AppName         string
	DatabaseID      string
	DatabaseName    string
	PeriodStart     time.Time
	PeriodEnd       time.Time
	InstanceSeconds float64
	PricePerHour    int64
	Amount          int64
}

// ChargeKey is a charge's idempotency key: one charge per app and period, however often a
// billing run is retried or repeated.
func ChargeKey(appID string, periodStart time.Time) string {
	return "charge:" + appID + ":" + periodStart.UTC().Format(time.RFC3339Nano)
}

// DatabaseChargeKey is a database's charge idempotency key: one charge per database and period.
// Its "database:" part keeps it apart from every app's key (an app id is a UUID).
func DatabaseChargeKey(databaseID string, periodStart time.Time) string {
	return "charge:" + SubjectDatabase + ":" + databaseID + ":" + periodStart.UTC().Format(time.RFC3339Nano)
}

// Key is the charge's idempotency key: ChargeKey for an app (the form every app charge has
// always had), DatabaseChargeKey for a database.
func (c Charge) Key() string {
	if c.Subject == SubjectDatabase {
		return DatabaseChargeKey(c.DatabaseID, c.PeriodStart)
	}
	return ChargeKey(c.AppID, c.PeriodStart)
}

func creditKey(orgID, reference string) string { return "credit:" + orgID + ":" + reference }

// syncUsage makes the app's open usage segment match what it runs now, in tx: running (not
// suspended, not stopped) with N instances at the plan's price. Call it in every transaction
// that changes the app's status, instance count or plan-in-effect; time is the transaction's.
func syncUsage(ctx context.Context, tx pgx.Tx, appID string) error {
	var status, name, orgID string
	var instances int
	var price int64
	err := tx.QueryRow(ctx, `SELECT a.status, a.name, a.org_id, a.instances, p.price_per_hour_minor
		FROM applications a JOIN plans p ON p.id = coalesce(a.running_plan_id, a.plan_id) WHERE a.id = $1`, appID).Scan(&status, &name, &orgID, &instances, &price)
	gone := errors.Is(err, pgx.ErrNoRows)
	if err != nil && !gone {
		return fmt.Errorf("read app %s for usage: %w", appID, err)
	}
	running := !gone && status == AppRunning
	var openID int64
	var openInstances int
	var openPrice int64
	err = tx.QueryRow(ctx, `SELECT id, instances, price_per_hour FROM usage_segments WHERE app_id = $1 AND ended_at IS NULL FOR UPDATE`, appID).
		Scan(&openID, &openInstances, &openPrice)
	hasOpen := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("read usage of app %s: %w", appID, err)
	}
	if hasOpen && running && openInstances == instances && openPrice == price {
		return nil
	}
	if hasOpen {
		if _, err := tx.Exec(ctx, `UPDATE usage_segments SET ended_at = now() WHERE id = $1`, openID); err != nil {
			return fmt.Errorf("close usage of app %s: %w", appID, err)
		}
	}
	if !running {
		return nil
	}
	_, err = tx.Exec(ctx, `INSERT INTO usage_segments (app_id, org_id, app_name, instances, price_per_hour, currency, started_at)
		VALUES ($1, $2, $3, $4, $5, (SELECT currency FROM wallets WHERE org_id = $2), now())`, appID, orgID, name, instances, price)
	if err != nil {
		return fmt.Errorf("open usage of app %s: %w", appID, err)
	}
	return nil
}

// UsageBetween returns the usage segments that overlap [from, to).
func (s *Store) UsageBetween(ctx context.Context, from, to time.Time) ([]UsageSegment, error) {
	return s.usageBetween(ctx, "", from, to)
}

// AppUsageBetween returns one app's usage segments that overlap [from, to).
func (s *Store) AppUsageBetween(ctx context.Context, appID string, from, to time.Time) ([]UsageSegment, error) {
	return s.usageBetween(ctx, appID, from, to)
}

// usageBetween is UsageBetween, for one app when appID is set.
func (s *Store) usageBetween(ctx context.Context, appID string, from, to time.Time) ([]UsageSegment, error) {
	rows, err := s.pool.Query(ctx, `SELECT subject_kind, coalesce(app_id::text, ''), org_id::text, coalesce(app_name, ''),
			coalesce(database_id::text, ''), coalesce(database_name, ''), instances, price_per_hour, started_at, ended_at
		FROM usage_segments WHERE ($3 = '' OR app_id::text = $3) AND started_at < $2 AND (ended_at IS NULL OR ended_at > $1)`, from, to, appID)
	if err != nil {
		return nil, fmt.Errorf("usage between %s and %s: %w", from, to, err)
	}
	return collect(rows, func(row pgx.Row) (UsageSegment, error) {
		var u UsageSegment
		err := row.Scan(&u.Subject, &u.AppID, &u.OrgID, &u.AppName, &u.DatabaseID, &u.DatabaseName, &u.Instances, &u.PricePerHour, &u.StartedAt, &u.EndedAt)
		return u, err
	})
}

// RecordCharges writes the charges in one transaction, each at most once (by Charge.Key), and
// lowers each wallet by what was newly charged. It returns how many entries it wrote: a retry
// of a run that already committed writes none.
func (s *Store) RecordCharges(ctx context.Context, charges []Charge) (int, error) {
	if len(charges) == 0 {
		return 0, nil
	}
	orgs := make([]string, len(charges))
	apps := make([]string, len(charges))
	names := make([]string, len(charges))
	databases := make([]string, len(charges))
	databaseNames := make([]string, len(charges))
	starts := make([]time.Time, len(charges))
	ends := make([]time.Time, len(charges))
	seconds := make([]float64, len(charges))
	prices := make([]int64, len(charges))
	amounts := make([]int64, len(charges))
	keys := make([]string, len(charges))
	for i, c := range charges {
		if c.Amount <= 0 {
			return 0, fmt.Errorf("charge %s: amount %d is not positive", c.Key(), c.Amount)
		}
		if c.Subject == SubjectDatabase {
			databases[i], databaseNames[i] = c.DatabaseID, c.DatabaseName
		} else {
			apps[i], names[i] = c.AppID, c.AppName
		}
		orgs[i], starts[i], ends[i] = c.OrgID, c.PeriodStart, c.PeriodEnd
		seconds[i], prices[i], amounts[i], keys[i] = c.InstanceSeconds, c.PricePerHour, c.Amount, c.Key()
	}
	var written int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Concurrent runs insert the same keys: the second waits for the first's commit, then
		// skips them, so only the first lowers the wallets.
		return tx.QueryRow(ctx, `WITH c AS (
				SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::float8[], $7::bigint[], $8::bigint[], $9::text[],
					$10::text[], $11::text[])
					AS c(org_id, app_id, app_name, period_start, period_end, instance_seconds, price, amount, key, database_id, database_name)),
			inserted AS (
				INSERT INTO ledger_entries (org_id, kind, amount, currency, idempotency_key, app_id, app_name, database_id, database_name,
					period_start, period_end, instance_seconds, price_per_hour, description)
				SELECT c.org_id, 'charge', c.amount, w.currency, c.key, nullif(c.app_id, '')::uuid, nullif(c.app_name, ''),
					nullif(c.database_id, '')::uuid, nullif(c.database_name, ''), c.period_start, c.period_end,
					c.instance_seconds, c.price,
					CASE WHEN c.database_id <> '' THEN 'database ' || c.database_name || ': ' || round(c.instance_seconds::numeric, 1) || ' seconds at ' || c.price || '/h'
						ELSE c.app_name || ': ' || round(c.instance_seconds::numeric, 1) || ' instance-seconds at ' || c.price || '/h' END
				FROM c JOIN wallets w ON w.org_id = c.org_id
				ON CONFLICT (idempotency_key) DO NOTHING
				RETURNING org_id, amount),
			totals AS (SELECT org_id, sum(amount) AS total, count(*) AS n FROM inserted GROUP BY org_id),
			updated AS (
				UPDATE wallets w SET balance = w.balance - t.total, updated_at = now() FROM totals t WHERE w.org_id = t.org_id RETURNING t.n)
			SELECT COALESCE(sum(n), 0) FROM updated`,
			orgs, apps, names, starts, ends, seconds, prices, amounts, keys, databases, databaseNames).Scan(&written)
	})
	return written, translate(err)
}

// ensureWallet creates the organization's wallet in currency if it has none.
func ensureWallet(ctx context.Context, tx pgx.Tx, orgID, currency string) error {
	_, err := tx.Exec(ctx, `INSERT INTO wallets (org_id, currency) VALUES ($1, $2) ON CONFLICT (org_id) DO NOTHING`, orgID, currency)
	return err
}

// GetWallet returns the organization's wallet.
func (s *Store) GetWallet(ctx context.Context, orgID string) (Wallet, error) {
	w := Wallet{OrgID: orgID}
	err := s.pool.QueryRow(ctx, `SELECT balance, currency FROM wallets WHERE org_id::text = $1`, orgID).Scan(&w.Balance, &w.Currency)
	return w, translate(err)
}

// LedgerBalance is the balance derived from the ledger alone (what the wallet's cached balance
// must equal).
func (s *Store) LedgerBalance(ctx context.Context, orgID string) (int64, error) {
	var balance int64
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(sum(CASE WHEN kind = 'credit' THEN amount ELSE -amount END), 0)
		FROM ledger_entries WHERE org_id = $1`, orgID).Scan(&balance)
	return balance, translate(err)
}

// Credit adds amount to the organization's wallet once per reference: the same reference again
// returns the first entry and created=false. ErrNotFound for an unknown organization.
func (s *Store) Credit(ctx context.Context, orgID string, amount int64, reference string) (LedgerEntry, bool, error) {
	if amount <= 0 {
		return LedgerEntry{}, false, fmt.Errorf("credit amount %d is not positive", amount)
	}
	var id int64
	created := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var currency string
		if err := tx.QueryRow(ctx, `SELECT currency FROM wallets WHERE org_id::text = $1 FOR UPDATE`, orgID).Scan(&currency); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `INSERT INTO ledger_entries (org_id, kind, amount, currency, idempotency_key, reference, description)
			VALUES ($1, 'credit', $2, $3, $4, $5, 'Credit: ' || $5) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id`,
			orgID, amount, currency, creditKey(orgID, reference), reference).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return tx.QueryRow(ctx, `SELECT id FROM ledger_entries WHERE idempotency_key = $1`, creditKey(orgID, reference)).Scan(&id)
		}
		if err != nil {
			return err
		}
		created = true
		_, err = tx.Exec(ctx, `UPDATE wallets SET balance = balance + $2, updated_at = now() WHERE org_id = $1`, orgID, amount)
		return err
	})
	if err != nil {
		return LedgerEntry{}, false, translate(err)
	}
	entry, err := s.ledgerEntry(ctx, id)
	return entry, created, err
}

const ledgerColumns = `id, kind, amount, currency, app_id::text, app_name, database_id::text, database_name, period_start, period_end,
	instance_seconds::float8, price_per_hour, reference, description, created_at`

func scanLedger(row pgx.Row) (LedgerEntry, error) {
	var e LedgerEntry
	err := row.Scan(&e.ID, &e.Kind, &e.Amount, &e.Currency, &e.AppID, &e.AppName, &e.DatabaseID, &e.DatabaseName, &e.PeriodStart, &e.PeriodEnd, &e.InstanceSeconds,
		&e.PricePerHour, &e.Reference, &e.Description, &e.CreatedAt)
	return e, translate(err)
}

func (s *Store) ledgerEntry(ctx context.Context, id int64) (LedgerEntry, error) {
	return scanLedger(s.pool.QueryRow(ctx, `SELECT `+ledgerColumns+` FROM ledger_entries WHERE id = $1`, id))
}

// ListLedger pages through an organization's entries, newest first: limit entries with ids
// below before (0: from the newest).
func (s *Store) ListLedger(ctx context.Context, orgID string, before int64, limit int) ([]LedgerEntry, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+ledgerColumns+` FROM ledger_entries
		WHERE org_id::text = $1 AND ($2 = 0 OR id < $2) ORDER BY id DESC LIMIT $3`, orgID, before, limit)
	if err != nil {
		return nil, fmt.Errorf("list ledger: %w", err)
	}
	return collect(rows, scanLedger)
}

// BilledUntil is the end of the last period charged (zero before the first run).
func (s *Store) BilledUntil(ctx context.Context) (time.Time, error) {
	var t time.Time
	err := s.pool.QueryRow(ctx, `SELECT billed_until FROM billing_cursor`).Scan(&t)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, nil
	}
	return t, translate(err)
}

// AdvanceBilledUntil moves the cursor forward to t (never back: runs may overlap).
func (s *Store) AdvanceBilledUntil(ctx context.Context, t time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO billing_cursor (billed_until) VALUES ($1)
		ON CONFLICT (id) DO UPDATE SET billed_until = GREATEST(billing_cursor.billed_until, EXCLUDED.billed_until)`, t)
	return translate(err)
}

// EarliestUsage is the start of the oldest usage segment (zero when there is none): where
// billing starts when it has never run.
func (s *Store) EarliestUsage(ctx context.Context) (time.Time, error) {
	var t *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT min(started_at) FROM usage_segments`).Scan(&t); err != nil {
		return time.Time{}, translate(err)
	}
	if t == nil {
		return time.Time{}, nil
	}
	return *t, nil
}

// WalletStanding is an organization whose wallet does not cover the next period of its running
// apps and available databases (to suspend), or covers it for its suspended ones (to resume).
type WalletStanding struct {
	OrgID    string
	Balance  int64
	NextCost int64
}

// OrgsToSuspend lists organizations with running apps or available databases whose wallet
// cannot pay one more period of them (period seconds; the cost of a period is rounded as
// charges are).
func (s *Store) OrgsToSuspend(ctx context.Context, period time.Duration) ([]WalletStanding, error) {
	return s.standings(ctx, `a.status = 'running'`, `d.status = 'available'`, `w.balance < c.cost`, period, "")
}

// OrgsToResume lists organizations with suspended apps or databases whose wallet now pays one
// period of them.
func (s *Store) OrgsToResume(ctx context.Context, period time.Duration) ([]WalletStanding, error) {
	return s.standings(ctx, resumableApps, resumableDatabases, `w.balance >= c.cost`, period, "")
}

// CanResume tells whether the organization has suspended apps or databases its wallet now pays
// one period of.
func (s *Store) CanResume(ctx context.Context, orgID string, period time.Duration) (bool, error) {
	standings, err := s.standings(ctx, resumableApps, resumableDatabases, `w.balance >= c.cost`, period, orgID)
	return len(standings) > 0, err
}

// resumableApps are suspended apps with no operation queued or running (a resumption already
// under way is not asked for twice).
const resumableApps = `a.status = 'suspended' AND NOT EXISTS (
	SELECT 1 FROM app_operations o WHERE o.app_id = a.id AND o.status IN ('queued', 'running'))`

// resumableDatabases are suspended databases with no operation queued or running.
const resumableDatabases = `d.status = 'suspended' AND NOT EXISTS (
	SELECT 1 FROM database_operations o WHERE o.database_id = d.id AND o.status IN ('queued', 'running'))`

// standings lists the organizations (only orgID, when set) whose apps matching appFilter and
// databases matching databaseFilter cost, for one period, what walletFilter asks of their
// balance.
func (s *Store) standings(ctx context.Context, appFilter, databaseFilter, walletFilter string, period time.Duration, orgID string) ([]WalletStanding, error) {
	rows, err := s.pool.Query(ctx, `WITH subjects AS (
			SELECT a.org_id, round(p.price_per_hour_minor::numeric * a.instances * $1 / 3600) AS cost
			FROM applications a JOIN plans p ON p.id = coalesce(a.running_plan_id, a.plan_id) WHERE (`+appFilter+`) AND ($2 = '' OR a.org_id::text = $2)
			UNION ALL
			SELECT d.org_id, round(dp.price_per_hour_minor::numeric * $1 / 3600)
			FROM databases d JOIN database_plans dp ON dp.id = d.plan_id WHERE (`+databaseFilter+`) AND ($2 = '' OR d.org_id::text = $2)),
		c AS (SELECT org_id, sum(cost) AS cost FROM subjects GROUP BY org_id)
		SELECT w.org_id::text, w.balance, c.cost::bigint FROM c JOIN wallets w ON w.org_id = c.org_id WHERE `+walletFilter+`
		ORDER BY w.org_id`, period.Seconds(), orgID)
	if err != nil {
		return nil, fmt.Errorf("wallet standings: %w", err)
	}
	return collect(rows, func(row pgx.Row) (WalletStanding, error) {
		var w WalletStanding
		err := row.Scan(&w.OrgID, &w.Balance, &w.NextCost)
		return w, err
	})
}

// AppsWithStatus lists the ids of an organization's apps in status (running, suspended).
func (s *Store) AppsWithStatus(ctx context.Context, orgID, status string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id::text FROM applications WHERE org_id::text = $1 AND status = $2 ORDER BY created_at`, orgID, status)
	if err != nil {
		return nil, fmt.Errorf("list %s apps: %w", status, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// SetAppSuspended records that the app serves a 402 page because its wallet cannot pay; its
// usage stops now.
func (s *Store) SetAppSuspended(ctx context.Context, appID string) error {
	return translate(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE applications SET status = 'suspended', current_instance = '', updated_at = now() WHERE id = $1`, appID); err != nil {
			return err
		}
		return syncUsage(ctx, tx, appID)
	}))
}

// EndUsageForSuspension ends the usage of an organization's running apps and available
// databases at paidUntil (the end of the last period charged), when billing decides to suspend
// them: the minutes the suspension itself takes are not charged, so a wallet that paid up to
// paidUntil owes nothing more.
func (s *Store) EndUsageForSuspension(ctx context.Context, orgID string, paidUntil time.Time) error {
	return translate(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE usage_segments u SET ended_at = GREATEST(u.started_at, $2)
			FROM applications a WHERE u.app_id = a.id AND a.org_id::text = $1 AND a.status = 'running' AND u.ended_at IS NULL`, orgID, paidUntil); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE usage_segments u SET ended_at = GREATEST(u.started_at, $2)
			FROM databases d WHERE u.database_id = d.id AND d.org_id::text = $1 AND d.status = 'available' AND u.ended_at IS NULL`, orgID, paidUntil)
		return err
	}))
}

// Funds is an organization's wallet against one billing period: of the apps that run (or are
// being deployed) and the databases that run (or are being provisioned), and of what a request
// would add.
type Funds struct {
	Balance     int64
	RunningCost int64 // one period of the running apps and databases, rounded as charges are
	RequestCost int64 // one period of what the request adds
	Currency    string
}

// Enough tells whether the wallet pays one period of the running apps plus the request.
func (f Funds) Enough() bool { return f.Balance >= f.RunningCost+f.RequestCost }

// CheckFunds reads the organization's funds for one period (its running apps and databases)
// when a request would add addedPerHour (price per instance-hour times instances, or a
// database plan's price) to what it runs. An app being
// changed is counted once: exclude names it (its own cost is in addedPerHour), or "".
func (s *Store) CheckFunds(ctx context.Context, orgID string, addedPerHour int64, period time.Duration, exclude string) (Funds, error) {
	var f Funds
	err := s.pool.QueryRow(ctx, `SELECT w.balance, w.currency,
			coalesce((SELECT sum(round(p.price_per_hour_minor::numeric * a.instances * $2 / 3600))
				FROM applications a JOIN plans p ON p.id = coalesce(a.running_plan_id, a.plan_id)
				WHERE a.org_id = w.org_id AND a.status IN ('running', 'deploying') AND a.id::text <> $4), 0)::bigint
			+ coalesce((SELECT sum(round(dp.price_per_hour_minor::numeric * $2 / 3600))
				FROM databases d JOIN database_plans dp ON dp.id = d.plan_id
				WHERE d.org_id = w.org_id AND d.status IN ('provisioning', 'available', 'deleting')), 0)::bigint,
			round($3::numeric * $2 / 3600)::bigint
		FROM wallets w WHERE w.org_id::text = $1`, orgID, period.Seconds(), addedPerHour, exclude).
		Scan(&f.Balance, &f.Currency, &f.RunningCost, &f.RequestCost)
	if err != nil {
		return Funds{}, fmt.Errorf("check funds: %w", translate(err))
	}
	return f, nil
}

// AppPricing is what an app costs per instance-hour, with its state and instance count.
type AppPricing struct {
	Status            string
	Instances         int
	PricePerHourMinor int64
}

// GetAppPricing reads the app's plan price, status and instances (the organization's only).
func (s *Store) GetAppPricing(ctx context.Context, orgID, appID string) (AppPricing, error) {
	var p AppPricing
	err := s.pool.QueryRow(ctx, `SELECT a.status, a.instances, pl.price_per_hour_minor
		FROM applications a JOIN plans pl ON pl.id = a.plan_id
		WHERE a.id::text = $1 AND a.org_id::text = $2`, appID, orgID).Scan(&p.Status, &p.Instances, &p.PricePerHourMinor)
	return p, translate(err)
}
