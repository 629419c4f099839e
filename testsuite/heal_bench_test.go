package testsuite

import (
	"strconv"
	"testing"
	"time"
)

// BenchmarkHeal measures the time from instances vanishing out of band (docker rm -f) to the
// app serving at its full count again, with no API call: all 3 of 3 removed, then 1 of 3
// (`make bench BENCH=Heal`; the target is under 30 s). Each run removes from the same app; it
// is redeployed between runs so the heals' back-off (3 within 10 minutes) never applies.
func BenchmarkHeal(b *testing.B) {
	owner, app, r, _ := liveHelloApp(b, "healbench", "heal bench")
	owner.scale(b, app.ID, 3)
	var all, one time.Duration
	b.ResetTimer()
	for i := range b.N {
		for _, n := range []int{3, 1} {
			start := time.Now()
			gone := removeOutOfBand(b, app.ID, n)
			eventually(b, healWithin, "the app serves again at 3 instances", func() (bool, string) {
				return owner.servesAt(b, app, 3, "heal bench", gone)
			})
			took := time.Since(start)
			if n == 3 {
				all += took
			} else {
				one += took
			}
			owner.endedHeals(b, app.ID)
		}
		b.StopTimer()
		r.write("redeploy.txt", strconv.Itoa(i)) // a new commit, the same answer
		r.commit("redeploy")
		if dep := owner.deploy(b, app.ID); dep.Status != "succeeded" {
			b.Fatalf("redeploy %d: %+v", i, dep)
		}
		b.StartTimer()
	}
	b.ReportMetric(all.Seconds()/float64(b.N), "all-3-s")
	b.ReportMetric(one.Seconds()/float64(b.N), "one-of-3-s")
}
