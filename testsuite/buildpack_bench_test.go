package testsuite

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
)

// BenchmarkNodeRebuild measures what the Node.js buildpack's dependency layer saves: the cold
// build of an Express app (its package.json is new to the node, so npm ci runs) and the build
// of the next commit, which changes only a file that is not a dependency manifest (npm ci comes
// from the layer cache). The builds are timed by the BuildImage activity in each deployment's
// Temporal history (started → completed); the whole deployments (API → served through nginx)
// are reported too. Custom metrics, not assertions:
//
//	cold-s, cached-s      the two builds, in seconds
//	cold/cached           their ratio
//	cold-deploy-s, cached-deploy-s   the two deployments end to end
func BenchmarkNodeRebuild(b *testing.B) {
	needBaseImages(b)
	owner := newCustomer(b, uniqueName("nodebench")+"@example.com")
	var cold, cached, coldDeploy, cachedDeploy time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		name := uniqueName("nodebench")
		// A package.json the layer cache has never seen (its description is unique), so the
		// first build installs the dependencies for real.
		pkg := strings.Replace(readFixture(b, "node-express/package.json"),
			`"description": "`, fmt.Sprintf(`"description": "benchmark %s: `, name), 1)
		r := newBuildpackRepo(b, name, "node-express", map[string]string{"message.txt": "bench v1", "package.json": pkg})
		app := owner.createAppWithRuntime(b, name, r.URL, "node")
		b.StartTimer()

		start := time.Now()
		first := owner.deploy(b, app.ID)
		coldDeploy += time.Since(start)
		b.StopTimer()
		if first.Status != "succeeded" {
			b.Fatalf("cold deploy: %+v\n%s", first, owner.logs(b, app.ID, first.ID))
		}
		cold += buildDuration(b, first.WorkflowID)

		r.commitMessage("bench v2")
		b.StartTimer()
		start = time.Now()
		second := owner.deploy(b, app.ID)
		cachedDeploy += time.Since(start)
		b.StopTimer()
		if second.Status != "succeeded" {
			b.Fatalf("cached deploy: %+v\n%s", second, owner.logs(b, app.ID, second.ID))
		}
		if status, body, _ := platform.throughNginx(name + ".apps.localhost"); status != http.StatusOK || body != "bench v2" {
			b.Fatalf("after the second deploy nginx answers %d %q", status, body)
		}
		cached += buildDuration(b, second.WorkflowID)
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(cold.Seconds()/n, "cold-s")
	b.ReportMetric(cached.Seconds()/n, "cached-s")
	if cached > 0 {
		b.ReportMetric(cold.Seconds()/cached.Seconds(), "cold/cached")
	}
	b.ReportMetric(coldDeploy.Seconds()/n, "cold-deploy-s")
	b.ReportMetric(cachedDeploy.Seconds()/n, "cached-deploy-s")
}

// buildDuration is how long the deployment's successful BuildImage attempt ran, from its
// workflow's history.
func buildDuration(b *testing.B, workflowID string) time.Duration {
	b.Helper()
	iter := platform.temporal.GetWorkflowHistory(context.Background(), workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	scheduled := map[int64]bool{}
	started := map[int64]time.Time{}
	for iter.HasNext() {
		e, err := iter.Next()
		if err != nil {
			b.Fatalf("history of %s: %v", workflowID, err)
		}
		switch e.EventType {
		case enums.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			if e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == "BuildImage" {
				scheduled[e.EventId] = true
			}
		case enums.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			if id := e.GetActivityTaskStartedEventAttributes().GetScheduledEventId(); scheduled[id] {
				started[id] = e.GetEventTime().AsTime()
			}
		case enums.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			if id := e.GetActivityTaskCompletedEventAttributes().GetScheduledEventId(); scheduled[id] {
				return e.GetEventTime().AsTime().Sub(started[id])
			}
		}
	}
	b.Fatalf("no completed BuildImage in the history of %s", workflowID)
	return 0
}
