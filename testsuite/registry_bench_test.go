package testsuite

import (
	"regexp"
	"sort"
	"strconv"
	"testing"
	"time"
)

var pushedIn = regexp.MustCompile(`Pushed \S+ in ([0-9.]+)(ms|s)`)

// BenchmarkRegistry measures what the platform registry adds to a deploy and to a rollback
// (`make bench BENCH=Registry`): a deploy's push (from its build log) against the whole
// deploy, and a rollback whose node no longer holds the release's image (it pulls the digest)
// against one that does. Medians of 5.
func BenchmarkRegistry(b *testing.B) {
	owner, app, r, _ := liveHelloApp(b, "regbench", "reg v0")
	var deploys, pushes, withPull, withoutPull []time.Duration
	b.ResetTimer()
	for i := range 5 * b.N {
		r.commitMessage("reg v" + strconv.Itoa(i+1))
		dep := owner.deploy(b, app.ID)
		if dep.Status != "succeeded" {
			b.Fatalf("deploy: %+v", dep)
		}
		owner.waitIdle(b, app.ID)
		figures, err := deployFigures(dep.WorkflowID)
		if err != nil {
			b.Fatal(err)
		}
		m := pushedIn.FindStringSubmatch(owner.logs(b, app.ID, dep.ID))
		if m == nil {
			b.Fatalf("the build log of %s says nothing of a push", dep.ID)
		}
		push, _ := time.ParseDuration(m[1] + m[2])
		deploys, pushes = append(deploys, figures.total), append(pushes, push)

		// Back to the previous release, its image on the node, then again with it removed.
		for _, pull := range []bool{false, true} {
			_, previous := currentRelease(b, owner, app.ID)
			if pull {
				r.commitMessage("reg again " + strconv.Itoa(i))
				owner.deploy(b, app.ID)
				owner.waitIdle(b, app.ID)
				removeImage(b, previous)
			}
			version := latestVersion(b, owner, app.ID) - 1
			workflowID := owner.rollbackWorkflow(b, app.ID, version)
			figures, err := deployFigures(workflowID)
			if err != nil {
				b.Fatal(err)
			}
			if pull {
				withPull = append(withPull, figures.total)
			} else {
				withoutPull = append(withoutPull, figures.total)
			}
		}
	}
	deploy, push := median(deploys), median(pushes)
	b.ReportMetric(float64(push.Milliseconds()), "push-ms")
	b.ReportMetric(deploy.Seconds(), "deploy-s")
	b.ReportMetric(deploy.Seconds()/(deploy-push).Seconds(), "push-ratio")
	b.ReportMetric(median(withPull).Seconds(), "rollback-pull-s")
	b.ReportMetric(median(withoutPull).Seconds(), "rollback-local-s")
	b.ReportMetric(median(withPull).Seconds()/median(withoutPull).Seconds(), "pull-ratio")
}

func median(values []time.Duration) time.Duration {
	sorted := append([]time.Duration(nil), values...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	return sorted[len(sorted)/2]
}

// latestVersion is the app's newest release version.
func latestVersion(t testing.TB, owner customer, appID string) int {
	t.Helper()
	var releases struct {
		Items []struct {
			Version int `json:"version"`
		}
	}
	platform.call("GET", "/api/paas/applications/"+appID+"/releases", owner.token, nil, &releases)
	latest := 0
	for _, rel := range releases.Items {
		latest = max(latest, rel.Version)
	}
	return latest
}

// rollbackWorkflow rolls the app back to version, waits for it, and returns its workflow id.
func (c customer) rollbackWorkflow(t testing.TB, appID string, version int) string {
	t.Helper()
	op := c.request(t, "POST", "/api/paas/applications/"+appID+"/rollback", map[string]int{"release": version})
	c.waitWorkflow(t, op.WorkflowID)
	c.waitIdle(t, appID)
	return op.WorkflowID
}
