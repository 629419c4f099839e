package workernode

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// SystemInfo is what the node reports about its machine.
type SystemInfo struct {
	Hostname string
	CPUs     int
	MemoryMB int64
}

func readSystemInfo() SystemInfo {
	host, _ := os.Hostname()
	return SystemInfo{Hostname: host, CPUs: runtime.NumCPU(), MemoryMB: memTotalMB()}
}

// memTotalMB reads MemTotal from /proc/meminfo; 0 when unknown.
func memTotalMB() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0
			}
			return kb / 1024
		}
	}
	return 0
}
