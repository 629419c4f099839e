package testsuite

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// loadGenerator sends GET / to the node's nginx from a few workers on keep-alive connections,
// each request with the next target's host name, counting every non-2xx answer, connection
// error and (when the target names one) unexpected body as failed. It only talks to loopback,
// and it stops by itself.
type loadGenerator struct {
	targets       []loadTarget
	total, failed atomic.Int64
	stop          chan struct{}
	wg            sync.WaitGroup
}

// loadTarget is one app the load goes to: its host name and, when set, the body it must answer.
type loadTarget struct {
	host, body string
	addr       string // the nginx asked; the stack's local node's when empty
}

func startLoad(host string, workers int) *loadGenerator {
	return startLoadOn([]loadTarget{{host: host}}, workers)
}

func startLoadOn(targets []loadTarget, workers int) *loadGenerator {
	g := &loadGenerator{targets: targets, stop: make(chan struct{})}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	var next atomic.Int64
	for range workers {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			for {
				select {
				case <-g.stop:
					return
				default:
				}
				target := g.targets[int(next.Add(1))%len(g.targets)]
				addr := target.addr
				if addr == "" {
					addr = platform.nginxAddr
				}
				req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
				req.Host = target.host
				resp, err := client.Do(req)
				g.total.Add(1)
				if err != nil {
					g.failed.Add(1)
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode < 200 || resp.StatusCode > 299 || (target.body != "" && string(body) != target.body) {
					g.failed.Add(1)
				}
			}
		}()
	}
	return g
}

// finish keeps the load on until at least minRequests were sent (bounded to a minute), then
// stops it and returns failed and total.
func (g *loadGenerator) finish(minRequests int64) (int64, int64) {
	deadline := time.Now().Add(time.Minute)
	for g.total.Load() < minRequests && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(g.stop)
	g.wg.Wait()
	return g.failed.Load(), g.total.Load()
}

// BenchmarkZeroDowntime drives an app through nginx while the platform redeploys it, rolls it
// back, restarts it, and scales it 1→10 and 10→1, and reports the failed requests out of the
// total for each operation (`make bench`; figures, not assertions: the target is 0 failed out
// of at least 5,000).
func BenchmarkZeroDowntime(b *testing.B) {
	owner, app, r, _ := liveHelloApp(b, "load", "load v1")
	host := app.Name + ".apps.localhost"
	version := 1
	operations := []struct {
		name string
		run  func()
	}{
		{"redeploy", func() {
			version++
			r.commitMessage(fmt.Sprintf("load v%d", version))
			if dep := owner.deploy(b, app.ID); dep.Status != "succeeded" {
				b.Fatalf("redeploy: %+v", dep)
			}
		}},
		{"rollback", func() {
			if status, raw := owner.rollback(b, app.ID, 1); status != http.StatusAccepted {
				b.Fatalf("rollback: %d %s", status, raw)
			}
		}},
		{"restart", func() { owner.operation(b, app.ID, "restart") }},
		{"scale-1-10", func() { owner.scale(b, app.ID, 10) }},
		{"scale-10-1", func() { owner.scale(b, app.ID, 1) }},
	}
	b.ResetTimer()
	for range b.N {
		for _, op := range operations {
			load := startLoad(host, 4)
			started := time.Now()
			op.run()
			took, during := time.Since(started), load.total.Load()
			failed, total := load.finish(5000)
			b.ReportMetric(float64(failed), op.name+"-failed")
			b.ReportMetric(float64(total), op.name+"-requests")
			b.Logf("%-11s %d failed of %d requests, %d of them while the operation ran (%s)",
				op.name, failed, total, during, took.Round(time.Millisecond))
		}
		// Back to the state the next iteration starts from.
		owner.scale(b, app.ID, 1)
	}
}
