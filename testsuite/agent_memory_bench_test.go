package testsuite

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// residentKiB reads a process's resident set size from /proc.
func residentKiB(pid int) int64 { return procStatusKiB(pid, "VmRSS:") }

// procStatusKiB is a kB field of /proc/<pid>/status (VmRSS:, VmHWM:), 0 when unreadable.
func procStatusKiB(pid int, field string) int64 {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if fields := strings.Fields(line); len(fields) >= 2 && fields[0] == field {
			kib, _ := strconv.ParseInt(fields[1], 10, 64)
			return kib
		}
	}
	return 0
}

// BenchmarkAgentMemory reports the node agent's resident memory idle and its peak while it
// clones and builds an app (`make bench`).
func BenchmarkAgentMemory(b *testing.B) {
	pid := findProcess(b, "skypanel-agent", platform.dataDir)
	idle := residentKiB(pid)
	owner := newCustomer(b, uniqueName("mem")+"@example.com")
	name := uniqueName("mem")
	r := slowBuildRepo(b, name)
	app := owner.createApp(b, name, r.URL)
	b.ResetTimer()
	for range b.N {
		var peak atomic.Int64
		done := make(chan struct{})
		go func() {
			for {
				if kib := residentKiB(pid); kib > peak.Load() {
					peak.Store(kib)
				}
				select {
				case <-done:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
		dep := owner.deploy(b, app.ID)
		close(done)
		if dep.Status != "succeeded" {
			b.Fatalf("deploy: %+v", dep)
		}
		b.ReportMetric(float64(idle)/1024, "idle-MiB")
		b.ReportMetric(float64(peak.Load())/1024, "building-MiB")
	}
}
