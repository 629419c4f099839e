package testsuite

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAdminManagesPlansRuntimesAndSeesNodes(t *testing.T) {
	admin := platform.adminToken
	slug := uniqueName("plan")
	var plan struct {
		ID                string `json:"id"`
		MemoryMB          int    `json:"memory_mb"`
		PricePerHourMinor int64  `json:"price_per_hour_minor"`
		BuildTimeout      int    `json:"build_timeout_seconds"`
		BuildDiskMB       int    `json:"build_disk_mb"`
	}
	fields := map[string]any{"slug": slug, "name": "Large", "cpu_millis": 2000, "memory_mb": 2048, "price_per_hour_minor": 8}
	if status, raw := platform.call(http.MethodPost, "/api/paas/admin/plans", admin, fields, &plan); status != http.StatusCreated {
		t.Fatalf("create plan: %d %s", status, raw)
	}
	if plan.BuildTimeout != 900 || plan.BuildDiskMB != 10240 {
		t.Errorf("a new plan's build limits: %d s, %d MiB; want the defaults 900 s, 10240 MiB", plan.BuildTimeout, plan.BuildDiskMB)
	}
	fields["memory_mb"], fields["price_per_hour_minor"], fields["build_disk_mb"] = 4096, 10, 2048
	if status, raw := platform.call(http.MethodPut, "/api/paas/admin/plans/"+plan.ID, admin, fields, &plan); status != http.StatusOK || plan.MemoryMB != 4096 || plan.PricePerHourMinor != 10 || plan.BuildDiskMB != 2048 {
		t.Fatalf("update plan: %d %s", status, raw)
	}
	bad := map[string]any{"slug": "Bad Slug", "name": "x", "cpu_millis": 0, "memory_mb": 1, "price_per_hour_minor": -1, "build_disk_mb": 1}
	status, raw := platform.call(http.MethodPost, "/api/paas/admin/plans", admin, bad, nil)
	if status != http.StatusUnprocessableEntity {
		t.Errorf("bad plan: %d %s", status, raw)
	}
	for _, field := range []string{"body.slug", "body.cpu_millis", "body.memory_mb", "body.price_per_hour_minor", "body.build_disk_mb"} {
		if !strings.Contains(string(raw), field) {
			t.Errorf("bad plan problem does not name %s: %s", field, raw)
		}
	}
	user := newCustomer(t, uniqueName("planuser")+"@example.com")
	app := map[string]string{"name": uniqueName("onplan"), "runtime": "dockerfile", "plan": slug, "git_url": "https://git.example.com/a.git"}
	var created application
	if status, raw := platform.call(http.MethodPost, "/api/paas/applications", user.token, app, &created); status != http.StatusCreated {
		t.Fatalf("app on the new plan: %d %s", status, raw)
	}
	if status, _ := platform.call(http.MethodDelete, "/api/paas/admin/plans/"+plan.ID, admin, nil, nil); status != http.StatusConflict {
		t.Errorf("deleting a plan an app uses: %d, want 409", status)
	}
	user.operation(t, created.ID, "delete")
	if status, raw := platform.call(http.MethodDelete, "/api/paas/admin/plans/"+plan.ID, admin, nil, nil); status != http.StatusNoContent {
		t.Errorf("delete plan: %d %s", status, raw)
	}

	rt := map[string]string{"slug": uniqueName("node"), "name": "Node.js 22", "kind": "node", "version": "22"}
	if status, raw := platform.call(http.MethodPost, "/api/paas/admin/runtimes", admin, rt, nil); status != http.StatusCreated {
		t.Errorf("create runtime: %d %s", status, raw)
	}

	var nodes struct {
		Items []struct {
			Name            string  `json:"name"`
			Region          string  `json:"region"`
			Status          string  `json:"status"`
			LastHeartbeatAt *string `json:"last_heartbeat_at"`
		}
	}
	platform.call(http.MethodGet, "/api/paas/admin/nodes", admin, nil, &nodes)
	found := false
	for _, n := range nodes.Items {
		if n.Name == "local" {
			found = n.Region == "local" && n.Status == "online" && n.LastHeartbeatAt != nil
		}
	}
	if !found {
		t.Errorf("node local not online with a heartbeat: %+v", nodes.Items)
	}

	customer := newCustomer(t, uniqueName("cust")+"@example.com")
	if status, _ := platform.call(http.MethodGet, "/api/paas/admin/nodes", customer.token, nil, nil); status != http.StatusForbidden {
		t.Errorf("customer on admin endpoint: %d", status)
	}
	if status, _ := platform.call(http.MethodGet, "/api/paas/plans", customer.token, nil, nil); status != http.StatusOK {
		t.Errorf("customer plans: %d", status)
	}
}

