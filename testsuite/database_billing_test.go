package testsuite

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

// databaseCharge is a database's ledger entry as GET /wallet/transactions answers.
type databaseCharge struct {
	Kind            string     `json:"kind"`
	Amount          int64      `json:"amount"`
	AppID           *string    `json:"app_id"`
	DatabaseID      *string    `json:"database_id"`
	DatabaseName    *string    `json:"database_name"`
	PeriodStart     *time.Time `json:"period_start"`
	PeriodEnd       *time.Time `json:"period_end"`
	InstanceSeconds *float64   `json:"instance_seconds"`
	Description     string     `json:"description"`
}

// databaseCharges reads the organization's charges of databaseID, every page.
func (c customer) databaseCharges(t testing.TB, databaseID string) []databaseCharge {
	t.Helper()
	var mine []databaseCharge
	before := int64(0)
	for {
		var page struct {
			Items []struct {
				ID int64 `json:"id"`
				databaseCharge
			} `json:"items"`
			NextBefore int64 `json:"next_before"`
		}
		path := fmt.Sprintf("/api/paas/wallet/transactions?limit=50&before=%d", before)
		if status, raw := platform.call(http.MethodGet, path, c.token, nil, &page); status != http.StatusOK {
			t.Fatalf("transactions: %d %s", status, raw)
		}
		for _, e := range page.Items {
			if e.Kind == "charge" && e.DatabaseID != nil && *e.DatabaseID == databaseID {
				mine = append(mine, e.databaseCharge)
			}
		}
		if page.NextBefore == 0 {
			return mine
		}
		before = page.NextBefore
	}
}

