package nginx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/skypanel/skypanel/activities/contract"
)

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRouter runs a private nginx on a free loopback port and stops it when the test ends.
func startRouter(t *testing.T) *Router {
	t.Helper()
	if _, err := os.Stat(DefaultBinary); err != nil {
		t.Fatalf("nginx not installed: %v", err)
	}
	r, err := NewRouter(RouterOptions{Prefix: filepath.Join(t.TempDir(), "nginx"), Listen: fmt.Sprintf("127.0.0.1:%d", freeLoopbackPort(t))})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Stop(ctx); err != nil {
			t.Errorf("stop nginx: %v", err)
		}
	})
	return r
}

func get(t *testing.T, r *Router, host string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+r.ProbeAddr()+"/path?q=1", nil)
	req.Host = host
	// Never follows a redirect: it would leave the loopback (an HTTPS domain's name is looked up).
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, CheckRedirect: noRedirects}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func upstream(t *testing.T, name string) (addr string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(ReleaseHeader, "forged-by-the-app")
		fmt.Fprintf(w, "%s host=%s path=%s xff=%s proto=%s", name, r.Host, r.URL.RequestURI(), r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func publish(t *testing.T, a *Activities, in PublishRouteInput) error {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	_, err := env.ExecuteActivity(a.PublishRoute, in)
	return err
}

func removeRoute(t *testing.T, a *Activities, appID string) error {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	_, err := env.ExecuteActivity(a.RemoveRoute, RemoveRouteInput{AppID: appID})
	return err
}

func wantAppError(t *testing.T, err error, errType string) {
	t.Helper()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != errType || !appErr.NonRetryable() {
		t.Fatalf("error %v: want non-retryable %s", err, errType)
	}
}

// snapshot is the sites directory's files and contents.
func snapshot(t *testing.T, r *Router) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(r.sitesDir())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range entries {
		data, _ := os.ReadFile(filepath.Join(r.sitesDir(), e.Name()))
		m[e.Name()] = string(data)
	}
	return m
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestRouterPublishesAndRemovesRoutes(t *testing.T) {
	r := startRouter(t)
	a := &Activities{Router: r}

	resp, body := get(t, r, "unknown.apps.localhost")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, NotServedText) {
		t.Fatalf("unknown host: %d %q", resp.StatusCode, body)
	}

	v1 := upstream(t, "v1")
	in := PublishRouteInput{AppID: "app-1", Hostname: "demo.apps.localhost", ReleaseID: "rel-1", Upstreams: []string{v1}}
	if err := publish(t, a, in); err != nil {
		t.Fatalf("PublishRoute: %v", err)
	}
	resp, body = get(t, r, "demo.apps.localhost")
	if resp.StatusCode != http.StatusOK || fmt.Sprint(resp.Header.Values(ReleaseHeader)) != "[rel-1]" {
		t.Fatalf("published host: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	want := "v1 host=demo.apps.localhost path=/path?q=1 xff=127.0.0.1 proto=http"
	if body != want {
		t.Errorf("body %q, want %q", body, want)
	}
	if resp, _ := get(t, r, "other.apps.localhost"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("other host: %d", resp.StatusCode)
	}

	// A new release switches the same host to the new upstream.
	v2 := upstream(t, "v2")
	in.ReleaseID, in.Upstreams = "rel-2", []string{v2, v2}
	if err := publish(t, a, in); err != nil {
		t.Fatalf("PublishRoute rel-2: %v", err)
	}
	// Publishing it again (a retried activity) changes nothing: Publish rewrites the same site
	// and route files and reloads, so the files must come out byte for byte the same and the
	// master must be the same process. The workers do change: every publish reloads.
	sites, conf, master := snapshot(t, r), readFile(t, r.confPath()), r.masterPID()
	if err := publish(t, a, in); err != nil {
		t.Fatalf("PublishRoute rel-2 again: %v", err)
	}
	if again := snapshot(t, r); fmt.Sprint(again) != fmt.Sprint(sites) {
		t.Errorf("publishing rel-2 again changed the sites:\n got %v\nwant %v", again, sites)
	}
	if again := readFile(t, r.confPath()); again != conf {
		t.Errorf("publishing rel-2 again changed nginx.conf:\n%s", again)
	}
	if again := r.masterPID(); again != master || master == 0 {
		t.Errorf("master pid %d after publishing rel-2 again, want %d", again, master)
	}
	resp, body = get(t, r, "demo.apps.localhost")
	if resp.Header.Get(ReleaseHeader) != "rel-2" || !strings.HasPrefix(body, "v2 ") {
		t.Errorf("after rel-2: %v %q", resp.Header, body)
	}

	if err := removeRoute(t, a, "app-1"); err != nil {
		t.Fatal(err)
	}
	if err := removeRoute(t, a, "app-1"); err != nil {
		t.Fatalf("second RemoveRoute: %v", err)
	}
	if resp, _ := get(t, r, "demo.apps.localhost"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("removed host still served: %d", resp.StatusCode)
	}
}

func TestRouterRejectsHostileInputWithoutTouchingConfig(t *testing.T) {
	r := startRouter(t)
	a := &Activities{Router: r}
	good := PublishRouteInput{AppID: "app-1", Hostname: "demo.apps.localhost", ReleaseID: "rel-1", Upstreams: []string{upstream(t, "v1")}}
	if err := publish(t, a, good); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, r)
	conf, _ := os.ReadFile(r.confPath())

	hostile := []func(*PublishRouteInput){
		func(in *PublishRouteInput) { in.Hostname = "evil.com; include /etc/passwd" },
		func(in *PublishRouteInput) { in.Hostname = "evil.com\n}" },
		func(in *PublishRouteInput) { in.Hostname = "Demo.apps.localhost" },
		func(in *PublishRouteInput) { in.Hostname = "*.apps.localhost" },
		func(in *PublishRouteInput) { in.Hostname = "~^.*$" },
		func(in *PublishRouteInput) { in.Hostname = "_" },
		func(in *PublishRouteInput) { in.Hostname = "demo.apps.localhost." },
		func(in *PublishRouteInput) { in.Hostname = "-demo.localhost" },
		func(in *PublishRouteInput) { in.Hostname = strings.Repeat("a", 64) + ".localhost" },
		func(in *PublishRouteInput) { in.AppID = "../../etc/x" },
		func(in *PublishRouteInput) { in.AppID = "App" },
		func(in *PublishRouteInput) { in.ReleaseID = "r1; return 200" },
		func(in *PublishRouteInput) { in.ReleaseID = "" },
		func(in *PublishRouteInput) { in.Upstreams = nil },
		func(in *PublishRouteInput) { in.MaxConnections = MaxMaxConnections + 1 },
		func(in *PublishRouteInput) { in.MaxConnections = -1 },
		func(in *PublishRouteInput) { in.ReadTimeout = 1500 * time.Millisecond },
		func(in *PublishRouteInput) { in.ReadTimeout = 2 * time.Hour },
		func(in *PublishRouteInput) { in.Upstreams = []string{"10.0.0.1:80"} },
		func(in *PublishRouteInput) { in.Upstreams = []string{"127.0.0.1:80; evil"} },
		func(in *PublishRouteInput) { in.Upstreams = []string{"127.0.0.1:0"} },
		func(in *PublishRouteInput) { in.Upstreams = []string{"127.0.0.1:080"} },
		func(in *PublishRouteInput) { in.Upstreams = []string{"unix:/var/run/docker.sock"} },
		func(in *PublishRouteInput) { in.Mode = "return 200" },
		func(in *PublishRouteInput) { in.Mode = RouteStopped }, // a page with upstreams
		func(in *PublishRouteInput) { in.Upstreams, in.Mode, in.Stopped = nil, RouteSuspended, true },
		func(in *PublishRouteInput) { in.Upstreams, in.Suspended = nil, true }, // suspended, not stopped
		func(in *PublishRouteInput) { in.Domains = []contract.Domain{{Hostname: "a;b.com"}} },
		func(in *PublishRouteInput) { in.Domains = []contract.Domain{{Hostname: "x.com{"}} },
		func(in *PublishRouteInput) { in.Domains = []contract.Domain{{Hostname: "*.example.com"}} },
		func(in *PublishRouteInput) { in.Domains = []contract.Domain{{Hostname: "demo.apps.localhost"}} }, // its own name twice
		func(in *PublishRouteInput) { in.Domains = []contract.Domain{{Hostname: "x.com"}, {Hostname: "x.com"}} },
		func(in *PublishRouteInput) { in.Domains = make([]contract.Domain, contract.MaxRouteDomains+1) },
	}
	for i, mutate := range hostile {
		in := good
		in.AppID = "app-2"
		mutate(&in)
		err := publish(t, a, in)
		wantAppError(t, err, ErrTypeInvalidInput)
		if after := snapshot(t, r); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("case %d (%+v) changed the sites: %v", i, in, after)
		}
	}
	wantAppError(t, removeRoute(t, a, "../x"), ErrTypeInvalidInput)
	if now, _ := os.ReadFile(r.confPath()); string(now) != string(conf) {
		t.Error("nginx.conf changed")
	}
	if resp, _ := get(t, r, "demo.apps.localhost"); resp.Header.Get(ReleaseHeader) != "rel-1" {
		t.Errorf("the good route stopped working: %v", resp.Header)
	}
}

// A config nginx -t rejects is rolled back: the app's previous block stays in force.
func TestRouterRollsBackRejectedConfig(t *testing.T) {
	r := startRouter(t)
	a := &Activities{Router: r}
	in := PublishRouteInput{AppID: "app-1", Hostname: "demo.apps.localhost", ReleaseID: "rel-1", Upstreams: []string{upstream(t, "v1")}}
	if err := publish(t, a, in); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, r)

	// Something else broke the config (a hand edit): the next publish must not load it.
	broken := filepath.Join(r.sitesDir(), "zz-broken.conf")
	os.WriteFile(broken, []byte("this is not nginx config;\n"), 0o644)
	in.ReleaseID = "rel-2"
	err := publish(t, a, in)
	wantAppError(t, err, ErrTypeRouteConfigInvalid)
	if !strings.Contains(err.Error(), "zz-broken.conf") {
		t.Errorf("error lacks nginx's message: %v", err)
	}
	os.Remove(broken)
	if after := snapshot(t, r); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("site not restored: %v", after)
	}
	if resp, _ := get(t, r, "demo.apps.localhost"); resp.Header.Get(ReleaseHeader) != "rel-1" {
		t.Errorf("release %q, want rel-1 still", resp.Header.Get(ReleaseHeader))
	}
}

