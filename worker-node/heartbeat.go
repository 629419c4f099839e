package workernode

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"
)

// Version is the agent's version, reported in heartbeats; set with -ldflags "-X".
var Version = "dev"

// heartbeatLoop reports the node alive, with its machine's figures, every interval until ctx
// ends. A failed report is logged and the loop goes on: the control plane counts a node
// offline after missed heartbeats.
func heartbeatLoop(ctx context.Context, api *APIClient, interval time.Duration, probe *machineProbe) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		sendHeartbeat(ctx, api, interval, probe)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func sendHeartbeat(ctx context.Context, api *APIClient, interval time.Duration, probe *machineProbe) {
	ctx, cancel := context.WithTimeout(ctx, interval)
	defer cancel()
	hb := probe.heartbeat(ctx)
	hb.IntervalSeconds = intervalSeconds(interval)
	err := api.SendHeartbeat(ctx, hb)
	var se *StatusError
	switch {
	case err == nil:
	case errors.Is(err, context.Canceled):
	case errors.As(err, &se) && (se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden) && strings.Contains(se.Body, "revoked"):
		slog.ErrorContext(ctx, "heartbeat: an administrator revoked this node: it is cut off the platform for good", "status", se.Status)
	case errors.As(err, &se) && (se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden):
		slog.ErrorContext(ctx, "heartbeat: the API rejected this node's token; remove agent.json and register the node again", "status", se.Status)
	default:
		slog.WarnContext(ctx, "heartbeat failed", "err", err)
	}
}

// intervalSeconds rounds up: the control plane's offline window (3 intervals) must never be
// shorter than the agent's real rhythm.
func intervalSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// machineProbe reads what a heartbeat reports about the machine. It keeps the previous CPU
// reading, so it belongs to one heartbeat loop.
type machineProbe struct {
	info    SystemInfo
	procDir string // /proc, or a test's copy
	// containers counts this node's running containers.
	containers func(context.Context) (int, error)
	// dockerRoot is the engine's data root (DockerRootDir), asked until it answers once.
	dockerRoot func(context.Context) (string, error)

	engineRoot string
	prevCPU    *cpuTimes
	warned     map[string]bool
}

// heartbeat reads every figure it can; one it cannot read is left out of the heartbeat (and
// logged the first time), never reported as zero.
func (p *machineProbe) heartbeat(ctx context.Context) Heartbeat {
	hb := Heartbeat{CPUs: p.info.CPUs, MemoryMB: p.info.MemoryMB, AgentVersion: Version}
	if n, err := p.containers(ctx); p.ok(ctx, "containers", err) {
		hb.Containers = &n
	}
	if cur, err := readCPUTimes(p.procDir); p.ok(ctx, "cpu", err) {
		if p.prevCPU != nil {
			if pct, ok := cpuPercent(*p.prevCPU, cur); ok {
				pct = math.Round(pct*100) / 100
				hb.CPUPercent = &pct
			}
		}
		p.prevCPU = &cur
	}
	if mem, err := readMemInfo(p.procDir); p.ok(ctx, "memory", err) {
		used, total := mem.UsedMB(), mem.TotalMB
		hb.MemoryUsedMB, hb.MemoryTotalMB = &used, &total
	}
	if load, err := readLoadAvg(p.procDir); p.ok(ctx, "load", err) {
		hb.Load1, hb.Load5, hb.Load15 = &load.One, &load.Five, &load.Fifteen
	}
	if disk, _, err := readDiskUsage(dockerDiskCandidates(p.dataRoot(ctx))); p.ok(ctx, "disk", err) {
		hb.DiskUsedMB, hb.DiskTotalMB = &disk.UsedMB, &disk.TotalMB
	}
	return hb
}

// dataRoot is Docker's data root as the engine reports it, or "" while the engine does not
// answer (the candidates then fall back to the default path).
func (p *machineProbe) dataRoot(ctx context.Context) string {
	if p.engineRoot == "" && p.dockerRoot != nil {
		if root, err := p.dockerRoot(ctx); err == nil {
			p.engineRoot = root
		}
	}
	return p.engineRoot
}

// ok says whether err is nil, logging a figure's failure once until it reads again: a machine
// without one file would otherwise log it every heartbeat.
func (p *machineProbe) ok(ctx context.Context, figure string, err error) bool {
	if p.warned == nil {
		p.warned = map[string]bool{}
	}
	if err == nil {
		delete(p.warned, figure)
		return true
	}
	if !p.warned[figure] && ctx.Err() == nil {
		p.warned[figure] = true
		slog.WarnContext(ctx, "heartbeat: cannot read a figure; it is left out of heartbeats", "figure", figure, "err", err)
	}
	return false
}
