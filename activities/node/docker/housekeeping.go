package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
)

// Housekeeping is what the node agent does on its own between activities, every few seconds:
// read the state of every instance at once, and give back networks nobody uses. It is not an
// activity (the worker registers Activities only), and each call costs a fixed number of
// Engine calls whatever the number of apps on the node.
type Housekeeping struct{ a *Activities }

// NewHousekeeping returns the housekeeping of the node whose Engine a drives.
func NewHousekeeping(a *Activities) Housekeeping { return Housekeeping{a: a} }

// InstancesByApp lists every app container of the node with one Engine call, grouped by app:
// name, release, state and loopback port. Unlike ListInstances it neither inspects nor probes
// them, so its cost does not grow with the number of containers.
func (h Housekeeping) InstancesByApp(ctx context.Context) (map[string][]Instance, error) {
	if err := h.a.ready(); err != nil {
		return nil, err
	}
	list, err := h.a.Client.ContainerList(ctx, container.ListOptions{All: true, Filters: h.a.ownFilter()})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	byApp := make(map[string][]Instance)
	for _, c := range list {
		app := c.Labels[LabelApp]
		if app == "" {
			continue
		}
		inst := Instance{ContainerID: c.ID, ReleaseID: c.Labels[LabelRelease], State: c.State}
		if len(c.Names) > 0 {
			inst.Name = strings.TrimPrefix(c.Names[0], "/")
		}
		for _, p := range c.Ports {
			if p.IP == "127.0.0.1" && p.PublicPort > 0 {
				inst.HostPort = int(p.PublicPort)
			}
		}
		byApp[app] = append(byApp[app], inst)
	}
	return byApp, nil
}

// RemoveApp stops and removes every container of the app on this node, and returns their
// names: the agent's cleanup of an app the control plane placed on another node, or deleted,
// while this node could not be asked (an evacuated node that came back). Only this node's
// containers are listed; the organization's network, once unused, goes with the orphan sweep.
func (h Housekeeping) RemoveApp(ctx context.Context, appID string) ([]string, error) {
	a := h.a
	if err := a.ready(); err != nil {
		return nil, err
	}
	if err := checkID("app id", appID); err != nil {
		return nil, err
	}
	list, err := a.Client.ContainerList(ctx, container.ListOptions{All: true, Filters: a.ownFilter(
		filters.Arg("label", LabelApp+"="+appID),
	)})
	if err != nil {
		return nil, fmt.Errorf("list containers of app %s: %w", appID, err)
	}
	secs := int(DefaultStopGrace / time.Second)
	var removed []string
	var errs []error
	for _, c := range selectInstances(list, RemoveInstancesInput{AppID: appID}) {
		if err := a.Client.ContainerStop(ctx, c.ID, container.StopOptions{Timeout: &secs}); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("stop %s: %w", c.name, err))
			continue
		}
		if err := a.Client.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove %s: %w", c.name, err))
			continue
		}
		removed = append(removed, c.name)
	}
	// Its images go too: the node will not run the app again (the registry keeps its releases).
	if len(errs) == 0 {
		if err := a.removeAppImages(ctx, appID, nil); err != nil {
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}
