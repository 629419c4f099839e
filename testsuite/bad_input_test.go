package testsuite

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

type problem struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Errors []struct {
		Location string `json:"location"`
		Message  string `json:"message"`
	} `json:"errors"`
}

func TestBadInputIsRefusedWithTheFieldAtFaultAndChangesNothing(t *testing.T) {
	erin := newCustomer(t, uniqueName("erin")+"@example.com")
	good := map[string]string{
		"name": uniqueName("valid"), "runtime": "dockerfile", "plan": "starter", "region": "local",
		"git_url": "https://git.example.com/app.git", "git_branch": "main",
	}
	with := func(field, value string) map[string]string {
		m := map[string]string{}
		for k, v := range good {
			m[k] = v
		}
		m[field] = value
		return m
	}
	cases := []struct {
		name, field, value, location string
	}{
		{"upper-case name", "name", "MyApp", "body.name"},
		{"name with a dot", "name", "a.b", "body.name"},
		{"name starting with a dash", "name", "-app", "body.name"},
		{"name with shell", "name", "x;rm -rf /", "body.name"},
		{"name too long", "name", strings.Repeat("a", 64), "body.name"},
		{"empty name", "name", "", "body.name"},
		{"file URL", "git_url", "file:///etc/passwd", "body.git_url"},
		{"ext transport", "git_url", "ext::sh -c touch% /tmp/pwned", "body.git_url"},
		{"ssh URL", "git_url", "ssh://git@example.com/x.git", "body.git_url"},
		{"credentials in URL", "git_url", "https://user:secret@example.com/x.git", "body.git_url"},
		{"metadata address", "git_url", "https://169.254.169.254/latest/meta-data", "body.git_url"},
		{"private address", "git_url", "https://10.0.0.1/x.git", "body.git_url"},
		{"IPv6 link-local", "git_url", "https://[fe80::1]/x.git", "body.git_url"},
		{"IPv6 unique local", "git_url", "https://[fd00::1]/x.git", "body.git_url"},
		{"decimal IP", "git_url", "https://2852039166/x.git", "body.git_url"},
		{"option as URL", "git_url", "--upload-pack=touch /tmp/pwned", "body.git_url"},
		{"remote http host", "git_url", "http://example.com/x.git", "body.git_url"},
		{"option as branch", "git_branch", "--upload-pack=touch /tmp/pwned", "body.git_branch"},
		{"branch with ..", "git_branch", "a..b", "body.git_branch"},
		{"branch with space", "git_branch", "a b", "body.git_branch"},
		{"unknown runtime", "runtime", "cobol", "body.runtime"},
		{"unknown plan", "plan", "galactic", "body.plan"},
		{"unknown region", "region", "mars", "body.region"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, raw := platform.call(http.MethodPost, "/api/paas/applications", erin.token, with(c.field, c.value), nil)
			if status != http.StatusUnprocessableEntity {
				t.Fatalf("%d %s, want 422", status, raw)
			}
			var p problem
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatalf("not problem JSON: %s", raw)
			}
			found := false
			for _, e := range p.Errors {
				found = found || e.Location == c.location
			}
			if !found || p.Status != 422 || p.Title == "" {
				t.Errorf("problem does not name %s: %s", c.location, raw)
			}
			if strings.Contains(string(raw), "secret") {
				t.Errorf("the problem echoes a password: %s", raw)
			}
		})
	}
	var list struct{ Items []application }
	if status, raw := platform.call(http.MethodGet, "/api/paas/applications", erin.token, nil, &list); status != http.StatusOK {
		t.Fatalf("list apps: %d %s", status, raw)
	}
	if len(list.Items) != 0 {
		t.Errorf("refused requests created %d apps", len(list.Items))
	}

	t.Run("problem responses use the RFC 9457 media type", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, platform.apiURL+"/api/paas/applications", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("no token: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	})

	t.Run("duplicate name is a conflict on body.name", func(t *testing.T) {
		first := with("name", uniqueName("dup"))
		if status, raw := platform.call(http.MethodPost, "/api/paas/applications", erin.token, first, nil); status != http.StatusCreated {
			t.Fatalf("%d %s", status, raw)
		}
		status, raw := platform.call(http.MethodPost, "/api/paas/applications", erin.token, first, nil)
		if status != http.StatusConflict || !strings.Contains(string(raw), "body.name") {
			t.Errorf("duplicate: %d %s", status, raw)
		}
	})

	t.Run("an app name cannot be changed", func(t *testing.T) {
		var app application
		if status, raw := platform.call(http.MethodPost, "/api/paas/applications", erin.token, with("name", uniqueName("fixed")), &app); status != http.StatusCreated {
			t.Fatalf("create: %d %s", status, raw)
		}
		status, raw := platform.call(http.MethodPut, "/api/paas/applications/"+app.ID, erin.token, map[string]string{"name": "other"}, nil)
		if status != http.StatusUnprocessableEntity || !strings.Contains(string(raw), "body.name") {
			t.Errorf("rename: %d %s", status, raw)
		}
	})

	t.Run("drain time is 1-120 seconds and is kept", func(t *testing.T) {
		create := map[string]any{}
		for k, v := range with("name", uniqueName("drain")) {
			create[k] = v
		}
		for _, bad := range []int{0, 121, -5} {
			create["drain_seconds"] = bad
			status, raw := platform.call(http.MethodPost, "/api/paas/applications", erin.token, create, nil)
			if status != http.StatusUnprocessableEntity || !strings.Contains(string(raw), "body.drain_seconds") {
				t.Errorf("create with drain_seconds %d: %d %s, want 422 on body.drain_seconds", bad, status, raw)
			}
		}
		create["drain_seconds"] = 30
		var app struct {
			ID           string `json:"id"`
			DrainSeconds int    `json:"drain_seconds"`
		}
		if status, raw := platform.call(http.MethodPost, "/api/paas/applications", erin.token, create, &app); status != http.StatusCreated || app.DrainSeconds != 30 {
			t.Fatalf("create with drain_seconds 30: %d %s", status, raw)
		}
		status, raw := platform.call(http.MethodPut, "/api/paas/applications/"+app.ID, erin.token, map[string]int{"drain_seconds": 500}, nil)
		if status != http.StatusUnprocessableEntity || !strings.Contains(string(raw), "body.drain_seconds") {
			t.Errorf("update to 500: %d %s", status, raw)
		}
		platform.call(http.MethodGet, "/api/paas/applications/"+app.ID, erin.token, nil, &app)
		if app.DrainSeconds != 30 {
			t.Errorf("a refused update changed drain_seconds to %d", app.DrainSeconds)
		}
		if status, raw := platform.call(http.MethodPut, "/api/paas/applications/"+app.ID, erin.token, map[string]int{"drain_seconds": 60}, &app); status != http.StatusOK || app.DrainSeconds != 60 {
			t.Errorf("update to 60: %d %s", status, raw)
		}
	})
}
