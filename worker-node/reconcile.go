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

// reconcileLoop keeps nginx pointed at the instances that actually run, reports them to the
// control plane, and gives back the networks of organizations that have no container left on
// the node. Docker restarts an app's containers by itself after a crash, a dockerd restart or a
// reboot (restart policy unless-stopped), but on new loopback ports: a route whose upstreams no
// longer all belong to running instances of its release is repointed at the ones that do, with
// no API call. Instances that are gone (removed out of band, a wiped engine) are the control
// plane's to bring back: it compares the report with what each app should run and queues a heal.
func reconcileLoop(ctx context.Context, router *nginx.Router, node housekeeping, report reportFunc) {
	ticker := time.NewTicker(ReconcileInterval)
	defer ticker.Stop()
	for {
		reconcile(ctx, router, node, report)
		removeOrphanNetworks(ctx, node)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// housekeeping is what the reconcile loop asks of the node's Docker Engine
// (docker.Housekeeping).
type housekeeping interface {
	InstancesByApp(ctx context.Context) (map[string][]docker.Instance, error)
	RemoveOrphanNetworks(ctx context.Context, minAge time.Duration) ([]string, error)
	RemoveApp(ctx context.Context, appID string) ([]string, error)
}

// reportFunc sends what runs on the node to the control plane and returns the apps the
// control plane answered are not this node's (foreign).
type reportFunc func(ctx context.Context, byApp map[string][]docker.Instance) []string

// reconcile lists every instance on the node with one Engine call (a node with hundreds of
// apps must not cost hundreds of calls every few seconds), reports them, removes the apps the
// control plane says are not this node's any more, and repoints routes.
func reconcile(ctx context.Context, router *nginx.Router, node housekeeping, report reportFunc) {
	byApp, err := node.InstancesByApp(ctx)
	if err != nil {
		slog.WarnContext(ctx, "list instances", "err", err)
		return
	}
	if report != nil {
		for _, appID := range report(ctx, byApp) {
			if _, listed := byApp[appID]; !listed {
				continue // only what this node reported is ever removed
			}
			removeForeignApp(ctx, router, node, appID)
			delete(byApp, appID)
		}
	}
	reconcileRoutes(ctx, router, byApp)
}

// removeForeignApp removes an app the control plane placed on another node, or deleted,
// while this node could not be asked (it was evacuated while offline): its route first, so
// nginx stops answering for the app's host name here, then its containers.
func removeForeignApp(ctx context.Context, router *nginx.Router, node housekeeping, appID string) {
	log := slog.With("app_id", appID)
	if err := router.Remove(ctx, appID, 0, nil); err != nil {
		log.ErrorContext(ctx, "remove the route of an app placed on another node", "err", err)
	}
	removed, err := node.RemoveApp(ctx, appID)
	if err != nil {
		log.ErrorContext(ctx, "remove the containers of an app placed on another node", "removed", removed, "err", err)
		return
	}
	log.InfoContext(ctx, "removed an app the control plane placed on another node (or deleted)", "containers", removed)
}

func reconcileRoutes(ctx context.Context, router *nginx.Router, byApp map[string][]docker.Instance) {
	routes, err := router.Routes()
	if err != nil {
		slog.WarnContext(ctx, "read routes", "err", err)
		return
	}
	for _, route := range routes {
		if !route.Serves() {
			continue
		}
		running := runningUpstreams(byApp[route.AppID], route.ReleaseID)
		// Leave a route alone while all its upstreams run (a rollout or a scale may be adding
		// instances that are not ready yet), and when nothing runs (Docker is restarting them,
		// or the control plane's heal starts new ones and routes to them).
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

// reportTo sends each listing to the control plane. A failed report is logged and the next
// one (ReconcileInterval later) replaces it: only the latest matters.
func reportTo(api *APIClient) reportFunc {
	return func(ctx context.Context, byApp map[string][]docker.Instance) []string {
		ctx, cancel := context.WithTimeout(ctx, ReconcileInterval)
		defer cancel()
		answer, err := api.SendInstancesReport(ctx, instancesReport(byApp))
		if err != nil && ctx.Err() == nil {
			slog.WarnContext(ctx, "report instances", "err", err)
		}
		return answer.ForeignApps
	}
}

func instancesReport(byApp map[string][]docker.Instance) InstancesReport {
	r := InstancesReport{Apps: make(map[string][]ReportedInstance, len(byApp))}
	for app, list := range byApp {
		reported := make([]ReportedInstance, len(list))
		for i, inst := range list {
			reported[i] = ReportedInstance{Name: inst.Name, ReleaseID: inst.ReleaseID, State: inst.State}
		}
		r.Apps[app] = reported
	}
	return r
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
func removeOrphanNetworks(ctx context.Context, node housekeeping) {
	removed, err := node.RemoveOrphanNetworks(ctx, docker.OrphanNetworkAge)
	if err != nil {
		slog.WarnContext(ctx, "remove orphaned networks", "err", err)
	}
	if len(removed) > 0 {
		slog.InfoContext(ctx, "removed orphaned networks", "networks", removed)
	}
}
