package workernode

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/activities/node/nginx"
)

func TestOnlyRunningInstancesOfTheRoutedReleaseAreUpstreams(t *testing.T) {
	list := []docker.Instance{
		{Name: "a", ReleaseID: "r2", State: "running", HostPort: 40001},
		{Name: "b", ReleaseID: "r2", State: "restarting", HostPort: 40002},
		{Name: "c", ReleaseID: "r1", State: "running", HostPort: 40003},
		{Name: "d", ReleaseID: "r2", State: "running", HostPort: 40004},
	}
	got := runningUpstreams(list, "r2")
	if len(got) != 2 || got[0] != "127.0.0.1:40001" || got[1] != "127.0.0.1:40004" {
		t.Errorf("upstreams %v", got)
	}
	if !allIn([]string{"127.0.0.1:40004"}, got) || allIn([]string{"127.0.0.1:40003"}, got) {
		t.Error("allIn")
	}
}

// fakeContainer is one container the fake Docker Engine reports.
type fakeContainer struct {
	ID, Name, App, Release, State string
	Port                          int // published on 127.0.0.1; 0 for none
}

// fakeEngine answers the Docker Engine API calls of ListInstances and the node's housekeeping
// (container list, inspect, logs) from canned containers, on a loopback httptest server; any other call fails the test.
func fakeEngine(t *testing.T, containers []fakeContainer) *client.Client {
	t.Helper()
	return fakeEngineRemoving(t, containers, nil)
}

