package testsuite

import (
	"net/http"
	"strings"
	"testing"
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
