package testsuite

import (
	"fmt"
	"net/http"
	"testing"
)

// BenchmarkRedeploy measures one redeploy of a small app through the whole platform: API →
// DeployApp workflow → clone, docker build, hardened start, readiness, nginx switch, removal of
// the previous instance → the new response served through nginx. ns/op is the wall time a
// customer waits for `git push` to be live (`make bench`).
func BenchmarkRedeploy(b *testing.B) {
	owner, app, r, _ := liveHelloApp(b, "bench", "bench 0")
	host := app.Name + ".apps.localhost"
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		b.StopTimer()
		want := fmt.Sprintf("bench %d", i)
		r.commitMessage(want)
		b.StartTimer()
		dep := owner.deploy(b, app.ID)
		b.StopTimer()
		if dep.Status != "succeeded" {
			b.Fatalf("deploy %d: %+v", i, dep)
		}
		if status, body, _ := platform.throughNginx(host); status != http.StatusOK || body != want {
			b.Fatalf("after deploy %d nginx answers %d %q", i, status, body)
		}
		b.StartTimer()
	}
}
