package nginx

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowUpstream answers "/slow" only once released (each request signals entered first), and
// anything else at once.
type slowUpstream struct {
	addr    string
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newSlowUpstream(t *testing.T, name string) *slowUpstream {
	t.Helper()
	u := &slowUpstream{entered: make(chan struct{}, 16), release: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			u.entered <- struct{}{}
			select {
			case <-u.release:
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	}))
	// Cleanups run last in, first out: release any held request before the server closes.
	t.Cleanup(srv.Close)
	t.Cleanup(u.Release)
	u.addr = strings.TrimPrefix(srv.URL, "http://")
	return u
}

func (u *slowUpstream) Release() { u.once.Do(func() { close(u.release) }) }

type heldResponse struct {
	status  int
	release string
	body    string
	err     error
}

// hold sends GET /slow for host through nginx and waits until the upstream has the request;
// the response arrives on the returned channel once the upstream is released.
func hold(t *testing.T, r *Router, host string, u *slowUpstream) <-chan heldResponse {
	t.Helper()
	out := make(chan heldResponse, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, "http://"+r.ProbeAddr()+"/slow", nil)
		req.Host = host
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			out <- heldResponse{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		out <- heldResponse{status: resp.StatusCode, release: resp.Header.Get(ReleaseHeader), body: string(body), err: err}
	}()
	select {
	case <-u.entered:
	case res := <-out:
		t.Fatalf("the held request ended at once: %+v", res)
	case <-time.After(30 * time.Second):
		t.Fatal("the held request never reached the upstream")
	}
	return out
}

// alive lists the pids still running as workers of master.
func alive(master int, pids []int) []int {
	var out []int
	for _, pid := range pids {
		if parent, state := procParent(pid); parent == master && state != 'Z' {
			out = append(out, pid)
		}
	}
	return out
}

func servedRelease(t *testing.T, r *Router, host string) string {
	t.Helper()
	resp, _ := get(t, r, host)
	return resp.Header.Get(ReleaseHeader)
}

