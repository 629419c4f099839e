package docker

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/network"
)

// OrgNetworkName is the organization's own bridge network: its apps and databases reach each
// other on it, and Docker isolates it from every other organization's network.
func OrgNetworkName(orgID string) string { return "skypanel-org-" + orgID }

// EnsureNetwork creates the organization's bridge network unless it exists.
func (a *Activities) EnsureNetwork(ctx context.Context, in EnsureNetworkInput) (EnsureNetworkResult, error) {
	if err := a.ready(); err != nil {
		return EnsureNetworkResult{}, err
	}
	if err := checkID("organization id", in.OrgID); err != nil {
		return EnsureNetworkResult{}, err
	}
	name := OrgNetworkName(in.OrgID)
	logger := slog.With("org_id", in.OrgID, "network", name)

	a.networkMu.Lock()
	defer a.networkMu.Unlock()

	existing, err := a.Client.NetworkInspect(ctx, name, network.InspectOptions{})
	if err == nil {
		if existing.Name != name {
			return EnsureNetworkResult{}, fmt.Errorf("network lookup %s found %s", name, existing.Name)
		}
		return EnsureNetworkResult{Network: name}, nil
	}
	if !errdefs.IsNotFound(err) {
		return EnsureNetworkResult{}, fmt.Errorf("inspect network %s: %w", name, err)
	}

	resp, err := a.Client.NetworkCreate(ctx, name, network.CreateOptions{
		Driver: "bridge",
		Labels: map[string]string{LabelManaged: "true", LabelOrg: in.OrgID, LabelNode: a.NodeID},
	})
	if err != nil {
		// Another agent process (or an earlier attempt that lost its answer) created it first.
		if errdefs.IsConflict(err) {
			return EnsureNetworkResult{Network: name}, nil
		}
		return EnsureNetworkResult{}, fmt.Errorf("create network %s: %w", name, err)
	}
	logger.InfoContext(ctx, "created network", "network_id", resp.ID)
	return EnsureNetworkResult{Network: name}, nil
}
