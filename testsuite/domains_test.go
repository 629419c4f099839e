package testsuite

import (
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type domainChange struct {
	Domain *struct {
		Domain            string `json:"domain"`
		CertificateStatus string `json:"certificate_status"`
	} `json:"domain"`
	OperationID string `json:"operation_id"`
	Status      string `json:"status"`
}

// siteConfig is the app's server block as the node's nginx has it ("" when it has none).
func siteConfig(t testing.TB, appID string) string {
	t.Helper()
	var found string
	_ = filepath.WalkDir(platform.dataDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "app-"+appID+".conf" && filepath.Base(filepath.Dir(path)) == "sites" {
			found = path
			return filepath.SkipAll
		}
		return nil
	})
	if found == "" {
		return ""
	}
	raw, err := os.ReadFile(found)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// A custom domain is an operation of the app: once it ends, nginx serves the app on the domain
// as on its own name, through later rollouts too; bad or taken names change nothing; a removed
// domain is no longer served.
func TestCustomDomainsAreServedAndHostileNamesChangeNothing(t *testing.T) {
	owner, app, _, _ := liveHelloApp(t, "domains", "domains v1")
	base := "/api/paas/applications/" + app.ID + "/domains"
	domain := uniqueName("www") + ".example.com"

	// Typed in upper case, stored and served in lower case.
	var added domainChange
	status, raw := platform.call(http.MethodPost, base, owner.token, map[string]string{"domain": strings.ToUpper(domain)}, &added)
	if status != http.StatusAccepted || added.Status != "publishing" || added.Domain == nil || added.Domain.Domain != domain || added.Domain.CertificateStatus != "none" {
		t.Fatalf("add %s: %d %s", domain, status, raw)
	}
	if op := owner.waitOperation(t, app.ID, added.OperationID); op.Status != "succeeded" || op.Kind != "domains" {
		t.Fatalf("the domain's operation: %+v", op)
	}
	_, _, own := platform.throughNginx(app.Name + ".apps.localhost")
	status, body, header := platform.throughNginx(domain)
	if status != http.StatusOK || body != "domains v1" || header.Get("X-SkyPanel-Release") != own.Get("X-SkyPanel-Release") {
		t.Fatalf("through nginx on %s: %d %q %v", domain, status, body, header)
	}

	// Hostile and taken names: a problem naming the field, and the node's config untouched.
	before := siteConfig(t, app.ID)
	if !strings.Contains(before, domain) {
		t.Fatalf("the app's server block does not name %s:\n%s", domain, before)
	}
	for _, bad := range []string{"a;b.com", "x.com{", "-x.com", strings.Repeat("a", 300) + ".com", "*.example.com",
		uniqueName("mine") + ".apps.localhost", "x.com\n}", "10.1.2.3"} {
		status, raw := platform.call(http.MethodPost, base, owner.token, map[string]string{"domain": bad}, nil)
		if status != http.StatusUnprocessableEntity || !strings.Contains(string(raw), "body.domain") {
			t.Errorf("add %q: %d %s, want 422 naming body.domain", bad, status, raw)
		}
	}
	if status, raw := platform.call(http.MethodPost, base, owner.token, map[string]string{"domain": domain}, nil); status != http.StatusConflict {
		t.Errorf("the same domain twice: %d %s, want 409", status, raw)
	}
	other := newCustomer(t, uniqueName("squatter")+"@example.com")
	theirs := other.createApp(t, uniqueName("squat"), "https://git.example.com/x.git")
	status, raw = platform.call(http.MethodPost, "/api/paas/applications/"+theirs.ID+"/domains", other.token, map[string]string{"domain": domain}, nil)
	if status != http.StatusConflict || !strings.Contains(string(raw), "another application") || strings.Contains(string(raw), app.ID) {
		t.Errorf("another customer's domain: %d %s, want 409 that does not say whose", status, raw)
	}
	if status, _ := platform.call(http.MethodGet, base, other.token, nil, nil); status != http.StatusNotFound {
		t.Errorf("another customer lists the app's domains: %d, want 404", status)
	}
	// An app that is not deployed keeps the domain for its first route.
	var saved domainChange
	if status, raw := platform.call(http.MethodPost, "/api/paas/applications/"+theirs.ID+"/domains", other.token, map[string]string{"domain": "bücher-" + uniqueName("x") + ".example"}, &saved); status != http.StatusCreated || saved.Status != "saved" || !strings.HasPrefix(saved.Domain.Domain, "xn--") {
		t.Errorf("a domain of an app never deployed: %d %s, want 201 saved in punycode", status, raw)
	}
	if after := siteConfig(t, app.ID); after != before {
		t.Errorf("refused domains changed the app's server block:\n%s", after)
	}
	var list struct {
		Items []struct {
			Domain string `json:"domain"`
		} `json:"items"`
	}
	if status, raw := platform.call(http.MethodGet, base, owner.token, nil, &list); status != http.StatusOK || len(list.Items) != 1 || list.Items[0].Domain != domain {
		t.Errorf("list domains: %d %s", status, raw)
	}

	// A rollout (a scale) publishes the route anew, with the domain.
	owner.scale(t, app.ID, 2)
	if status, body, _ := platform.throughNginx(domain); status != http.StatusOK || body != "domains v1" {
		t.Errorf("on %s after a scale: %d %q", domain, status, body)
	}

	var removed domainChange
	if status, raw := platform.call(http.MethodDelete, base+"/"+domain, owner.token, nil, &removed); status != http.StatusAccepted || removed.OperationID == "" {
		t.Fatalf("remove %s: %d %s", domain, status, raw)
	}
	owner.waitOperation(t, app.ID, removed.OperationID)
	eventually(t, 10*time.Second, domain+" no longer served", func() (bool, string) {
		status, body, _ := platform.throughNginx(domain)
		return status == http.StatusNotFound, body
	})
	if status, body, _ := platform.throughNginx(app.Name + ".apps.localhost"); status != http.StatusOK || body != "domains v1" {
		t.Errorf("the app's own name after removing the domain: %d %q", status, body)
	}
	if status, _ := platform.call(http.MethodDelete, base+"/"+domain, owner.token, nil, nil); status != http.StatusNotFound {
		t.Errorf("removing it again: %d, want 404", status)
	}
}
