package testsuite

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// minRequestsDuring is how many requests each kind of operation must have served while it ran.
const minRequestsDuring = 1000

// TestZeroDowntime sends requests through nginx, from 4 clients on keep-alive connections,
// while the platform redeploys an app, rolls it back, restarts it, and scales it 1→3→1. Not
// one request may fail. An operation that ends before 1,000 requests were sent while it ran
// is repeated (a fast scale-down takes a fraction of a second) until its runs together have
// seen at least 1,000, at most ten times.
func TestZeroDowntime(t *testing.T) {
	owner, app, r, _ := liveHelloApp(t, "zerodt", "zero v1")
	host := app.Name + ".apps.localhost"
	version, rollbackTo := 1, 0
	operations := []struct {
		name string
		run  func()
	}{
		{"redeploy", func() {
			version++
			r.commitMessage(fmt.Sprintf("zero v%d", version))
			if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
				t.Fatalf("redeploy: %+v", dep)
			}
		}},
		{"rollback", func() {
			// Back and forth between the first two releases.
			rollbackTo = rollbackTo%2 + 1
			if status, raw := owner.rollback(t, app.ID, rollbackTo); status != http.StatusAccepted {
				t.Fatalf("rollback to v%d: %d %s", rollbackTo, status, raw)
			}
		}},
		{"restart", func() { owner.operation(t, app.ID, "restart") }},
		{"scale 1→3→1", func() {
			owner.scale(t, app.ID, 3)
			owner.scale(t, app.ID, 1)
		}},
	}
	for _, op := range operations {
		var during, failed, total int64
		runs := 0
		for during < minRequestsDuring && runs < 10 {
			load := startLoad(host, 4)
			// Requests already on their way belong to the operation too: start it with the load up.
			eventually(t, 10*time.Second, "the load is flowing", func() (bool, string) {
				return load.total.Load() > 10, fmt.Sprintf("%d requests", load.total.Load())
			})
			before := load.total.Load()
			op.run()
			during += load.total.Load() - before
			f, n := load.finish(0)
			failed += f
			total += n
			runs++
		}
		t.Logf("%-12s %d failed of %d requests, %d of them while it ran (%d runs)", op.name, failed, total, during, runs)
		if failed != 0 {
			t.Errorf("%s: %d of %d requests failed", op.name, failed, total)
		}
		if during < minRequestsDuring {
			t.Errorf("%s: only %d requests were sent while it ran in %d runs, want at least %d", op.name, during, runs, minRequestsDuring)
		}
	}
}