// An admin adds an engine version and a database plan; customers see them while they are
// active and cannot use them once deactivated; customers cannot reach the admin routes; bad
// fields are a 422 naming the field.
func TestAdminManagesTheDatabaseCatalogue(t *testing.T) {
	t.Parallel()
	admin := platform.adminToken
	customer := newCustomer(t, uniqueName("catalogue")+"@example.com")
	if status, _ := platform.call(http.MethodGet, "/api/paas/admin/database-engines", customer.token, nil, nil); status != http.StatusForbidden {
		t.Errorf("a customer lists the admin catalogue: %d, want 403", status)
	}

	type engineRow struct {
		ID             string            `json:"id,omitempty"`
		Engine         string            `json:"engine"`
		Version        string            `json:"version"`
		Image          string            `json:"image"`
		Port           int               `json:"port"`
		DataDir        string            `json:"data_dir"`
		RunUser        string            `json:"run_user,omitempty"`
		Env            map[string]string `json:"env,omitempty"`
		Command        []string          `json:"command,omitempty"`
		HealthCommand  []string          `json:"health_command"`
		DumpCommand    []string          `json:"dump_command"`
		RestoreCommand []string          `json:"restore_command"`
		CountCommand   []string          `json:"count_command"`
		ConnectionVars map[string]string `json:"connection_vars"`
		Active         *bool             `json:"active,omitempty"`
	}
	var engines struct{ Items []engineRow }
	if status, raw := platform.call(http.MethodGet, "/api/paas/admin/database-engines", admin, nil, &engines); status != http.StatusOK {
		t.Fatalf("list engines: %d %s", status, raw)
	}
	var pg engineRow
	for _, e := range engines.Items {
		if e.Engine == "postgresql" && e.Version == "15" {
			pg = e
		}
	}
	if pg.ID == "" || len(pg.DumpCommand) == 0 || pg.ConnectionVars["DATABASE_URL"] == "" {
		t.Fatalf("the admin catalogue lacks postgresql 15 with its commands: %+v", engines.Items)
	}

	// A version that sorts below every real one, so a parallel test that omits the version
	// never gets it.
	version := fmt.Sprintf("0.%d", time.Now().UnixNano()%1_000_000_000)
	row := pg
	row.ID, row.Version = "", version
	var created engineRow
	if status, raw := platform.call(http.MethodPost, "/api/paas/admin/database-engines", admin, row, &created); status != http.StatusCreated || created.ID == "" {
		t.Fatalf("create engine: %d %s", status, raw)
	}
	if status, _ := platform.call(http.MethodPost, "/api/paas/admin/database-engines", admin, row, nil); status != http.StatusConflict {
		t.Errorf("the same version again: %d, want 409", status)
	}
	offered := func() bool {
		var list struct {
			Items []struct{ Engine, Version string }
		}
		platform.call(http.MethodGet, "/api/paas/database-engines", customer.token, nil, &list)
		for _, e := range list.Items {
			if e.Engine == "postgresql" && e.Version == version {
				return true
			}
		}
		return false
	}
	if !offered() {
		t.Errorf("customers are not offered postgresql %s", version)
	}
	inactive := false
	row.Active = &inactive
	if status, raw := platform.call(http.MethodPut, "/api/paas/admin/database-engines/"+created.ID, admin, row, nil); status != http.StatusOK {
		t.Fatalf("deactivate: %d %s", status, raw)
	}
	if offered() {
		t.Errorf("customers are still offered the deactivated postgresql %s", version)
	}
	before := customer.listDatabases(t)
	status, raw := platform.call(http.MethodPost, "/api/paas/databases", customer.token,
		map[string]string{"name": "old", "engine": "postgresql", "version": version, "plan": "db-small", "region": "local"}, nil)
	if status != http.StatusUnprocessableEntity || !strings.Contains(string(raw), "body.version") {
		t.Errorf("a database on the deactivated version: %d %s, want 422 at body.version", status, raw)
	}
	if after := customer.listDatabases(t); len(after) != len(before) {
		t.Errorf("the refused database was stored: %+v", after)
	}

	bad := row
	bad.Env = map[string]string{"POSTGRES_PASSWORD": "{{secret}}"}
	if status, raw := platform.call(http.MethodPut, "/api/paas/admin/database-engines/"+created.ID, admin, bad, nil); status != http.StatusUnprocessableEntity || !strings.Contains(string(raw), "body.env.POSTGRES_PASSWORD") {
		t.Errorf("an unknown placeholder: %d %s, want 422 at body.env.POSTGRES_PASSWORD", status, raw)
	}

	slug := uniqueName("dbplan")
	plan := map[string]any{"slug": slug, "name": "Database Large", "cpu_millis": 2000, "memory_mb": 2048, "storage_mb": 20480, "price_per_hour_minor": 7}
	var createdPlan struct{ ID string }
	if status, raw := platform.call(http.MethodPost, "/api/paas/admin/database-plans", admin, plan, &createdPlan); status != http.StatusCreated {
		t.Fatalf("create database plan: %d %s", status, raw)
	}
	var plans struct{ Items []struct{ Slug string } }
	platform.call(http.MethodGet, "/api/paas/database-plans", customer.token, nil, &plans)
	if !slices.ContainsFunc(plans.Items, func(p struct{ Slug string }) bool { return p.Slug == slug }) {
		t.Errorf("customers do not see the plan %s: %+v", slug, plans.Items)
	}
	if status, raw := platform.call(http.MethodPost, "/api/paas/admin/database-plans", admin, map[string]any{"slug": "Bad Slug", "name": "x", "cpu_millis": 1, "memory_mb": 1, "storage_mb": 1}, nil); status != http.StatusUnprocessableEntity ||
		!strings.Contains(string(raw), "body.slug") || !strings.Contains(string(raw), "body.memory_mb") {
		t.Errorf("a bad plan: %d %s", status, raw)
	}
	if status, raw := platform.call(http.MethodDelete, "/api/paas/admin/database-plans/"+createdPlan.ID, admin, nil, nil); status != http.StatusNoContent {
		t.Errorf("delete an unused plan: %d %s", status, raw)
	}
}
