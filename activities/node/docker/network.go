package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"go.temporal.io/sdk/temporal"
)

// ErrTypePoolExhausted is the non-retryable error of a deploy that found no free subnet in
// the node's tenant network pool.
const ErrTypePoolExhausted = "NetworkPoolExhausted"

// orgNetworkPrefix starts the name of every organization network.
const orgNetworkPrefix = "skypanel-org-"

// OrgNetworkName is the organization's own bridge network: its apps and databases reach each
// other on it, and Docker isolates it from every other organization's network.
func OrgNetworkName(orgID string) string { return orgNetworkPrefix + orgID }

// Test hooks that order a start against a removal; nil outside tests.
var (
	hookAfterUnusedCheck func(orgID string) // removal: the network was found unused
	hookBeforeCreate     func(orgID string) // start: the network is there, the container not yet
)

// orgNetworks guards the life of each organization's network on this node. Creating a
// container on the network holds the organization's lock shared; removing the network holds
// it exclusively and only once no container of the organization is left, so a network is
// never removed between its creation and the container that needs it.
type orgNetworks struct {
	mu    sync.Mutex
	locks map[string]*sync.RWMutex
	// allocate serializes subnet choices, so two organizations never pick the same subnet.
	allocate sync.Mutex
}

func (n *orgNetworks) lock(orgID string) *sync.RWMutex {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.locks == nil {
		n.locks = make(map[string]*sync.RWMutex)
	}
	l, ok := n.locks[orgID]
	if !ok {
		l = &sync.RWMutex{}
		n.locks[orgID] = l
	}
	return l
}

// EnsureNetwork creates the organization's bridge network unless it exists. StartInstance
// makes sure of it again, under the organization's lock, right before it creates a container.
func (a *Activities) EnsureNetwork(ctx context.Context, in EnsureNetworkInput) (EnsureNetworkResult, error) {
	if err := a.ready(); err != nil {
		return EnsureNetworkResult{}, err
	}
	if err := checkID("organization id", in.OrgID); err != nil {
		return EnsureNetworkResult{}, err
	}
	l := a.networks.lock(in.OrgID)
	l.RLock()
	defer l.RUnlock()
	name, err := a.ensureOrgNetwork(ctx, in.OrgID)
	if err != nil {
		return EnsureNetworkResult{}, err
	}
	return EnsureNetworkResult{Network: name}, nil
}

// ensureOrgNetwork creates the organization's network with a free subnet of the node's pool,
// unless it exists. The caller holds the organization's lock (shared).
func (a *Activities) ensureOrgNetwork(ctx context.Context, orgID string) (string, error) {
	name := OrgNetworkName(orgID)
	existing, err := a.Client.NetworkInspect(ctx, name, network.InspectOptions{})
	if err == nil {
		if existing.Name != name {
			return "", fmt.Errorf("network lookup %s found %s", name, existing.Name)
		}
		return name, nil
	}
	if !errdefs.IsNotFound(err) {
		return "", fmt.Errorf("inspect network %s: %w", name, err)
	}

	a.networks.allocate.Lock()
	defer a.networks.allocate.Unlock()
	pool := a.subnetPool()
	var tried []netip.Prefix
	// Another process on this engine (a second agent, an operator) may take a subnet between
	// our look and our create: the engine refuses the overlap, and the next free one is tried.
	for attempt := 0; attempt < 5; attempt++ {
		taken, err := a.takenSubnets(ctx)
		if err != nil {
			return "", err
		}
		subnet, err := pool.Allocate(append(taken, tried...))
		if errors.Is(err, ErrPoolExhausted) {
			slog.ErrorContext(ctx, "tenant network pool exhausted", "org_id", orgID, "pool", pool.Range.String(), "err", err)
			return "", temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("cannot create the network of organization %s on node %s: %v", orgID, a.NodeID, err), ErrTypePoolExhausted, nil)
		}
		if err != nil {
			return "", err
		}
		resp, err := a.Client.NetworkCreate(ctx, name, network.CreateOptions{
			Driver: "bridge",
			IPAM:   &network.IPAM{Config: []network.IPAMConfig{{Subnet: subnet.String()}}},
			Labels: map[string]string{LabelManaged: "true", LabelOrg: orgID, LabelNode: a.NodeID},
		})
		switch {
		case err == nil:
			slog.InfoContext(ctx, "created network", "org_id", orgID, "network", name, "network_id", resp.ID, "subnet", subnet.String())
			return name, nil
		case errdefs.IsConflict(err) && strings.Contains(err.Error(), name):
			// Created meanwhile by an earlier attempt that lost its answer.
			return name, nil
		case strings.Contains(err.Error(), "overlaps"):
			tried = append(tried, subnet)
			continue
		default:
			return "", fmt.Errorf("create network %s with subnet %s: %w", name, subnet, err)
		}
	}
	return "", fmt.Errorf("create network %s: every subnet tried was taken meanwhile: %v", name, tried)
}

