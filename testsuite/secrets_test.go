package testsuite

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/skypanel/skypanel/cmd/skypanel/devharness/localcluster"
)

type envChange struct {
	Changed    []string `json:"changed"`
	Created    []string `json:"created"`
	WorkflowID string   `json:"workflow_id"`
	Status     string   `json:"status"`
}

type envVar struct {
	Key       string  `json:"key"`
	Value     *string `json:"value"`
	BuildTime bool    `json:"build_time"`
}

func (c customer) env(t testing.TB, appID string) map[string]envVar {
	t.Helper()
	var list struct{ Items []envVar }
	if status, raw := platform.call(http.MethodGet, "/api/paas/applications/"+appID+"/env", c.token, nil, &list); status != http.StatusOK {
		t.Fatalf("list env: %d %s", status, raw)
	}
	vars := map[string]envVar{}
	for _, v := range list.Items {
		vars[v.Key] = v
	}
	return vars
}

// throughNginxPath fetches http://<host><path> from the node's nginx.
func (s *stack) throughNginxPath(host, path string) (int, string) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.nginxAddr+path, nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func randomCanary(t testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "canary-" + hex.EncodeToString(b)
}

// TestSecretReachesTheAppAndNothingElse sets a random canary on a running app: the change rolls
// out as a new release without a build, the app echoes the value through nginx, and afterwards
// the value is nowhere in plaintext: not in a dump of the control-plane database, not in any
// workflow history Temporal keeps, not in the logs of the API, worker and agent, not in the
// build log of a deployment made with it.
func TestSecretReachesTheAppAndNothingElse(t *testing.T) {
	owner, app, r, first := liveHelloApp(t, "secret", "secret v1")
	host := app.Name + ".apps.localhost"
	canary, buildCanary := randomCanary(t), randomCanary(t)

	var change envChange
	status, raw := platform.call(http.MethodPost, "/api/paas/applications/"+app.ID+"/env", owner.token,
		map[string]any{"key": "CANARY_SECRET", "value": canary}, &change)
	if status != http.StatusAccepted || change.Status != "rolling_out" || change.WorkflowID == "" {
		t.Fatalf("set CANARY_SECRET on a running app: %d %s, want 202 rolling_out", status, raw)
	}
	owner.waitWorkflow(t, change.WorkflowID)
	if status, body := platform.throughNginxPath(host, "/env/CANARY_SECRET"); status != http.StatusOK || body != canary {
		t.Fatalf("the app echoes %d %q, want the canary", status, body)
	}
	replayHistory(t, change.WorkflowID, "configure_app_succeeded")

	// No rebuild: still one deployment; a new release with the same image, named by key.
	var deps struct{ Items []deployment }
	platform.call(http.MethodGet, "/api/paas/applications/"+app.ID+"/deployments", owner.token, nil, &deps)
	if len(deps.Items) != 1 || deps.Items[0].ID != first.ID {
		t.Errorf("the config change made %d deployments, want the first one only", len(deps.Items))
	}
	var releases struct {
		Items []struct {
			Version     int             `json:"version"`
			Kind        string          `json:"kind"`
			Image       string          `json:"image"`
			Description string          `json:"description"`
			Config      json.RawMessage `json:"config"`
		}
	}
	platform.call(http.MethodGet, "/api/paas/applications/"+app.ID+"/releases", owner.token, nil, &releases)
	if r := releases.Items; len(r) != 2 || r[0].Kind != "config" || r[0].Version != 2 || r[0].Image != r[1].Image ||
		r[0].Description != "Set CANARY_SECRET" || !strings.Contains(string(r[0].Config), "CANARY_SECRET") {
		t.Errorf("releases after the change: %+v", r)
	}

	// The owner reads the value back; another customer sees no such app; an admin sees names
	// only unless it asks, and then the reveal is logged.
	if v := owner.env(t, app.ID)["CANARY_SECRET"]; v.Value == nil || *v.Value != canary {
		t.Errorf("the owner reads back %+v", v)
	}
	stranger := newCustomer(t, uniqueName("stranger")+"@example.com")
	if status, raw := platform.call(http.MethodGet, "/api/paas/applications/"+app.ID+"/env", stranger.token, nil, nil); status != http.StatusNotFound {
		t.Errorf("another customer lists the env: %d %s", status, raw)
	}
	var adminView struct{ Items []envVar }
	platform.call(http.MethodGet, "/api/paas/admin/applications/"+app.ID+"/env", platform.adminToken, nil, &adminView)
	if len(adminView.Items) != 1 || adminView.Items[0].Key != "CANARY_SECRET" || adminView.Items[0].Value != nil {
		t.Errorf("admin without reveal: %+v, want the key without its value", adminView.Items)
	}
	platform.call(http.MethodGet, "/api/paas/admin/applications/"+app.ID+"/env?reveal=true", platform.adminToken, nil, &adminView)
	if len(adminView.Items) != 1 || adminView.Items[0].Value == nil || *adminView.Items[0].Value != canary {
		t.Errorf("admin with reveal: %+v", adminView.Items)
	}
	if status, _ := platform.call(http.MethodGet, "/api/paas/admin/applications/"+app.ID+"/env", owner.token, nil, nil); status != http.StatusForbidden {
		t.Errorf("a customer on the admin endpoint: %d", status)
	}

	// A build-time variable, and a deploy: the build sees it as a build argument, and neither
	// value appears in the build log; the new instances get the environment too.
	status, raw = platform.call(http.MethodPatch, "/api/paas/applications/"+app.ID+"/env", owner.token,
		map[string]any{"set": []map[string]any{{"key": "BUILD_CANARY", "value": buildCanary, "build_time": true}}}, &change)
	if status != http.StatusAccepted {
		t.Fatalf("bulk set: %d %s", status, raw)
	}
	owner.waitWorkflow(t, change.WorkflowID)
	// The build checks it sees BUILD_CANARY, by its hash: the value itself never appears in
	// the Dockerfile, so a build log that held it would be the platform's doing.
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static is not installed (make deps installs it): %v", err)
	}
	sum := sha256.Sum256([]byte(buildCanary))
	r.write("busybox", string(busybox))
	r.write("Dockerfile", "FROM scratch\nCOPY busybox /bin/busybox\nARG BUILD_CANARY\n"+
		`RUN ["/bin/busybox", "sh", "-c", "test \"$(printf %s \"$BUILD_CANARY\" | /bin/busybox sha256sum | /bin/busybox cut -c1-64)\" = `+hex.EncodeToString(sum[:])+`"]`+"\n"+
		"COPY app /app\nCOPY message.txt /message.txt\nUSER 1000:1000\nENTRYPOINT [\"/app\"]\n")
	r.commit("the build needs BUILD_CANARY")
	dep := owner.deploy(t, app.ID)
	if dep.Status != "succeeded" {
		t.Fatalf("deploy with the environment: %+v\n%s", dep, owner.logs(t, app.ID, dep.ID))
	}
	buildLog := owner.logs(t, app.ID, dep.ID)
	if status, body := platform.throughNginxPath(host, "/env/CANARY_SECRET"); status != http.StatusOK || body != canary {
		t.Errorf("after the deploy the app echoes %d %q", status, body)
	}

	secrets := map[string]string{"CANARY_SECRET": canary, "BUILD_CANARY": buildCanary}
	assertNotHeld(t, "the build log", []byte(buildLog), secrets)
	processLog := assertNotInPlatformRecords(t, secrets)
	if !bytes.Contains(processLog, []byte("administrator revealed environment values")) {
		t.Error("the admin's reveal of values is not logged")
	}
	temporalLog, err := os.ReadFile(filepath.Join(platform.dataDir, "temporal.log"))
	if err != nil || len(temporalLog) == 0 {
		t.Fatalf("the Temporal server log is unreadable or empty (%d bytes, %v): its check would prove nothing", len(temporalLog), err)
	}
	assertNotHeld(t, "the Temporal server log", temporalLog, secrets)

	// The proof that the canary would have been found: the app does hold it.
	if _, body := platform.throughNginxPath(host, "/env/CANARY_SECRET"); body != canary {
		t.Error("the app no longer holds the canary: the checks above prove nothing")
	}

	// A real encrypted payload, for the codec endpoint: the last ConfigureApp's input.
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: []*commonpb.Payload{configureInputPayload(t, change.WorkflowID)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the Temporal codec decodes for an admin only", func(t *testing.T) {
		codec := func(token string) (int, []byte) {
			req, _ := http.NewRequest(http.MethodPost, platform.apiURL+"/api/paas/temporal-codec/decode", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, raw
		}
		status, raw := codec(platform.adminToken)
		var decoded commonpb.Payloads
		if status != http.StatusOK || protojson.Unmarshal(raw, &decoded) != nil || len(decoded.Payloads) != 1 {
			t.Fatalf("admin decode: %d %s", status, raw)
		}
		if data := string(decoded.Payloads[0].GetData()); !strings.Contains(data, app.ID) || !strings.Contains(data, "Set BUILD_CANARY") {
			t.Errorf("decoded input %q, want ConfigureApp's input", data)
		}
		if status, raw := codec(owner.token); status != http.StatusForbidden {
			t.Errorf("customer decode: %d %s, want 403", status, raw)
		}
		if status, raw := codec(""); status != http.StatusUnauthorized {
			t.Errorf("anonymous decode: %d %s, want 401", status, raw)
		}
	})

	t.Run("an admin signs in for the Temporal UI: cookie and CORS", func(t *testing.T) {
		login := func(token string) *http.Response {
			resp, err := http.PostForm(platform.apiURL+"/api/paas/temporal-codec/login", url.Values{"token": {token}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp
		}
		if resp := login(owner.token); resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
			t.Errorf("a customer signs in: %d with %d cookies, want 403 and none", resp.StatusCode, len(resp.Cookies()))
		}
		resp := login(platform.adminToken)
		var cookie *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "skypanel_codec" {
				cookie = c
			}
		}
		if resp.StatusCode != http.StatusOK || cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
			t.Fatalf("admin sign-in: %d, cookie %+v", resp.StatusCode, cookie)
		}
		fromUI := func(method, origin string, withCookie bool) *http.Response {
			req, _ := http.NewRequest(method, platform.apiURL+"/api/paas/temporal-codec/decode", bytes.NewReader(body))
			req.Header.Set("Origin", origin)
			req.Header.Set("Content-Type", "application/json")
			if method == http.MethodOptions {
				req.Header.Set("Access-Control-Request-Method", "POST")
				req.Header.Set("Access-Control-Request-Headers", "content-type,x-namespace")
			}
			if withCookie {
				req.AddCookie(cookie)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp
		}
		if resp := fromUI(http.MethodOptions, platform.uiOrigin, false); resp.StatusCode != http.StatusNoContent ||
			resp.Header.Get("Access-Control-Allow-Origin") != platform.uiOrigin || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Errorf("the UI's preflight: %d %v", resp.StatusCode, resp.Header)
		}
		if resp := fromUI(http.MethodPost, platform.uiOrigin, true); resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != platform.uiOrigin {
			t.Errorf("the UI's decode with the cookie: %d %v", resp.StatusCode, resp.Header)
		}
		if resp := fromUI(http.MethodPost, platform.uiOrigin, false); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("the UI's decode without the cookie: %d, want 401", resp.StatusCode)
		}
		if resp := fromUI(http.MethodPost, "http://evil.example", true); resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("another origin is allowed to read the answer: %v", resp.Header)
		}

		// The cookie is a decode-only session of its own: not the admin's token, no key to the
		// API, and it ends with the token it was signed in with.
		if cookie.Value == platform.adminToken || !strings.HasPrefix(cookie.Value, "spc_") {
			t.Errorf("the codec cookie carries %q…, want a session of its own", cookie.Value[:min(6, len(cookie.Value))])
		}
		if status, _ := platform.call(http.MethodGet, "/api/paas/admin/nodes", cookie.Value, nil, nil); status != http.StatusUnauthorized {
			t.Errorf("the codec session used as an API token: %d, want 401", status)
		}
		signedIn, secret := createToken(t, platform.adminToken, map[string]any{"name": "codec"})
		resp = login(secret)
		cookie = nil
		for _, c := range resp.Cookies() {
			if c.Name == "skypanel_codec" {
				cookie = c
			}
		}
		if cookie == nil || cookie.Secure {
			t.Fatalf("sign-in with a second admin token over plain http: cookie %+v", cookie)
		}
		if resp := fromUI(http.MethodPost, platform.uiOrigin, true); resp.StatusCode != http.StatusOK {
			t.Errorf("decode with the second session: %d", resp.StatusCode)
		}
		if status, raw := platform.call(http.MethodDelete, "/api/paas/tokens/"+signedIn.ID, platform.adminToken, nil, nil); status != http.StatusNoContent {
			t.Fatalf("revoke the second admin token: %d %s", status, raw)
		}
		if resp := fromUI(http.MethodPost, platform.uiOrigin, true); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("decode with the session of a revoked token: %d, want 401", resp.StatusCode)
		}
	})
}