// Start on a prefix whose master is running reloads it instead of starting a second one.
func TestRouterStartReusesRunningMaster(t *testing.T) {
	r := startRouter(t)
	pid := r.masterPID()
	again, err := NewRouter(RouterOptions{Prefix: r.Prefix(), Listen: r.opts.Listen})
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if again.masterPID() != pid {
		t.Errorf("master pid %d, want %d", again.masterPID(), pid)
	}
}

func TestParseListen(t *testing.T) {
	tests := []struct{ in, directive, probe string }{
		{":80", "80", "127.0.0.1:80"},
		{"80", "80", "127.0.0.1:80"},
		{"127.0.0.1:8088", "127.0.0.1:8088", "127.0.0.1:8088"},
		{"0.0.0.0:80", "0.0.0.0:80", "127.0.0.1:80"},
		{"[::]:80", "[::]:80", "[::1]:80"},
	}
	for _, tt := range tests {
		got, err := parseListen(tt.in)
		if err != nil || got.directive != tt.directive || got.probe != tt.probe {
			t.Errorf("parseListen(%q) = %+v, %v", tt.in, got, err)
		}
	}
	for _, bad := range []string{"", "example.com:80", ":0", ":99999", "127.0.0.1:80;"} {
		if _, err := parseListen(bad); err == nil {
			t.Errorf("parseListen(%q) accepted", bad)
		}
	}
}