// takenSubnets are the subnets the node's pool must avoid: every Docker network's (the
// platform's and anyone else's) and the host's own routes.
func (a *Activities) takenSubnets(ctx context.Context) ([]netip.Prefix, error) {
	nets, err := a.Client.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	var taken []netip.Prefix
	for _, n := range nets {
		for _, c := range n.IPAM.Config {
			if p, err := netip.ParsePrefix(c.Subnet); err == nil {
				taken = append(taken, p)
			}
		}
	}
	routes, err := HostRoutes()
	if err != nil {
		return nil, err
	}
	for _, r := range routes {
		taken = append(taken, r.Destination)
	}
	return taken, nil
}

func (a *Activities) subnetPool() SubnetPool {
	if a.Pool.Range.IsValid() {
		return a.Pool
	}
	return DefaultSubnetPool()
}

// releaseOrgNetworks removes the networks of the given organizations that no container uses
// any more: an organization's last container has left the node.
func (a *Activities) releaseOrgNetworks(ctx context.Context, orgIDs []string) {
	for _, orgID := range orgIDs {
		if orgID == "" {
			continue
		}
		if _, err := a.removeOrgNetworkIfUnused(ctx, orgID, 0); err != nil {
			slog.WarnContext(ctx, "remove unused network", "org_id", orgID, "err", err)
		}
	}
}

// removeOrgNetworkIfUnused removes the organization's network when no container of the
// organization exists on the engine (running or not) and the network is older than minAge.
func (a *Activities) removeOrgNetworkIfUnused(ctx context.Context, orgID string, minAge time.Duration) (bool, error) {
	l := a.networks.lock(orgID)
	l.Lock()
	defer l.Unlock()
	name := OrgNetworkName(orgID)
	info, err := a.Client.NetworkInspect(ctx, name, network.InspectOptions{})
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("inspect network %s: %w", name, err)
	}
	if info.Labels[LabelManaged] != "true" || info.Labels[LabelOrg] != orgID {
		return false, nil // not ours
	}
	if minAge > 0 && time.Since(info.Created) < minAge {
		return false, nil
	}
	left, err := a.Client.ContainerList(ctx, container.ListOptions{All: true, Limit: 1, Filters: filters.NewArgs(
		filters.Arg("label", LabelOrg+"="+orgID),
	)})
	if err != nil {
		return false, fmt.Errorf("list containers of organization %s: %w", orgID, err)
	}
	if len(left) > 0 || len(info.Containers) > 0 {
		return false, nil
	}
	if hookAfterUnusedCheck != nil {
		hookAfterUnusedCheck(orgID)
	}
	if err := a.Client.NetworkRemove(ctx, info.ID); err != nil {
		if errdefs.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("remove network %s: %w", name, err)
	}
	subnet := ""
	if len(info.IPAM.Config) > 0 {
		subnet = info.IPAM.Config[0].Subnet
	}
	slog.InfoContext(ctx, "removed network: the organization has no container left on this node", "org_id", orgID, "network", name, "subnet", subnet)
	return true, nil
}

// OrphanNetworkAge is how long an organization network may exist without a container before
// the node's reconcile removes it: long enough for the rollout that created it to start its
// first instance.
const OrphanNetworkAge = time.Minute

// RemoveOrphanNetworks removes this node's organization networks (by label: managed by
// SkyPanel, of this node) that no container uses; other networks are never touched. It
// returns the names removed.
func (h Housekeeping) RemoveOrphanNetworks(ctx context.Context, minAge time.Duration) ([]string, error) {
	a := h.a
	if err := a.ready(); err != nil {
		return nil, err
	}
	nets, err := a.Client.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", LabelManaged+"=true"),
		filters.Arg("label", LabelNode+"="+a.NodeID),
	)})
	if err != nil {
		return nil, fmt.Errorf("list the node's networks: %w", err)
	}
	// One list of the containers for all networks; each candidate is checked again under its
	// organization's lock before it is removed.
	containers, err := a.Client.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelOrg),
	)})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	inUse := make(map[string]bool, len(containers))
	for _, c := range containers {
		inUse[c.Labels[LabelOrg]] = true
	}
	var removed []string
	var errs []error
	for _, n := range nets {
		orgID := n.Labels[LabelOrg]
		if orgID == "" || n.Name != OrgNetworkName(orgID) || inUse[orgID] || time.Since(n.Created) < minAge {
			continue
		}
		ok, err := a.removeOrgNetworkIfUnused(ctx, orgID, minAge)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			removed = append(removed, n.Name)
		}
	}
	return removed, errors.Join(errs...)
}
