package docker

import (
	"context"
	"fmt"
	"strings"

	"github.com/docker/docker/api/types/container"
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