// platformPostgresPort is the port of the test stack's local Postgres cluster.
func platformPostgresPort(t testing.TB) string {
	t.Helper()
	pid, err := os.Open(filepath.Join(platform.dataDir, "postgres", "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	defer pid.Close()
	lines := bufio.NewScanner(pid)
	var port string
	for i := 1; lines.Scan(); i++ {
		if i == 4 {
			port = strings.TrimSpace(lines.Text())
		}
	}
	if _, err := strconv.Atoi(port); err != nil {
		t.Fatalf("no port in postmaster.pid: %q", port)
	}
	return port
}

// platformDatabaseURL is the control-plane database of the test stack (its local cluster
// trusts loopback), for a second control-plane process.
func platformDatabaseURL(t testing.TB) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%s/%s?sslmode=disable", localcluster.User, platformPostgresPort(t), localcluster.Database)
}

// pgDump dumps the control-plane database of the test stack.
func pgDump(t *testing.T) []byte {
	t.Helper()
	port := platformPostgresPort(t)
	binDir, err := localcluster.FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(binDir, "pg_dump"), "-h", "127.0.0.1", "-p", port, "-U", localcluster.User, localcluster.Database).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	if !bytes.Contains(out, []byte("app_env")) {
		t.Fatal("the dump has no app_env table: it is not the platform's database")
	}
	return out
}