// fakeEngineRemoving is fakeEngine that also takes container stops and removals, recording
// "stop <id>" and "remove <id>" into *calls (guarded by its own lock: the engine serves
// concurrently).
func fakeEngineRemoving(t *testing.T, containers []fakeContainer, calls *lockedList) *client.Client {
	t.Helper()
	versioned := regexp.MustCompile(`^/v[0-9.]+`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := versioned.ReplaceAllString(r.URL.Path, "")
		w.Header().Set("Content-Type", "application/json")
		switch {
		case calls != nil && r.Method == http.MethodPost && strings.HasPrefix(path, "/containers/") && strings.HasSuffix(path, "/stop"):
			calls.add("stop " + strings.TrimSuffix(strings.TrimPrefix(path, "/containers/"), "/stop"))
			w.WriteHeader(http.StatusNoContent)
			return
		case calls != nil && r.Method == http.MethodDelete && strings.HasPrefix(path, "/containers/"):
			calls.add("remove " + strings.TrimPrefix(path, "/containers/"))
			w.WriteHeader(http.StatusNoContent)
			return
		case calls != nil && r.Method == http.MethodGet && path == "/images/json":
			// One image per app the filter names, so a removal of the app's images shows.
			var filter map[string]map[string]bool
			_ = json.Unmarshal([]byte(r.URL.Query().Get("filters")), &filter)
			list := []map[string]any{}
			for label := range filter["label"] {
				if app, ok := strings.CutPrefix(label, docker.LabelApp+"="); ok {
					list = append(list, map[string]any{"Id": "sha256:image-of-" + app, "RepoTags": []string{"skypanel/app-" + app + ":r1"}})
				}
			}
			json.NewEncoder(w).Encode(list)
			return
		case calls != nil && r.Method == http.MethodDelete && strings.HasPrefix(path, "/images/"):
			calls.add("remove image " + strings.TrimPrefix(path, "/images/"))
			json.NewEncoder(w).Encode([]map[string]string{{"Deleted": strings.TrimPrefix(path, "/images/")}})
			return
		case r.Method == http.MethodGet && path == "/containers/json":
			var filter map[string]map[string]bool
			if err := json.Unmarshal([]byte(r.URL.Query().Get("filters")), &filter); err != nil {
				t.Errorf("container list filters %q: %v", r.URL.Query().Get("filters"), err)
			}
			list := []map[string]any{}
			for _, c := range containers {
				// Every managed container, or only one app's when the filter names it.
				appFiltered := false
				for label := range filter["label"] {
					appFiltered = appFiltered || strings.HasPrefix(label, docker.LabelApp+"=")
				}
				if !filter["label"][docker.LabelManaged+"=true"] || (appFiltered && !filter["label"][docker.LabelApp+"="+c.App]) {
					continue
				}
				ports := []map[string]any{}
				if c.Port > 0 {
					ports = append(ports, map[string]any{"IP": "127.0.0.1", "PrivatePort": 8080, "PublicPort": c.Port, "Type": "tcp"})
				}
				list = append(list, map[string]any{
					"Id": c.ID, "Names": []string{"/" + c.Name}, "State": c.State, "Ports": ports,
					"Labels": map[string]string{docker.LabelManaged: "true", docker.LabelApp: c.App, docker.LabelRelease: c.Release},
				})
			}
			json.NewEncoder(w).Encode(list)
			return
		case r.Method == http.MethodGet && strings.HasPrefix(path, "/containers/"):
			id, rest, _ := strings.Cut(strings.TrimPrefix(path, "/containers/"), "/")
			for _, c := range containers {
				if c.ID != id {
					continue
				}
				switch rest {
				case "json":
					ports := map[string]any{}
					if c.Port > 0 {
						ports["8080/tcp"] = []map[string]string{{"HostIp": "127.0.0.1", "HostPort": strconv.Itoa(c.Port)}}
					}
					json.NewEncoder(w).Encode(map[string]any{
						"Id": c.ID, "Name": "/" + c.Name, "RestartCount": 0,
						"State":           map[string]any{"Status": c.State, "Running": c.State == "running", "StartedAt": time.Now().Add(-time.Hour).Format(time.RFC3339Nano)},
						"Config":          map[string]any{"Labels": map[string]string{docker.LabelApp: c.App, docker.LabelRelease: c.Release}},
						"NetworkSettings": map[string]any{"Ports": ports},
					})
					return
				case "logs":
					w.Header().Set("Content-Type", "application/vnd.docker.raw-stream")
					return
				}
			}
		}
		t.Errorf("unexpected Docker API call %s %s", r.Method, r.URL)
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"message":"no such thing in the fake engine: %s"}`, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	cli, err := client.NewClientWithOpts(client.WithHost("tcp://"+strings.TrimPrefix(srv.URL, "http://")), client.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// lockedList is a list of strings appended to from several goroutines.
type lockedList struct {
	mu    sync.Mutex
	items []string
}

func (l *lockedList) add(item string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.items = append(l.items, item)
}

func (l *lockedList) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.items...)
}

// instanceServer is an app instance: it answers with its name. It returns its port.
func instanceServer(t *testing.T, name string) int {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, name)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port
}

// closedPort is a loopback port nothing listens on: an instance's port before Docker restarted it.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func upstreamOf(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// reconcileRouter runs a private nginx on a free loopback port and stops it when the test ends.
func reconcileRouter(t *testing.T) *nginx.Router {
	t.Helper()
	if _, err := os.Stat(nginx.DefaultBinary); err != nil {
		t.Fatalf("nginx not installed: %v", err)
	}
	r, err := nginx.NewRouter(nginx.RouterOptions{Prefix: filepath.Join(t.TempDir(), "nginx"), Listen: upstreamOf(closedPort(t))})
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

// routeFiles is an app's site and route files as the router wrote them.
func routeFiles(t *testing.T, r *nginx.Router, appID string) string {
	t.Helper()
	var b strings.Builder
	for _, name := range []string{"app-" + appID + ".conf", "app-" + appID + ".route.json"} {
		data, err := os.ReadFile(filepath.Join(r.Prefix(), "sites", name))
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

// served asks nginx for host and returns the body.
func served(t *testing.T, r *nginx.Router, host string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+r.ProbeAddr()+"/", nil)
	req.Host = host
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// problemLog records the warnings and errors logged through slog's default logger until the
// test ends, and writes every record to stderr. (Not through the previous default handler:
// that one writes through package log, which SetDefault points back at slog.)
type problemLog struct {
	slog.Handler
	mu       *sync.Mutex
	problems *[]string
}

func recordProblems(t *testing.T) func() []string {
	t.Helper()
	previous := slog.Default()
	h := &problemLog{Handler: slog.NewTextHandler(os.Stderr, nil), mu: &sync.Mutex{}, problems: new([]string)}
	slog.SetDefault(slog.New(h))
	t.Cleanup(func() { slog.SetDefault(previous) })
	return func() []string {
		h.mu.Lock()
		defer h.mu.Unlock()
		return append([]string(nil), *h.problems...)
	}
}

func (h *problemLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
		h.mu.Lock()
		*h.problems = append(*h.problems, b.String())
		h.mu.Unlock()
	}
	return h.Handler.Handle(ctx, r)
}

func (h *problemLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &problemLog{Handler: h.Handler.WithAttrs(attrs), mu: h.mu, problems: h.problems}
}

func (h *problemLog) WithGroup(name string) slog.Handler {
	return &problemLog{Handler: h.Handler.WithGroup(name), mu: h.mu, problems: h.problems}
}

// Docker restarted an app's instances on new ports: reconcileRoutes repoints the route at the
// running instances of the routed release, and leaves alone the routes whose instances all run,
// stopped routes, and routes with nothing of their release running.
func TestReconcileRepointsRoutesAtTheRunningInstances(t *testing.T) {
	ctx := context.Background()
	router := reconcileRouter(t)

	new1, new2 := instanceServer(t, "moved-new-1"), instanceServer(t, "moved-new-2")
	oldRelease := instanceServer(t, "moved-old-release")
	steady1, steady2, steady3 := instanceServer(t, "steady-1"), instanceServer(t, "steady-2"), instanceServer(t, "steady-3")
	otherRelease := instanceServer(t, "other-release")
	stoppedApp := instanceServer(t, "stopped-app")

	routes := []nginx.PublishRouteInput{
		// Its instance was restarted by Docker on new ports; the old one is closed.
		{AppID: "moved", Hostname: "moved.apps.localhost", ReleaseID: "r2", Upstreams: []string{upstreamOf(closedPort(t))}},
		// Both its upstreams run (a third instance of a scale is not routed yet): left alone.
		{AppID: "steady", Hostname: "steady.apps.localhost", ReleaseID: "r5", Upstreams: []string{upstreamOf(steady1), upstreamOf(steady2)}},
		// Stopped: left alone although an instance of its release runs.
		{AppID: "stopped", Hostname: "stopped.apps.localhost", ReleaseID: "r7", Stopped: true},
		// Only instances of another release run: they are not used.
		{AppID: "other", Hostname: "other.apps.localhost", ReleaseID: "r3", Upstreams: []string{upstreamOf(closedPort(t))}},
		// Nothing runs yet (Docker is restarting it): left alone.
		{AppID: "down", Hostname: "down.apps.localhost", ReleaseID: "r9", Upstreams: []string{upstreamOf(closedPort(t))}},
	}
	for _, in := range routes {
		if err := router.Publish(ctx, in, nil); err != nil {
			t.Fatalf("publish %s: %v", in.AppID, err)
		}
	}
	cli := fakeEngine(t, []fakeContainer{
		{ID: "c-moved-1", Name: "moved-r2-1", App: "moved", Release: "r2", State: "running", Port: new1},
		{ID: "c-moved-2", Name: "moved-r2-2", App: "moved", Release: "r2", State: "running", Port: new2},
		{ID: "c-moved-3", Name: "moved-r1-1", App: "moved", Release: "r1", State: "running", Port: oldRelease},
		{ID: "c-moved-4", Name: "moved-r2-3", App: "moved", Release: "r2", State: "exited", Port: 0},
		{ID: "c-steady-1", Name: "steady-r5-1", App: "steady", Release: "r5", State: "running", Port: steady1},
		{ID: "c-steady-2", Name: "steady-r5-2", App: "steady", Release: "r5", State: "running", Port: steady2},
		{ID: "c-steady-3", Name: "steady-r5-3", App: "steady", Release: "r5", State: "running", Port: steady3},
		{ID: "c-stopped-1", Name: "stopped-r7-1", App: "stopped", Release: "r7", State: "running", Port: stoppedApp},
		{ID: "c-other-1", Name: "other-r2-1", App: "other", Release: "r2", State: "running", Port: otherRelease},
		{ID: "c-down-1", Name: "down-r9-1", App: "down", Release: "r9", State: "restarting", Port: 0},
	})
	node := docker.NewHousekeeping(&docker.Activities{Client: cli, NodeID: "node-1"})

	before := map[string]string{}
	for _, in := range routes {
		before[in.AppID] = routeFiles(t, router, in.AppID)
	}

	problems := recordProblems(t)
	reconcileRoutes(ctx, router, listed(t, node))

	got, err := router.Routes()
	if err != nil {
		t.Fatal(err)
	}
	byApp := map[string]nginx.PublishRouteInput{}
	for _, rt := range got {
		byApp[rt.AppID] = rt
	}
	moved := byApp["moved"]
	upstreams := append([]string(nil), moved.Upstreams...)
	slices.Sort(upstreams)
	want := []string{upstreamOf(new1), upstreamOf(new2)}
	slices.Sort(want)
	if moved.ReleaseID != "r2" || moved.Stopped || !slices.Equal(upstreams, want) {
		t.Errorf("route of moved: %+v, want release r2 at %v (the running r2 instances only)", moved, want)
	}
	seen := map[string]bool{}
	for i := 0; i < 8; i++ {
		seen[served(t, router, "moved.apps.localhost")] = true
	}
	for body := range seen {
		if body != "moved-new-1" && body != "moved-new-2" {
			t.Errorf("nginx answered %q for moved, want one of its running r2 instances", body)
		}
	}
	for _, app := range []string{"steady", "stopped", "other", "down"} {
		if after := routeFiles(t, router, app); after != before[app] {
			t.Errorf("route of %s changed:\n%s\nwas:\n%s", app, after, before[app])
		}
	}
	if body := served(t, router, "stopped.apps.localhost"); !strings.Contains(body, nginx.StoppedText) {
		t.Errorf("stopped app answers %q, want the stopped page", body)
	}

	// Once the routes match what runs, another pass changes nothing.
	again := map[string]string{}
	for _, in := range routes {
		again[in.AppID] = routeFiles(t, router, in.AppID)
	}
	reconcileRoutes(ctx, router, listed(t, node))
	for _, in := range routes {
		if after := routeFiles(t, router, in.AppID); after != again[in.AppID] {
			t.Errorf("a second pass changed the route of %s:\n%s", in.AppID, after)
		}
	}
	// Leaving a route alone is not a failure: neither pass complained.
	if p := problems(); len(p) > 0 {
		t.Errorf("reconcile logged problems: %q", p)
	}
}

// listed is every instance on the node, as reconcile lists them.
func listed(t *testing.T, node docker.Housekeeping) map[string][]docker.Instance {
	t.Helper()
	byApp, err := node.InstancesByApp(context.Background())
	if err != nil {
		t.Fatalf("list instances: %v", err)
	}
	return byApp
}

// Every pass reports what exists on the node, by app, whatever its state (an exited or
// restarting instance included, so the control plane sees it does not run), to the control
// plane with the node's token; a node without any instance reports an empty list.
func TestReconcileReportsEveryInstanceToTheControlPlane(t *testing.T) {
	ctx := context.Background()
	router := reconcileRouter(t)
	api := newFakeAPI(t)
	report := reportTo(NewAPIClient(api.URL, testNodeToken))

	cli := fakeEngine(t, []fakeContainer{
		{ID: "c-a-1", Name: "sp-a-1", App: "app-a", Release: "r2", State: "running", Port: 40001},
		{ID: "c-a-2", Name: "sp-a-2", App: "app-a", Release: "r2", State: "restarting"},
		{ID: "c-b-1", Name: "sp-b-1", App: "app-b", Release: "r7", State: "exited"},
	})
	reconcile(ctx, router, docker.NewHousekeeping(&docker.Activities{Client: cli, NodeID: "node-1"}), report)
	reconcile(ctx, router, docker.NewHousekeeping(&docker.Activities{Client: fakeEngine(t, nil), NodeID: "node-1"}), report)

	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.reports) != 2 || api.badAuth != 0 {
		t.Fatalf("%d reports (%d refused for their credentials), want 2", len(api.reports), api.badAuth)
	}
	got := api.reports[0].Apps
	for _, list := range got {
		slices.SortFunc(list, func(a, b ReportedInstance) int { return strings.Compare(a.Name, b.Name) })
	}
	want := map[string][]ReportedInstance{
		"app-a": {{Name: "sp-a-1", ReleaseID: "r2", State: "running"}, {Name: "sp-a-2", ReleaseID: "r2", State: "restarting"}},
		"app-b": {{Name: "sp-b-1", ReleaseID: "r7", State: "exited"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("first report: %+v, want %+v", got, want)
	}
	if empty := api.reports[1].Apps; empty == nil || len(empty) != 0 {
		t.Errorf("a node without instances reported %#v, want an empty map (not null: nothing runs)", empty)
	}
}

// The control plane answers a report with the apps it placed on another node (or deleted)
// while this node could not be asked: the node removes their routes, containers and images, and
// nothing else: not its own apps, not an app it did not report.
func TestReconcileRemovesTheAppsTheControlPlaneCallsForeign(t *testing.T) {
	ctx := context.Background()
	router := reconcileRouter(t)
	api := newFakeAPI(t)
	api.foreignApps = []string{"app-b", "app-z"}
	ports := map[string]int{"app-a": instanceServer(t, "app-a"), "app-b": instanceServer(t, "app-b")}
	for app, port := range ports {
		if err := router.Publish(ctx, nginx.PublishRouteInput{AppID: app, Hostname: app + ".apps.localhost", ReleaseID: "r1",
			Upstreams: []string{upstreamOf(port)}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var calls lockedList
	cli := fakeEngineRemoving(t, []fakeContainer{
		{ID: "c-a-1", Name: "sp-a-1", App: "app-a", Release: "r1", State: "running", Port: ports["app-a"]},
		{ID: "c-b-1", Name: "sp-b-1", App: "app-b", Release: "r1", State: "running", Port: ports["app-b"]},
		{ID: "c-b-2", Name: "sp-b-2", App: "app-b", Release: "r1", State: "exited"},
	}, &calls)
	reconcile(ctx, router, docker.NewHousekeeping(&docker.Activities{Client: cli, NodeID: "node-1"}), reportTo(NewAPIClient(api.URL, testNodeToken)))

	got := calls.list()
	slices.Sort(got)
	if want := []string{"remove c-b-1", "remove c-b-2", "remove image sha256:image-of-app-b", "stop c-b-1", "stop c-b-2"}; !slices.Equal(got, want) {
		t.Errorf("engine calls %v, want %v", got, want)
	}
	routes, err := router.Routes()
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 1 || routes[0].AppID != "app-a" {
		t.Errorf("routes left %+v, want app-a's only", routes)
	}
	if body := served(t, router, "app-a.apps.localhost"); body != "app-a" {
		t.Errorf("app-a serves %q", body)
	}
}

// An older control plane answers a report with 204: no app is foreign.
func TestAReportAnsweredWithoutABodyNamesNoForeignApp(t *testing.T) {
	api := newFakeAPI(t)
	answer, err := NewAPIClient(api.URL, testNodeToken).SendInstancesReport(context.Background(), InstancesReport{Apps: map[string][]ReportedInstance{}})
	if err != nil || len(answer.ForeignApps) != 0 {
		t.Errorf("answer %+v, %v", answer, err)
	}
}
