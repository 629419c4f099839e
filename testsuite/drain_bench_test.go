package testsuite

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// BenchmarkDrain measures draining a node of 10 running apps (`make bench BENCH=Drain`): the
// apps are deployed on node a alone, node b joins the region, and a is drained; the figure is
// the DrainNode workflow from its start to its end (each app moved in turn: started on b from
// its release's digest, routed by b's nginx, removed from a).
func BenchmarkDrain(b *testing.B) {
	for range b.N {
		region := uniqueName("drainbench")
		a := addNode(b, region+"-a", region)
		owner := newCustomer(b, uniqueName("drainbench")+"@example.com")
		var apps []application
		for i := range 10 {
			name := uniqueName(fmt.Sprintf("drb%d", i))
			status, app, raw := owner.createAppIn(b, name, newHelloRepo(b, name, name).URL, region, "starter")
			if status != http.StatusCreated {
				b.Fatalf("create: %d %s", status, raw)
			}
			if dep := owner.deploy(b, app.ID); dep.Status != "succeeded" {
				b.Fatalf("deploy: %+v", dep)
			}
			apps = append(apps, app)
		}
		other := addNode(b, region+"-b", region)

		b.ResetTimer()
		started := time.Now()
		owner.waitWorkflow(b, nodeWorkflow(b, a.ID, "drain", nil))
		took := time.Since(started)
		b.StopTimer()
		for _, app := range apps {
			if owner.nodeOf(b, app.ID) != other.ID {
				b.Errorf("%s was not moved", app.Name)
			}
		}
		b.ReportMetric(took.Seconds(), "drain-10-s")
		b.ReportMetric(took.Seconds()/10, "per-app-s")
		for _, app := range apps {
			owner.deleteAndWait(b, app.ID)
		}
		a.retire(b)
		other.retire(b)
	}
}