// After a reload the old worker that still proxies a request to the previous upstream keeps
// the drain waiting; once the request is done the worker exits and the drain returns.
func TestDrainWaitsForOldWorkersToFinishTheirRequests(t *testing.T) {
	r := startRouter(t)
	ctx := context.Background()
	v1 := newSlowUpstream(t, "v1")
	in := PublishRouteInput{AppID: "app-1", Hostname: "drain.apps.localhost", ReleaseID: "rel-1", Upstreams: []string{v1.addr}}
	if err := r.Publish(ctx, in, nil); err != nil {
		t.Fatal(err)
	}
	held := hold(t, r, in.Hostname, v1)

	in.ReleaseID, in.Upstreams = "rel-2", []string{upstream(t, "v2")}
	reloaded, err := r.publish(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(reloaded.oldWorkers) == 0 || reloaded.master != r.masterPID() {
		t.Fatalf("the reload retired no workers: %+v (master %d)", reloaded, r.masterPID())
	}
	// A reload (SIGHUP) takes effect shortly after the signal, as Publish waits for: from then
	// new requests get the new release while the old worker still holds its request.
	if err := r.waitHeader(ctx, in.Hostname, ReleaseHeader, "rel-2", nil); err != nil {
		t.Fatalf("new requests: %v", err)
	}

	var beats atomic.Int64
	drained := make(chan error, 1)
	go func() { drained <- reloaded.drain(ctx, MaxDrain, func() { beats.Add(1) }) }()

	// The drain heartbeats while it waits (about once a second): after two of them it is still
	// waiting, because the old worker still serves the held request.
	deadline := time.Now().Add(60 * time.Second)
	for beats.Load() < 2 {
		select {
		case err := <-drained:
			t.Fatalf("the drain returned (%v) while an old worker still served a request (old workers alive: %v)",
				err, alive(reloaded.master, reloaded.oldWorkers))
		case res := <-held:
			t.Fatalf("the held request ended before it was released: %+v", res)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the drain neither returned nor heartbeat")
		}
	}
	if len(alive(reloaded.master, reloaded.oldWorkers)) == 0 {
		t.Fatal("no old worker left although a request is held")
	}

	v1.Release()
	select {
	case err := <-drained:
		if err != nil {
			t.Fatalf("drain: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the drain did not return after the held request was done (old workers alive: %v)", alive(reloaded.master, reloaded.oldWorkers))
	}
	if left := alive(reloaded.master, reloaded.oldWorkers); len(left) != 0 {
		t.Errorf("the drain returned while old workers %v still run", left)
	}
	res := <-held
	if res.err != nil || res.status != http.StatusOK || res.release != "rel-1" || res.body != "v1 /slow" {
		t.Errorf("the held request: %+v, want 200 from rel-1's upstream", res)
	}
}

// The drain is bounded: at its limit it returns even though an old worker still serves a
// request (nginx itself lets it finish).
func TestDrainReturnsAtItsLimit(t *testing.T) {
	r := startRouter(t)
	ctx := context.Background()
	v1 := newSlowUpstream(t, "v1")
	in := PublishRouteInput{AppID: "app-1", Hostname: "drain.apps.localhost", ReleaseID: "rel-1", Upstreams: []string{v1.addr}}
	if err := r.Publish(ctx, in, nil); err != nil {
		t.Fatal(err)
	}
	master := r.masterPID()
	workers := workersOf(master)
	held := hold(t, r, in.Hostname, v1)

	// Through Publish: its Drain is the route's drain limit.
	in.ReleaseID, in.Upstreams, in.Drain = "rel-2", []string{upstream(t, "v2")}, 500*time.Millisecond
	published := make(chan error, 1)
	go func() { published <- r.Publish(ctx, in, nil) }()
	select {
	case err := <-published:
		if err != nil {
			t.Fatal(err)
		}
	case res := <-held:
		t.Fatalf("the held request ended before it was released: %+v", res)
	case <-time.After(60 * time.Second):
		t.Fatal("Publish with a 500ms drain did not return while a request was held")
	}
	// The request is still held, so the worker serving it still runs: the limit ended the wait.
	if len(alive(master, workers)) == 0 {
		t.Fatal("no old worker runs: the drain did not have to end at its limit")
	}
	if got := servedRelease(t, r, in.Hostname); got != "rel-2" {
		t.Errorf("new requests get release %q, want rel-2", got)
	}

	v1.Release()
	select {
	case res := <-held:
		if res.err != nil || res.status != http.StatusOK || res.release != "rel-1" || res.body != "v1 /slow" {
			t.Errorf("the held request: %+v, want 200 from rel-1's upstream", res)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the held request did not finish once released")
	}
}

// Repoint changes the upstreams of the release a route serves, never of an older one: a deploy
// that published a newer release meanwhile wins.
func TestRepointNeverOverridesANewerRelease(t *testing.T) {
	r := startRouter(t)
	ctx := context.Background()
	const host = "repoint.apps.localhost"
	a1, b1, stale := upstream(t, "a1"), upstream(t, "b1"), upstream(t, "stale")

	if err := r.Publish(ctx, PublishRouteInput{AppID: "app-1", Hostname: host, ReleaseID: "rel-a", Upstreams: []string{a1}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Publish(ctx, PublishRouteInput{AppID: "app-1", Hostname: host, ReleaseID: "rel-b", Upstreams: []string{b1}}, nil); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, r)

	// A reconcile that read release A before B was published.
	changed, err := r.Repoint(ctx, "app-1", "rel-a", []string{stale})
	if err != nil || changed {
		t.Fatalf("Repoint of the older release: changed %v, %v; want no change", changed, err)
	}
	if after := snapshot(t, r); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("Repoint of the older release rewrote the sites:\n got %v\nwant %v", after, before)
	}
	routes, err := r.Routes()
	if err != nil || len(routes) != 1 || routes[0].ReleaseID != "rel-b" || fmt.Sprint(routes[0].Upstreams) != fmt.Sprint([]string{b1}) {
		t.Fatalf("routes %+v (%v), want rel-b at %s", routes, err, b1)
	}
	resp, body := get(t, r, host)
	if resp.Header.Get(ReleaseHeader) != "rel-b" || !strings.HasPrefix(body, "b1 ") {
		t.Fatalf("served %q %q, want rel-b from b1", resp.Header.Get(ReleaseHeader), body)
	}

	// An unknown app and a stopped route are not repointed either.
	if changed, err := r.Repoint(ctx, "app-2", "rel-b", []string{stale}); err != nil || changed {
		t.Errorf("Repoint of an app without a route: changed %v, %v", changed, err)
	}

	// The release the route serves is repointed.
	b2 := upstream(t, "b2")
	changed, err = r.Repoint(ctx, "app-1", "rel-b", []string{b2})
	if err != nil || !changed {
		t.Fatalf("Repoint of the current release: changed %v, %v; want a change", changed, err)
	}
	routes, _ = r.Routes()
	if len(routes) != 1 || routes[0].ReleaseID != "rel-b" || fmt.Sprint(routes[0].Upstreams) != fmt.Sprint([]string{b2}) {
		t.Errorf("routes %+v, want rel-b at %s", routes, b2)
	}
	resp, body = get(t, r, host)
	if resp.Header.Get(ReleaseHeader) != "rel-b" || !strings.HasPrefix(body, "b2 ") {
		t.Errorf("served %q %q, want rel-b from b2", resp.Header.Get(ReleaseHeader), body)
	}

	if err := r.Publish(ctx, PublishRouteInput{AppID: "app-1", Hostname: host, ReleaseID: "rel-c", Mode: RouteStopped}, nil); err != nil {
		t.Fatal(err)
	}
	stopped := snapshot(t, r)
	if changed, err := r.Repoint(ctx, "app-1", "rel-c", []string{b2}); err != nil || changed {
		t.Errorf("Repoint of a stopped route: changed %v, %v", changed, err)
	}
	if after := snapshot(t, r); fmt.Sprint(after) != fmt.Sprint(stopped) {
		t.Errorf("Repoint of a stopped route rewrote the sites: %v", after)
	}
}