// assertNotHeld fails t for each named value content holds in plaintext.
func assertNotHeld(t testing.TB, where string, content []byte, values map[string]string) {
	t.Helper()
	for name, value := range values {
		if bytes.Contains(content, []byte(value)) {
			t.Errorf("%s holds %s in plaintext", where, name)
		}
	}
}

// assertNotInPlatformRecords fails t for each named value found in plaintext in a pg_dump of
// the control-plane database, in any workflow history or in the processes' logs, and returns
// those logs.
func assertNotInPlatformRecords(t *testing.T, values map[string]string) []byte {
	t.Helper()
	histories := allHistories(t)
	if len(histories) == 0 {
		t.Fatal("no workflow histories to check")
	}
	processLog, err := os.ReadFile(platform.logPath)
	if err != nil {
		t.Fatal(err)
	}
	assertNotHeld(t, "a pg_dump of the control-plane database", pgDump(t), values)
	assertNotHeld(t, fmt.Sprintf("the JSON histories of %d workflows", len(histories)), bytes.Join(histories, nil), values)
	assertNotHeld(t, "the api, worker and agent logs", processLog, values)
	return processLog
}

// allHistories fetches the history of every workflow Temporal knows, as JSON.
func allHistories(t *testing.T) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out [][]byte
	var token []byte
	for {
		resp, err := platform.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{NextPageToken: token, PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, execution := range resp.GetExecutions() {
			wf := execution.GetExecution()
			iter := platform.temporal.GetWorkflowHistory(ctx, wf.GetWorkflowId(), wf.GetRunId(), false, 0)
			history := &historypb.History{}
			for iter.HasNext() {
				event, err := iter.Next()
				if err != nil {
					t.Fatalf("history of %s: %v", wf.GetWorkflowId(), err)
				}
				history.Events = append(history.Events, event)
			}
			raw, err := protojson.Marshal(history)
			if err != nil {
				t.Fatal(err)
			}
			// Payload data is base64 in JSON: keep the decoded bytes too.
			out = append(out, raw, payloadBytes(raw))
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return out
		}
	}
}

