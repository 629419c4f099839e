package nginx

// Old-worker drain: after a reload the retired workers finish their requests, possibly to
// upstreams the new configuration dropped, so the instances behind them wait for them.

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// reload is what a configuration reload left behind: the old workers, which finish the requests
// they had accepted, possibly to upstreams the new configuration dropped.
type reload struct {
	master     int
	oldWorkers []int
}

// drain waits until the old workers are gone, at most drain (DefaultDrain when zero, never more
// than MaxDrain): until then the instances they proxy to must not be stopped.
func (rl reload) drain(ctx context.Context, drain time.Duration, heartbeat func()) error {
	if len(rl.oldWorkers) == 0 {
		return nil
	}
	return waitGone(ctx, rl.master, rl.oldWorkers, drainLimit(drain), heartbeat)
}

// workersOf lists the worker processes of an nginx master (its children), 0 for none.
func workersOf(master int) []int {
	if master == 0 {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var workers []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if parent, _ := procParent(pid); parent == master {
			workers = append(workers, pid)
		}
	}
	return workers
}

// procParent reads a process's parent pid and state from /proc/<pid>/stat.
func procParent(pid int) (int, byte) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0
	}
	// pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
	rest := string(raw[bytes.LastIndexByte(raw, ')')+1:])
	fields := strings.Fields(rest)
	if len(fields) < 2 {
		return 0, 0
	}
	parent, _ := strconv.Atoi(fields[1])
	return parent, fields[0][0]
}

// waitGone waits until the old workers of a reload have finished their requests and exited:
// until then they may still send requests to upstreams the new configuration dropped, so the
// instances behind those must not be stopped yet. Bounded by limit (nginx's own bound is
// worker_shutdown_timeout, MaxDrain). heartbeat (may be nil) is called about once a second.
func waitGone(ctx context.Context, master int, pids []int, limit time.Duration, heartbeat func()) error {
	deadline := time.Now().Add(limit)
	lastBeat := time.Now()
	for _, pid := range pids {
		for {
			// Gone, a zombie, or the pid reused by another process.
			if parent, state := procParent(pid); parent != master || state == 'Z' {
				break
			}
			if time.Now().After(deadline) {
				slog.WarnContext(ctx, "old nginx workers still running after the drain time", "pid", pid, "drain", limit)
				return nil
			}
			if heartbeat != nil && time.Since(lastBeat) > time.Second {
				heartbeat()
				lastBeat = time.Now()
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}
