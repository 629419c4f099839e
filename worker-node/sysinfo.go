package workernode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// SystemInfo is what the node reports about its machine when it registers.
type SystemInfo struct {
	Hostname string
	CPUs     int
	MemoryMB int64
}

func readSystemInfo() SystemInfo {
	host, _ := os.Hostname()
	info := SystemInfo{Hostname: host, CPUs: runtime.NumCPU()}
	if mem, err := readMemInfo("/proc"); err == nil {
		info.MemoryMB = mem.TotalMB
	}
	return info
}

// cpuTimes are the machine's CPU counters so far (the "cpu" line of /proc/stat), in ticks.
type cpuTimes struct {
	busy, total uint64
}

// parseProcStat reads the aggregate "cpu" line of /proc/stat: user nice system idle iowait irq
// softirq steal [guest guest_nice]. Idle and iowait count as idle; guest time is already part
// of user and nice, so it is not added again.
func parseProcStat(text string) (cpuTimes, error) {
	for line := range strings.Lines(text) {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "cpu" {
			continue
		}
		if len(fields) < 5 {
			return cpuTimes{}, fmt.Errorf("/proc/stat: cpu line %q has too few fields", strings.TrimSpace(line))
		}
		var t cpuTimes
		var idle uint64
		for i, f := range fields[1:min(len(fields), 9)] {
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return cpuTimes{}, fmt.Errorf("/proc/stat: cpu field %d %q: %w", i+1, f, err)
			}
			t.total += v
			if i == 3 || i == 4 { // idle, iowait
				idle += v
			}
		}
		t.busy = t.total - idle
		return t, nil
	}
	return cpuTimes{}, errors.New("/proc/stat: no cpu line")
}

// cpuPercent is how busy all CPUs were between two readings; false when no time passed or the
// counters went back (they only reset with the machine).
func cpuPercent(prev, cur cpuTimes) (float64, bool) {
	if cur.total <= prev.total || cur.busy < prev.busy {
		return 0, false
	}
	p := 100 * float64(cur.busy-prev.busy) / float64(cur.total-prev.total)
	return min(p, 100), true
}

// memInfo is the machine's memory in MiB.
type memInfo struct {
	TotalMB, AvailableMB int64
}

// UsedMB is what the kernel could not hand out without swapping or dropping something.
func (m memInfo) UsedMB() int64 { return m.TotalMB - m.AvailableMB }

// parseMemInfo reads MemTotal and MemAvailable (kB) from /proc/meminfo.
func parseMemInfo(text string) (memInfo, error) {
	var m memInfo
	var haveTotal, haveAvailable bool
	for line := range strings.Lines(text) {
		fields := strings.Fields(line)
		if len(fields) < 2 || (fields[0] != "MemTotal:" && fields[0] != "MemAvailable:") {
			continue
		}
		kb, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil || kb < 0 {
			return memInfo{}, fmt.Errorf("/proc/meminfo: %s %q is not a size", fields[0], fields[1])
		}
		if fields[0] == "MemTotal:" {
			m.TotalMB, haveTotal = kb/1024, true
		} else {
			m.AvailableMB, haveAvailable = kb/1024, true
		}
	}
	if !haveTotal || !haveAvailable {
		return memInfo{}, errors.New("/proc/meminfo: MemTotal or MemAvailable missing")
	}
	if m.AvailableMB > m.TotalMB {
		m.AvailableMB = m.TotalMB
	}
	return m, nil
}

// loadAvg is the run queue averaged over 1, 5 and 15 minutes.
type loadAvg struct {
	One, Five, Fifteen float64
}

// parseLoadAvg reads the first three fields of /proc/loadavg ("0.52 0.58 0.59 2/1234 5678").
func parseLoadAvg(text string) (loadAvg, error) {
	fields := strings.Fields(text)
	if len(fields) < 3 {
		return loadAvg{}, fmt.Errorf("/proc/loadavg: %q has too few fields", strings.TrimSpace(text))
	}
	var l [3]float64
	for i := range l {
		v, err := strconv.ParseFloat(fields[i], 64)
		if err != nil || v < 0 {
			return loadAvg{}, fmt.Errorf("/proc/loadavg: %q is not a load", fields[i])
		}
		l[i] = v
	}
	return loadAvg{l[0], l[1], l[2]}, nil
}

// diskUsage is one filesystem's size and use in MiB.
type diskUsage struct {
	UsedMB, TotalMB int64
}

// diskUsageOf is df's arithmetic: blocks of the fragment size, used = all − free (including
// the blocks reserved for root, which the engine, running as root, may fill).
func diskUsageOf(st syscall.Statfs_t) diskUsage {
	unit := uint64(st.Frsize)
	if unit == 0 {
		unit = uint64(st.Bsize)
	}
	const mib = 1 << 20
	return diskUsage{
		UsedMB:  int64((st.Blocks - st.Bfree) * unit / mib),
		TotalMB: int64(st.Blocks * unit / mib),
	}
}

// dockerDiskCandidates are where Docker's data may live, best first: the engine's own answer
// (empty when it did not give one), its default, the root filesystem.
func dockerDiskCandidates(engineRoot string) []string {
	var paths []string
	if engineRoot != "" {
		paths = append(paths, engineRoot)
	}
	return append(paths, "/var/lib/docker", "/")
}

// readDiskUsage measures the first of paths statfs can read, and says which it was.
func readDiskUsage(paths []string) (diskUsage, string, error) {
	var errs []error
	for _, p := range paths {
		var st syscall.Statfs_t
		if err := syscall.Statfs(p, &st); err != nil {
			errs = append(errs, fmt.Errorf("statfs %s: %w", p, err))
			continue
		}
		return diskUsageOf(st), p, nil
	}
	return diskUsage{}, "", errors.Join(errs...)
}

func readProcFile(procDir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(procDir, name))
	return string(b), err
}

func readCPUTimes(procDir string) (cpuTimes, error) {
	text, err := readProcFile(procDir, "stat")
	if err != nil {
		return cpuTimes{}, err
	}
	return parseProcStat(text)
}

func readMemInfo(procDir string) (memInfo, error) {
	text, err := readProcFile(procDir, "meminfo")
	if err != nil {
		return memInfo{}, err
	}
	return parseMemInfo(text)
}

func readLoadAvg(procDir string) (loadAvg, error) {
	text, err := readProcFile(procDir, "loadavg")
	if err != nil {
		return loadAvg{}, err
	}
	return parseLoadAvg(text)
}