// payloadBytes concatenates the raw data of every payload in a history's JSON (where payload
// data is base64).
func payloadBytes(raw []byte) []byte {
	var tree any
	if json.Unmarshal(raw, &tree) != nil {
		return nil
	}
	var buf bytes.Buffer
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				if s, ok := child.(string); ok && k == "data" {
					if decoded, err := base64.StdEncoding.DecodeString(s); err == nil {
						buf.Write(decoded)
					}
				}
				walk(child)
			}
		case []any:
			for _, child := range v {
				walk(child)
			}
		}
	}
	walk(tree)
	return buf.Bytes()
}

// configureInputPayload is the encrypted input of a ConfigureApp workflow, as stored.
func configureInputPayload(t *testing.T, workflowID string) *commonpb.Payload {
	t.Helper()
	iter := platform.temporal.GetWorkflowHistory(context.Background(), workflowID, "", false, 0)
	for iter.HasNext() {
		event, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		if attrs := event.GetWorkflowExecutionStartedEventAttributes(); attrs != nil {
			payloads := attrs.GetInput().GetPayloads()
			if len(payloads) != 1 || string(payloads[0].GetMetadata()["encoding"]) != "binary/encrypted" {
				t.Fatalf("the workflow's input is not encrypted: %v", payloads)
			}
			return payloads[0]
		}
	}
	t.Fatal("no start event")
	return nil
}