// A route's mode comes from Mode, or from the bools an older workflow run or an older agent's
// route file still carries.
func TestRouteModeReadsTheOlderBoolsToo(t *testing.T) {
	for _, tc := range []struct {
		in   PublishRouteInput
		want RouteMode
	}{
		{PublishRouteInput{Upstreams: []string{"127.0.0.1:1"}}, RouteServe},
		{PublishRouteInput{Mode: RouteStopped}, RouteStopped},
		{PublishRouteInput{Mode: RouteSuspended}, RouteSuspended},
		{PublishRouteInput{Stopped: true}, RouteStopped},
		{PublishRouteInput{Stopped: true, Suspended: true}, RouteSuspended},
	} {
		if got := tc.in.RouteMode(); got != tc.want {
			t.Errorf("%+v: mode %q, want %q", tc.in, got, tc.want)
		}
		if tc.in.Serves() != (tc.want == RouteServe) {
			t.Errorf("%+v: Serves %v", tc.in, tc.in.Serves())
		}
	}
}

// An app holding its connection limit gets 429 for one more, while another app on the node
// still answers; an app slower than its read timeout gets 504, not a request held for minutes.
func TestRouterBoundsEachAppsConnectionsAndWaits(t *testing.T) {
	r := startRouter(t)
	a := &Activities{Router: r}
	release := make(chan struct{})
	// /slow answers only when released; anything else (the route's own probe) at once.
	var waiting atomic.Int32
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/slow" {
			waiting.Add(1)
			select {
			case <-release:
			case <-req.Context().Done():
			}
		}
		fmt.Fprint(w, "slow")
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	if err := publish(t, a, PublishRouteInput{AppID: "slow", Hostname: "slow.apps.localhost", ReleaseID: "r1",
		Upstreams: []string{strings.TrimPrefix(slow.URL, "http://")}, MaxConnections: 2, ReadTimeout: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if err := publish(t, a, PublishRouteInput{AppID: "other", Hostname: "other.apps.localhost", ReleaseID: "r1", Upstreams: []string{upstream(t, "other")}}); err != nil {
		t.Fatal(err)
	}

	// Two requests hold the slow app's two connections until its read timeout.
	held := make(chan int, 2)
	for range 2 {
		go func() {
			req, _ := http.NewRequest(http.MethodGet, "http://"+r.ProbeAddr()+"/slow", nil)
			req.Host = "slow.apps.localhost"
			resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
			if err != nil {
				held <- 0
				return
			}
			resp.Body.Close()
			held <- resp.StatusCode
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for waiting.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if waiting.Load() < 2 {
		t.Fatal("the two slow requests did not reach the app")
	}
	if resp, _ := get(t, r, "slow.apps.localhost"); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("a third connection to an app limited to 2: %d, want 429", resp.StatusCode)
	}
	if resp, body := get(t, r, "other.apps.localhost"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "other") {
		t.Errorf("another app while the slow one is at its limit: %d %q", resp.StatusCode, body)
	}
	for range 2 {
		if status := <-held; status != http.StatusGatewayTimeout {
			t.Errorf("a request slower than the app's 2 s read timeout: %d, want 504", status)
		}
	}
}

func setDomains(t *testing.T, a *Activities, appID string, domains ...string) (SetRouteDomainsResult, error) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	in := SetRouteDomainsInput{AppID: appID}
	for _, d := range domains {
		in.Domains = append(in.Domains, contract.Domain{Hostname: d})
	}
	val, err := env.ExecuteActivity(a.SetRouteDomains, in)
	var res SetRouteDomainsResult
	if err == nil {
		err = val.Get(&res)
	}
	return res, err
}

// An app's custom domains are served exactly as its system host name, through every later
// change of its route: a domain change keeps the release and its upstreams, a new release keeps
// the domains it is published with, and a stopped page answers on them too.
func TestRouterServesAnAppOnItsDomains(t *testing.T) {
	r := startRouter(t)
	a := &Activities{Router: r}
	if res, err := setDomains(t, a, "app-1", "www.example.com"); err != nil || res.Changed {
		t.Fatalf("domains of an app the node does not route: %+v %v, want nothing changed", res, err)
	}
	v1 := upstream(t, "v1")
	in := PublishRouteInput{AppID: "app-1", Hostname: "demo.apps.localhost", ReleaseID: "rel-1", Upstreams: []string{v1}}
	if err := publish(t, a, in); err != nil {
		t.Fatal(err)
	}
	if res, err := setDomains(t, a, "app-1", "www.example.com", "xn--bcher-kva.example"); err != nil || !res.Changed {
		t.Fatalf("SetRouteDomains: %+v %v", res, err)
	}
	for _, host := range []string{"demo.apps.localhost", "www.example.com", "xn--bcher-kva.example"} {
		resp, body := get(t, r, host)
		if resp.StatusCode != http.StatusOK || resp.Header.Get(ReleaseHeader) != "rel-1" || !strings.HasPrefix(body, "v1 host="+host+" ") {
			t.Errorf("%s: %d %v %q", host, resp.StatusCode, resp.Header, body)
		}
	}
	routes, err := r.Routes()
	if err != nil || len(routes) != 1 || len(routes[0].Domains) != 2 {
		t.Fatalf("the route state does not keep the domains: %+v %v", routes, err)
	}

	// A hostile domain changes nothing.
	before := snapshot(t, r)
	if _, err := setDomains(t, a, "app-1", "evil.com; include /etc/passwd"); err == nil {
		t.Fatal("a hostile domain was accepted")
	}
	if after := snapshot(t, r); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a hostile domain changed the sites: %v", after)
	}

	// Repointing (a heal) keeps them; removing one stops serving it.
	v2 := upstream(t, "v2")
	if changed, err := r.Repoint(context.Background(), "app-1", "rel-1", []string{v2}); err != nil || !changed {
		t.Fatalf("Repoint: %v %v", changed, err)
	}
	if resp, body := get(t, r, "www.example.com"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "v2 ") {
		t.Errorf("after a repoint: %d %q", resp.StatusCode, body)
	}
	if _, err := setDomains(t, a, "app-1", "www.example.com"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, r, "xn--bcher-kva.example"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a removed domain: %d, want 404", resp.StatusCode)
	}

	// A stopped page answers on the domains it is published with.
	stopped := PublishRouteInput{AppID: "app-1", Hostname: "demo.apps.localhost", ReleaseID: "op-stop", Mode: RouteStopped,
		Domains: []contract.Domain{{Hostname: "www.example.com"}}}
	if err := publish(t, a, stopped); err != nil {
		t.Fatal(err)
	}
	if resp, body := get(t, r, "www.example.com"); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, StoppedText) {
		t.Errorf("a stopped app's domain: %d %q", resp.StatusCode, body)
	}
}
