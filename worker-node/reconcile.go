package workernode

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/activities/node/nginx"
)

// ReconcileInterval is how often the node checks its routes against the containers that run.
const ReconcileInterval = 5 * time.Second

// reconcileLoop keeps nginx pointed at the instances that actually run, and gives back the
// networks of organizations that have no container left on the node. Docker restarts an
// app's containers by itself after a crash, a dockerd restart or a reboot (restart policy
// unless-stopped), but on new loopback ports: a route whose upstreams no longer all belong to
// running instances of its release is repointed at the ones that do, with no API call.
func reconcileLoop(ctx context.Context, router *nginx.Router, node docker.Housekeeping) {
	ticker := time.NewTicker(ReconcileInterval)
	defer ticker.Stop()
	for {
		reconcileRoutes(ctx, router, node)
		removeOrphanNetworks(ctx, node)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func reconcileRoutes(ctx context.Context, router *nginx.Router, node docker.Housekeeping) {
	routes, err := router.Routes()
	if err != nil {
		slog.WarnContext(ctx, "read routes", "err", err)
		return
	}
	if len(routes) == 0 {
		return
	}
	// One list of every instance on the node for all routes: a node with hundreds of apps
	// must not cost hundreds of Engine calls every few seconds.
	byApp, err := node.InstancesByApp(ctx)
	if err != nil {
		slog.WarnContext(ctx, "list instances", "err", err)
		return
	}
	for _, route := range routes {
		if !route.Serves() {
			continue
		}
		running := runningUpstreams(byApp[route.AppID], route.ReleaseID)
		// Leave a route alone while all its upstreams run (a rollout or a scale may be adding
		// instances that are not ready yet), and when nothing runs yet (Docker is restarting them).
		if len(running) == 0 || allIn(route.Upstreams, running) {
			continue
		}
		changed, err := router.Repoint(ctx, route.AppID, route.ReleaseID, running)
		if err != nil {
			slog.ErrorContext(ctx, "repoint route", "app_id", route.AppID, "err", err)
			continue
		}
		if changed {
			slog.InfoContext(ctx, "repointed route at the running instances", "app_id", route.AppID,
				"release", route.ReleaseID, "from", route.Upstreams, "to", running)
		}
	}
}

func runningUpstreams(list []docker.Instance, release string) []string {
	var upstreams []string
	for _, inst := range list {
		if inst.ReleaseID == release && inst.State == "running" && inst.HostPort > 0 {
			upstreams = append(upstreams, "127.0.0.1:"+strconv.Itoa(inst.HostPort))
		}
	}
	return upstreams
}

func allIn(upstreams, running []string) bool {
	for _, u := range upstreams {
		if !slices.Contains(running, u) {
			return false
		}
	}
	return true
}

// removeOrphanNetworks removes this node's organization networks that no container uses,
// left behind when an agent died between removing an organization's last container and its
// network, or by a rollout that failed before its first instance. Only networks labelled as
// this node's are looked at; other networks on the engine are never touched.
func removeOrphanNetworks(ctx context.Context, node docker.Housekeeping) {
	removed, err := node.RemoveOrphanNetworks(ctx, docker.OrphanNetworkAge)
	if err != nil {
		slog.WarnContext(ctx, "remove orphaned networks", "err", err)
	}
	if len(removed) > 0 {
		slog.InfoContext(ctx, "removed orphaned networks", "networks", removed)
	}
}