// TestEnvBadInputIsRefusedAndChangesNothing: malformed, oversized and reserved names, oversized
// values and unknown variables each get a problem naming the field, and nothing is stored.
func TestEnvBadInputIsRefusedAndChangesNothing(t *testing.T) {
	owner := newCustomer(t, uniqueName("envbad")+"@example.com")
	app := owner.createApp(t, uniqueName("envbad"), "https://git.example.com/app.git")
	path := "/api/paas/applications/" + app.ID + "/env"
	if status, raw := platform.call(http.MethodPost, path, owner.token, map[string]any{"key": "KEEP", "value": "kept"}, nil); status != http.StatusCreated {
		t.Fatalf("a valid variable on a never-deployed app: %d %s, want 201", status, raw)
	}
	cases := []struct {
		name, method, path string
		body               any
		status             int
		location           string
	}{
		{"lower-case name", http.MethodPost, path, map[string]any{"key": "lower", "value": "x"}, 422, "body.key"},
		{"name starting with a digit", http.MethodPost, path, map[string]any{"key": "1ABC", "value": "x"}, 422, "body.key"},
		{"name with a dash", http.MethodPost, path, map[string]any{"key": "A-B", "value": "x"}, 422, "body.key"},
		{"name with shell", http.MethodPost, path, map[string]any{"key": "A;rm -rf /", "value": "x"}, 422, "body.key"},
		{"name too long", http.MethodPost, path, map[string]any{"key": strings.Repeat("A", 257), "value": "x"}, 422, "body.key"},
		{"reserved PORT", http.MethodPost, path, map[string]any{"key": "PORT", "value": "1"}, 422, "body.key"},
		{"reserved platform prefix", http.MethodPost, path, map[string]any{"key": "SKYPANEL_NODE", "value": "x"}, 422, "body.key"},
		{"value over 32 KiB", http.MethodPost, path, map[string]any{"key": "BIG", "value": strings.Repeat("v", 32<<10+1)}, 422, "body.value"},
		{"value with NUL", http.MethodPost, path, map[string]any{"key": "NUL", "value": "a\x00b"}, 422, "body.value"},
		{"reserved name in the path", http.MethodPut, path + "/PORT", map[string]any{"value": "1"}, 422, "path.key"},
		{"bad name in the path", http.MethodPut, path + "/bad-name", map[string]any{"value": "1"}, 422, "path.key"},
		{"bulk with one bad name", http.MethodPatch, path, map[string]any{"set": []map[string]any{{"key": "GOOD", "value": "1"}, {"key": "bad", "value": "2"}}}, 422, "body.set[1].key"},
		{"bulk naming a key twice", http.MethodPatch, path, map[string]any{"set": []map[string]any{{"key": "TWICE", "value": "1"}}, "unset": []string{"TWICE"}}, 422, "body.unset[0]"},
		{"bulk removing an unknown variable", http.MethodPatch, path, map[string]any{"set": []map[string]any{{"key": "GOOD", "value": "1"}}, "unset": []string{"NOPE"}}, 404, "body.unset"},
		{"delete of an unknown variable", http.MethodDelete, path + "/NOPE", nil, 404, "path.key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, raw := platform.call(c.method, c.path, owner.token, c.body, nil)
			if status != c.status || !strings.Contains(string(raw), `"`+c.location+`"`) {
				t.Errorf("%d %s, want %d naming %s", status, truncate(raw), c.status, c.location)
			}
			if strings.Contains(string(raw), strings.Repeat("v", 100)) {
				t.Error("the problem echoes the value")
			}
		})
	}
	vars := owner.env(t, app.ID)
	if len(vars) != 1 || vars["KEEP"].Value == nil || *vars["KEEP"].Value != "kept" {
		t.Errorf("refused requests changed the environment: %+v", vars)
	}
}

func truncate(raw []byte) string {
	if len(raw) > 300 {
		return string(raw[:300]) + "..."
	}
	return string(raw)
}
