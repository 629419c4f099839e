package workernode

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// A /proc/stat of a two-CPU machine, as the kernel writes it.
const sampleProcStat = `cpu  1797664 0 899440 1335711 57390 0 35721 56175 0 0
cpu0 905174 0 433343 700274 13395 0 12595 27171 0 0
cpu1 892490 0 466096 635437 43994 0 23125 29004 0 0
intr 287398718 0 9 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
ctxt 612357311
btime 1764470000
processes 1209931
procs_running 3
procs_blocked 0
`

func TestParseProcStatReadsTheAggregateLine(t *testing.T) {
	got, err := parseProcStat(sampleProcStat)
	if err != nil {
		t.Fatal(err)
	}
	// user+nice+system+idle+iowait+irq+softirq+steal; guest (already in user) is not added.
	total := uint64(1797664 + 0 + 899440 + 1335711 + 57390 + 0 + 35721 + 56175)
	idle := uint64(1335711 + 57390)
	if got.total != total || got.busy != total-idle {
		t.Errorf("got %+v, want total %d busy %d", got, total, total-idle)
	}
	// A guest's time counts once: guest columns full, the result unchanged.
	withGuest := strings.Replace(sampleProcStat, "56175 0 0", "56175 9999 9999", 1)
	if g, _ := parseProcStat(withGuest); g != got {
		t.Errorf("guest time counted twice: %+v, want %+v", g, got)
	}
	// Older kernels write fewer columns.
	if g, err := parseProcStat("cpu  10 0 10 80\n"); err != nil || g.total != 100 || g.busy != 20 {
		t.Errorf("four columns: %+v %v", g, err)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5\n", "cpu  1 2\n", "cpu  1 x 3 4 5\n"} {
		if _, err := parseProcStat(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestCPUPercentIsTheBusyShareBetweenReadings(t *testing.T) {
	prev := cpuTimes{busy: 1000, total: 4000}
	if p, ok := cpuPercent(prev, cpuTimes{busy: 1300, total: 5000}); !ok || p != 30 {
		t.Errorf("300 of 1000 ticks busy: %v %v, want 30", p, ok)
	}
	if p, ok := cpuPercent(prev, cpuTimes{busy: 2000, total: 5000}); !ok || p != 100 {
		t.Errorf("all busy: %v %v", p, ok)
	}
	if _, ok := cpuPercent(prev, prev); ok {
		t.Error("no time passed: want no figure")
	}
	if _, ok := cpuPercent(prev, cpuTimes{busy: 10, total: 100}); ok {
		t.Error("counters went back: want no figure")
	}
}

const sampleMemInfo = `MemTotal:       24683656 kB
MemFree:        18896384 kB
MemAvailable:   23426552 kB
Buffers:           45204 kB
Cached:          4345200 kB
SwapTotal:             0 kB
`

func TestParseMemInfoUsesMemAvailable(t *testing.T) {
	m, err := parseMemInfo(sampleMemInfo)
	if err != nil {
		t.Fatal(err)
	}
	if m.TotalMB != 24683656/1024 || m.AvailableMB != 23426552/1024 {
		t.Errorf("got %+v", m)
	}
	if used := m.UsedMB(); used != 24683656/1024-23426552/1024 {
		t.Errorf("used %d", used)
	}
	for _, bad := range []string{"", "MemTotal: 100 kB\n", "MemAvailable: 100 kB\n", "MemTotal: x kB\nMemAvailable: 1 kB\n"} {
		if _, err := parseMemInfo(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestParseLoadAvg(t *testing.T) {
	l, err := parseLoadAvg("8.10 4.42 3.13 9/840 32400\n")
	if err != nil || l != (loadAvg{8.10, 4.42, 3.13}) {
		t.Errorf("got %+v %v", l, err)
	}
	for _, bad := range []string{"", "0.1 0.2", "a b c 1/2 3", "-1 0 0 1/2 3"} {
		if _, err := parseLoadAvg(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestDiskUsageIsDfArithmetic(t *testing.T) {
	// 100 GiB of 4 KiB fragments, a quarter free.
	blocks := uint64(100 << 30 / 4096)
	st := syscall.Statfs_t{Blocks: blocks, Bfree: blocks / 4, Bavail: blocks/4 - 1000, Frsize: 4096, Bsize: 1 << 20}
	if got := diskUsageOf(st); got != (diskUsage{UsedMB: 75 << 10, TotalMB: 100 << 10}) {
		t.Errorf("got %+v", got)
	}
	st.Frsize = 0 // a filesystem without a fragment size: the block size counts
	st.Bsize = 4096
	if got := diskUsageOf(st); got.TotalMB != 100<<10 {
		t.Errorf("without Frsize: %+v", got)
	}
}

func TestDiskFallsBackFromTheEngineRootToTheDefaultThenRoot(t *testing.T) {
	if got := dockerDiskCandidates("/srv/docker"); strings.Join(got, ",") != "/srv/docker,/var/lib/docker,/" {
		t.Errorf("candidates %v", got)
	}
	if got := dockerDiskCandidates(""); strings.Join(got, ",") != "/var/lib/docker,/" {
		t.Errorf("no engine answer: %v", got)
	}
	usage, path, err := readDiskUsage([]string{"/nonexistent/docker-root", t.TempDir()})
	if err != nil || path == "/nonexistent/docker-root" || usage.TotalMB <= 0 || usage.UsedMB > usage.TotalMB {
		t.Errorf("fallback: %+v %q %v", usage, path, err)
	}
	if _, _, err := readDiskUsage([]string{"/nonexistent/a"}); err == nil {
		t.Error("nothing readable: want an error")
	}
}

func TestIntervalSecondsRoundsUp(t *testing.T) {
	for d, want := range map[time.Duration]int{time.Second: 1, 1500 * time.Millisecond: 2, 10 * time.Second: 10, 200 * time.Millisecond: 1} {
		if got := intervalSeconds(d); got != want {
			t.Errorf("%s: %d, want %d", d, got, want)
		}
	}
}
