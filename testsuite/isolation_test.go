package testsuite

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestCustomerCannotSeeOrTouchAnotherCustomersApp(t *testing.T) {
	owner, app, _, dep := liveHelloApp(t, "private", "private")
	intruder := newCustomer(t, uniqueName("intruder")+"@example.com")
	name := app.Name
	missing := "00000000-0000-4000-8000-000000000000"

	cases := []struct{ name, method, path string }{
		{"get", http.MethodGet, "/api/paas/applications/%s"},
		{"deploy", http.MethodPost, "/api/paas/applications/%s/deploy"},
		{"delete", http.MethodDelete, "/api/paas/applications/%s"},
		{"stop", http.MethodPost, "/api/paas/applications/%s/stop"},
		{"update", http.MethodPut, "/api/paas/applications/%s"},
		{"deployments", http.MethodGet, "/api/paas/applications/%s/deployments"},
		{"logs", http.MethodGet, "/api/paas/applications/%s/deployments/" + dep.ID + "/logs"},
		{"deployment", http.MethodGet, "/api/paas/applications/%s/deployments/" + dep.ID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body any
			if c.method == http.MethodPut {
				body = map[string]string{"git_branch": "main"}
			}
			status, raw := platform.call(c.method, strings.Replace(c.path, "%s", app.ID, 1), intruder.token, body, nil)
			missingStatus, missingRaw := platform.call(c.method, strings.Replace(c.path, "%s", missing, 1), intruder.token, body, nil)
			if status != http.StatusNotFound {
				t.Errorf("another customer's app: %d %s, want 404", status, raw)
			}
			if missingStatus != status || problemDetail(raw) != problemDetail(missingRaw) {
				t.Errorf("another customer's app answers differently from a missing one: %d %s vs %d %s", status, raw, missingStatus, missingRaw)
			}
		})
	}

	var list struct{ Items []application }
	if status, raw := platform.call(http.MethodGet, "/api/paas/applications", intruder.token, nil, &list); status != http.StatusOK {
		t.Fatalf("the intruder lists its apps: %d %s", status, raw)
	}
	if len(list.Items) != 0 {
		t.Errorf("intruder lists %d apps", len(list.Items))
	}
	if got := owner.getApp(t, app.ID); got.Status != "running" {
		t.Errorf("the owner's app after the intrusion attempts: %+v", got)
	}
	if status, body, _ := platform.throughNginx(name + ".apps.localhost"); status != http.StatusOK || body != "private" {
		t.Errorf("owner's app through nginx: %d %q", status, body)
	}
	if status, _ := platform.call(http.MethodPost, "/api/paas/admin/users", intruder.token, map[string]string{"email": "x@example.com", "name": "x"}, nil); status != http.StatusForbidden {
		t.Errorf("a customer creating users: %d, want 403", status)
	}
}

func problemDetail(raw []byte) string {
	var p struct{ Detail string }
	_ = json.Unmarshal(raw, &p)
	return p.Detail
}
