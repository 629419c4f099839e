package testsuite

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

type apiToken struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	ExpiresAt *time.Time `json:"expires_at"`
	Expired   bool       `json:"expired"`
	Current   bool       `json:"current"`
}

// createToken makes a token of the caller's and answers it with its secret.
func createToken(t *testing.T, callerToken string, body map[string]any) (apiToken, string) {
	t.Helper()
	var out struct {
		Token  apiToken `json:"token"`
		Secret string   `json:"secret"`
	}
	if status, raw := platform.call(http.MethodPost, "/api/paas/tokens", callerToken, body, &out); status != http.StatusCreated || out.Secret == "" {
		t.Fatalf("create token %v: %d %s", body, status, raw)
	}
	return out.Token, out.Secret
}

func tokenWorks(token string) int {
	status, _ := platform.call(http.MethodGet, "/api/paas/applications", token, nil, nil)
	return status
}

// A customer makes, lists and revokes tokens; a revoked token fails at once on its next call
// and ends its open log stream; an expired token fails; an admin lists and revokes anyone's,
// and its own tokens expire by default. Bad input names its field and creates nothing.
func TestTokensExpireAndRevokeAtOnceEverywhere(t *testing.T) {
	c := newCustomer(t, uniqueName("tokens")+"@example.com")
	ci, ciSecret := createToken(t, c.token, map[string]any{"name": "ci"})
	if ci.ExpiresAt != nil || !strings.HasPrefix(ciSecret, ci.Prefix) || len(ci.Prefix) < 8 {
		t.Errorf("a customer's token without expiry: %+v (secret %s…)", ci, ciSecret[:6])
	}
	if status := tokenWorks(ciSecret); status != http.StatusOK {
		t.Fatalf("the new token: %d", status)
	}
	var list struct{ Items []apiToken }
	if status, raw := platform.call(http.MethodGet, "/api/paas/tokens", ciSecret, nil, &list); status != http.StatusOK || len(list.Items) != 2 {
		t.Fatalf("list tokens: %d %s", status, raw)
	}
	for _, tok := range list.Items {
		if tok.Current != (tok.ID == ci.ID) {
			t.Errorf("token %s current=%v, asked with %s", tok.ID, tok.Current, ci.ID)
		}
	}
	if _, raw := platform.call(http.MethodGet, "/api/paas/tokens", c.token, nil, nil); strings.Contains(string(raw), ciSecret[len(ci.Prefix):]) {
		t.Error("the token list shows a token's secret")
	}

	// Bad input: the field at fault, and no token made.
	for _, bad := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"name": "  "}, "body.name"},
		{map[string]any{"name": "past", "expires_at": time.Now().Add(-time.Hour).Format(time.RFC3339)}, "body.expires_at"},
		{map[string]any{"name": "forever", "expires_at": time.Now().AddDate(10, 0, 0).Format(time.RFC3339)}, "body.expires_at"},
	} {
		status, raw := platform.call(http.MethodPost, "/api/paas/tokens", c.token, bad.body, nil)
		if status != http.StatusUnprocessableEntity || !strings.Contains(string(raw), bad.field) {
			t.Errorf("create token %v: %d %s, want 422 on %s", bad.body, status, raw, bad.field)
		}
	}
	if _, raw := platform.call(http.MethodGet, "/api/paas/tokens", c.token, nil, &list); len(list.Items) != 2 {
		t.Errorf("bad input made tokens: %s", raw)
	}

	// A stream open with the token ends once the token is revoked, and the token is refused.
	name := uniqueName("tokstream")
	app := c.createApp(t, name, sleepyBuildRepo(t, name, 20).URL)
	defer c.deleteAndWait(t, app.ID)
	var started struct {
		DeploymentID string `json:"deployment_id"`
	}
	if status, raw := platform.call(http.MethodPost, "/api/paas/applications/"+app.ID+"/deploy", c.token, nil, &started); status != http.StatusAccepted {
		t.Fatalf("deploy: %d %s", status, raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp := openLogStream(ctx, t, ciSecret, app.ID, started.DeploymentID, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("open the stream: %d", resp.StatusCode)
	}
	ended := make(chan []logEvent, 1)
	go func() {
		events, _ := readEvents(t, resp, nil)
		ended <- events
	}()
	if status, raw := platform.call(http.MethodDelete, "/api/paas/tokens/"+ci.ID, c.token, nil, nil); status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", status, raw)
	}
	if status := tokenWorks(ciSecret); status != http.StatusUnauthorized {
		t.Errorf("the revoked token's next call: %d, want 401", status)
	}
	select {
	case events := <-ended:
		if len(events) == 0 || events[len(events)-1].event != "error" || !strings.Contains(events[len(events)-1].data, "revoked") {
			t.Errorf("the stream of a revoked token ended without saying why: %+v", events[max(0, len(events)-3):])
		}
	case <-ctx.Done():
		t.Fatal("the stream of a revoked token stayed open")
	}
	if resp := openLogStream(ctx, t, ciSecret, app.ID, started.DeploymentID, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("reopening the stream with the revoked token: %d, want 401", resp.StatusCode)
	}

	// At most 10 open streams per organization: the 11th is told to come back later.
	streamCtx, closeStreams := context.WithCancel(ctx)
	for i := range 10 {
		if resp := openLogStream(streamCtx, t, c.token, app.ID, started.DeploymentID, ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d: %d", i+1, resp.StatusCode)
		}
	}
	resp = openLogStream(ctx, t, c.token, app.ID, started.DeploymentID, "")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("the 11th stream: %d Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	resp.Body.Close()
	closeStreams()
	eventually(t, 30*time.Second, "a stream opens again once the others closed", func() (bool, string) {
		resp := openLogStream(ctx, t, c.token, app.ID, started.DeploymentID, "")
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})

	// A token that expires stops working.
	_, shortSecret := createToken(t, c.token, map[string]any{"name": "short", "expires_at": time.Now().Add(3 * time.Second).Format(time.RFC3339Nano)})
	if status := tokenWorks(shortSecret); status != http.StatusOK {
		t.Errorf("the token before it expires: %d", status)
	}
	eventually(t, 30*time.Second, "the short-lived token expires", func() (bool, string) {
		status := tokenWorks(shortSecret)
		return status == http.StatusUnauthorized, http.StatusText(status)
	})

	// Admins: their tokens expire by default; they see and revoke anyone's.
	admin, _ := createToken(t, platform.adminToken, map[string]any{"name": "admin-ci"})
	if admin.ExpiresAt == nil || admin.ExpiresAt.Sub(time.Now()) < 89*24*time.Hour || admin.ExpiresAt.Sub(time.Now()) > 91*24*time.Hour {
		t.Errorf("an admin's token expires at %v, want in 90 days", admin.ExpiresAt)
	}
	if status, raw := platform.call(http.MethodDelete, "/api/paas/tokens/"+admin.ID, c.token, nil, nil); status != http.StatusNotFound {
		t.Errorf("a customer revoking an admin's token: %d %s, want 404", status, raw)
	}
	d := newCustomer(t, uniqueName("revoked")+"@example.com")
	if status, raw := platform.call(http.MethodGet, "/api/paas/admin/users/"+d.userID+"/tokens", platform.adminToken, nil, &list); status != http.StatusOK || len(list.Items) != 1 {
		t.Fatalf("admin lists the customer's tokens: %d %s", status, raw)
	}
	if status, raw := platform.call(http.MethodDelete, "/api/paas/admin/tokens/"+list.Items[0].ID, platform.adminToken, nil, nil); status != http.StatusNoContent {
		t.Errorf("admin revokes the customer's token: %d %s", status, raw)
	}
	forget(d) // it has no app, and no token left to delete one with
	if status := tokenWorks(d.token); status != http.StatusUnauthorized {
		t.Errorf("the customer's token after an admin revoked it: %d, want 401", status)
	}
	if status, _ := platform.call(http.MethodGet, "/api/paas/admin/users/"+d.userID+"/tokens", c.token, nil, nil); status != http.StatusForbidden {
		t.Errorf("a customer on the admin endpoint: want 403")
	}
}

// forget drops a customer from the suite's clean-up list.
func forget(c customer) {
	created.Lock()
	defer created.Unlock()
	for i, other := range created.customers {
		if other.token == c.token {
			created.customers = append(created.customers[:i], created.customers[i+1:]...)
			return
		}
	}
}

// A token that makes requests faster than the rate limit gets 429 with Retry-After, then is let
// through again; another customer's token is not held back meanwhile.
func TestATokensRequestsAreRateLimited(t *testing.T) {
	busy := newCustomer(t, uniqueName("busy")+"@example.com")
	calm := newCustomer(t, uniqueName("calm")+"@example.com")
	var limited *http.Response
	for i := 0; i < 2000 && limited == nil; i++ {
		req, _ := http.NewRequest(http.MethodGet, platform.apiURL+"/api/paas/applications", nil)
		req.Header.Set("Authorization", "Bearer "+busy.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			limited = resp
		}
	}
	if limited == nil {
		t.Fatal("2000 requests as fast as one client sends them were never limited")
	}
	if limited.Header.Get("Retry-After") == "" || limited.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("the 429: Retry-After %q, Content-Type %q", limited.Header.Get("Retry-After"), limited.Header.Get("Content-Type"))
	}
	if status := tokenWorks(calm.token); status != http.StatusOK {
		t.Errorf("another customer while the first is limited: %d", status)
	}
	eventually(t, 30*time.Second, "the limited token is let through again", func() (bool, string) {
		status := tokenWorks(busy.token)
		return status == http.StatusOK, http.StatusText(status)
	})
}
