package docker

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
)

// ListInstances reports every container of the app on this node: what scaling starts from and
// what GET .../instances shows.
func (a *Activities) ListInstances(ctx context.Context, in ListInstancesInput) (ListInstancesResult, error) {
	if err := a.ready(); err != nil {
		return ListInstancesResult{}, err
	}
	if err := checkID("app id", in.AppID); err != nil {
		return ListInstancesResult{}, err
	}
	list, err := a.Client.ContainerList(ctx, container.ListOptions{All: true, Filters: a.ownFilter(
		filters.Arg("label", LabelApp+"="+in.AppID),
	)})
	if err != nil {
		return ListInstancesResult{}, fmt.Errorf("list containers of app %s: %w", in.AppID, err)
	}
	// Each instance is inspected (and probed, up to a second) on its own: a hung instance does
	// not hold up the others' answers.
	described := make([]*Instance, len(list))
	var wg sync.WaitGroup
	for i, c := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			described[i] = a.describeInstance(ctx, c)
		}()
	}
	wg.Wait()
	out := make([]Instance, 0, len(list))
	for _, inst := range described {
		if inst != nil {
			out = append(out, *inst)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return ListInstancesResult{Instances: out}, nil
}

// describeInstance reads one container's state, health and, when it is down or crashing, its
// last output; nil when it was removed meanwhile.
func (a *Activities) describeInstance(ctx context.Context, c container.Summary) *Instance {
	info, err := a.Client.ContainerInspect(ctx, c.ID)
	if err != nil {
		return nil
	}
	inst := Instance{
		Name:        strings.TrimPrefix(info.Name, "/"),
		ContainerID: info.ID,
		ReleaseID:   c.Labels[LabelRelease],
		Restarts:    info.RestartCount,
	}
	if s := info.State; s != nil {
		inst.State, inst.ExitCode = s.Status, s.ExitCode
		inst.StartedAt, _ = time.Parse(time.RFC3339Nano, s.StartedAt)
	}
	if info.NetworkSettings != nil {
		for _, bindings := range info.NetworkSettings.Ports {
			for _, b := range bindings {
				if port, err := strconv.Atoi(b.HostPort); err == nil && b.HostIP == "127.0.0.1" {
					inst.HostPort = port
				}
			}
		}
	}
	if inst.State == "running" && inst.HostPort > 0 {
		probeCtx, cancel := context.WithTimeout(ctx, time.Second)
		inst.Healthy = probe(probeCtx, "http://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(inst.HostPort))+"/")
		cancel()
	}
	inst.Crashing = crashing(inst, time.Now())
	if inst.Crashing || inst.State != "running" {
		inst.LastOutput, _ = a.containerTail(ctx, info.ID)
	}
	return &inst
}

// crashing tells an instance that keeps dying from one that crashed once long ago: Docker's
// restart count never goes down, so a running instance counts only while its current run is
// younger than CrashWindow.
func crashing(inst Instance, now time.Time) bool {
	if inst.Restarts < CrashingAfterRestarts {
		return false
	}
	return inst.State != "running" || now.Sub(inst.StartedAt) < CrashWindow
}