// psqlIn runs sql in the PostgreSQL database's own container and returns its output.
func psqlIn(t testing.TB, host, sql string) string {
	t.Helper()
	out, err := exec.Command("docker", "exec", host, "sh", "-c", `exec psql -v ON_ERROR_STOP=1 -Atq -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c "$0"`, sql).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v\n%s", sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestADatabaseIsChargedThenStoppedWithItsDataAndStartedAgainOnCredit: a PostgreSQL database on
// a pricey plan is refused (402) on an empty wallet; credited, it is created and charged in the
// ledger, once per period, each charge naming it; when the wallet runs dry its container is
// stopped (not removed: the container and its volume stay), its status is suspended and what
// needs its engine is refused; a credit starts it again by itself, healthy, with its rows.
func TestADatabaseIsChargedThenStoppedWithItsDataAndStartedAgainOnCredit(t *testing.T) {
	t.Parallel()
	owner := newCustomer(t, uniqueName("dbpayer")+"@example.com")
	slug := uniqueName("dbmetered")
	// 3,000 a period of the stack's 3 s, as the pricey app plans of the billing tests.
	if status, raw := platform.call(http.MethodPost, "/api/paas/admin/database-plans", platform.adminToken, map[string]any{
		"slug": slug, "name": "Metered database", "cpu_millis": 500, "memory_mb": 256, "storage_mb": 1024, "price_per_hour_minor": pricePerHour,
	}, nil); status != http.StatusCreated {
		t.Fatalf("create database plan: %d %s", status, raw)
	}
	name := uniqueName("ledgerdb")
	request := map[string]string{"name": name, "engine": "postgresql", "plan": slug, "region": "local"}
	if status, raw := platform.call(http.MethodPost, "/api/paas/databases", owner.token, request, nil); status != http.StatusPaymentRequired {
		t.Fatalf("a database an empty wallet cannot pay for: %d %s, want 402", status, raw)
	}
	if list := owner.listDatabases(t); len(list) != 0 {
		t.Fatalf("the refused request created %+v", list)
	}

	// Five periods: enough to be created, written to and charged, then to run dry.
	if status, raw := credit(t, owner.orgID, 15000, "topup-"+slug); status != http.StatusCreated {
		t.Fatalf("credit: %d %s", status, raw)
	}
	var out struct {
		Database managedDatabase `json:"database"`
	}
	if status, raw := platform.call(http.MethodPost, "/api/paas/databases", owner.token, request, &out); status != http.StatusAccepted {
		t.Fatalf("create database: %d %s", status, raw)
	}
	id := out.Database.ID
	t.Cleanup(func() {
		// Without a final backup: the wallet may have run dry again, and a suspended database
		// takes none.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		for ctx.Err() == nil {
			status, raw := platform.call(http.MethodDelete, "/api/paas/databases/"+id+"?final_backup=false", owner.token, nil, nil)
			if status == http.StatusNotFound {
				return
			}
			if status != http.StatusAccepted && status != http.StatusConflict {
				t.Errorf("delete database %s: %d %s", id, status, raw)
				return
			}
			time.Sleep(300 * time.Millisecond)
		}
		t.Errorf("database %s is still there", id)
	})
	var pg managedDatabase
	eventually(t, 4*time.Minute, "the database is available", func() (bool, string) {
		pg = owner.getDatabase(t, id)
		if pg.Status == "failed" {
			t.Fatalf("the database failed: %s", pg.StatusReason)
		}
		return pg.Status == "available", pg.Status
	})
	psqlIn(t, pg.Host, `CREATE TABLE kept (v text); INSERT INTO kept VALUES ('alpha'), ('beta'), ('gamma')`)

	eventually(t, 90*time.Second, "the database is suspended once the wallet runs dry", func() (bool, string) {
		pg = owner.getDatabase(t, id)
		return pg.Status == "suspended", pg.Status + " " + pg.StatusReason
	})
	// The suspension is an operation in the database's queue, asked for by billing; it ends
	// once the database is recorded suspended (a credit meanwhile is for the next billing run).
	eventually(t, 30*time.Second, "the suspension's operation has ended", func() (bool, string) {
		ops := owner.databaseOperations(t, id)
		if len(ops) == 0 {
			return false, "no operation"
		}
		latest := ops[0]
		return latest.Kind == "suspend" && latest.Status == "succeeded", fmt.Sprintf("%+v", latest)
	})
	info, err := platform.docker.ContainerInspect(context.Background(), pg.Host)
	if err != nil {
		t.Fatalf("the suspended database's container: %v (stopped, never removed)", err)
	}
	if info.State.Running {
		t.Errorf("the suspended database's container is %s, want stopped", info.State.Status)
	}
	if _, err := platform.docker.VolumeInspect(context.Background(), "skypanel-db-"+id); errdefs.IsNotFound(err) || err != nil {
		t.Errorf("the suspended database's volume: %v, want it kept", err)
	}
	if status, raw := platform.call(http.MethodPost, "/api/paas/databases/"+id+"/backup", owner.token, nil, nil); status != http.StatusConflict || !strings.Contains(string(raw), "suspended") {
		t.Errorf("a backup of a suspended database: %d %s, want 409 saying it is suspended", status, raw)
	}

	// The ledger: charges naming the database, one per period, each prorated; the wallet is
	// the credit minus them and cannot pay one more period.
	charges := owner.databaseCharges(t, id)
	if len(charges) == 0 {
		t.Fatal("the database was never charged")
	}
	seen := map[time.Time]bool{}
	var charged int64
	for _, c := range charges {
		if c.DatabaseName == nil || *c.DatabaseName != name || c.AppID != nil || c.PeriodStart == nil || c.PeriodEnd == nil || c.InstanceSeconds == nil {
			t.Fatalf("charge %+v does not name the database, its period and its seconds", c)
		}
		if seen[c.PeriodStart.UTC()] {
			t.Errorf("the database is charged twice for the period from %s", c.PeriodStart)
		}
		seen[c.PeriodStart.UTC()] = true
		if period := c.PeriodEnd.Sub(*c.PeriodStart); period != billingPeriod {
			t.Errorf("charge for a period of %s, want %s", period, billingPeriod)
		}
		if want := int64(math.Floor(*c.InstanceSeconds*pricePerHour/3600 + 0.5)); c.Amount != want || *c.InstanceSeconds > billingPeriod.Seconds() {
			t.Errorf("charge of %d for %.3f seconds, want %d", c.Amount, *c.InstanceSeconds, want)
		}
		charged += c.Amount
	}
	if w := owner.wallet(t); w.Balance != 15000-charged || w.Balance >= 3000 {
		t.Errorf("balance %d after %d charged of 15000, want 15000-%d and less than one period (3000)", w.Balance, charged, charged)
	}

	// A credit starts it again by itself: the same container, healthy, with its rows.
	var topUp struct {
		Resuming string `json:"resuming_workflow_id"`
	}
	if status, raw := platform.call(http.MethodPost, "/api/paas/admin/organizations/"+owner.orgID+"/wallet/credit", platform.adminToken,
		map[string]any{"amount": 60000, "reference": "topup-2-" + slug}, &topUp); status != http.StatusCreated || topUp.Resuming == "" {
		t.Fatalf("second credit: %d %s, want 201 naming the resuming workflow", status, raw)
	}
	resumedAt := time.Now()
	eventually(t, 3*time.Minute, "the database is available again", func() (bool, string) {
		pg = owner.getDatabase(t, id)
		return pg.Status == "available", pg.Status + " " + pg.StatusReason
	})
	again, err := platform.docker.ContainerInspect(context.Background(), pg.Host)
	if err != nil || !again.State.Running || again.ID != info.ID {
		t.Errorf("after the credit the container is %v (running %v, id %s; before %s)", err, again.State != nil && again.State.Running, again.ID, info.ID)
	}
	if got := psqlIn(t, pg.Host, `SELECT string_agg(v, ',' ORDER BY v) FROM kept`); got != "alpha,beta,gamma" {
		t.Errorf("after the resume the database holds %q, want the rows written before the suspension", got)
	}
	// Its usage reopened: it is charged again for the periods after the resume.
	eventually(t, 30*time.Second, "a charge for a period after the resume", func() (bool, string) {
		for _, c := range owner.databaseCharges(t, id) {
			if c.PeriodEnd.After(resumedAt) {
				return true, ""
			}
		}
		return false, "none yet"
	})
}
