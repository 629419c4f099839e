package workflows

import (
	"strconv"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/skypanel/skypanel/activities/control/store"
	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/activities/node/nginx"
)

// rollout is the zero-downtime switch shared by deploy, rollback, start and restart: start the
// new instances, wait until every one answers, point nginx at them, and only then remove the
// others.
type rollout struct {
	Target    store.AppTarget
	ReleaseID string
	Image     string
	Instances []string
	// DeploymentID, when the rollout is a deploy's, receives a failing instance's last output
	// in its build log.
	DeploymentID string
}

// run starts r.Instances. On failure the new instances are removed and the previous ones keep
// serving.
func (r rollout) run(ctx workflow.Context) error {
	ports, err := startInstances(ctx, r.Target, r.ReleaseID, r.Image, r.Instances, r.DeploymentID)
	if err == nil {
		err = publishRoute(ctx, r.Target, r.ReleaseID, ports)
	}
	if err != nil {
		removeInstances(ctx, r.Target, r.Instances)
		return err
	}
	// nginx now serves the new instances: the old ones can go. A failure here leaves extra
	// containers running but the release is live, so it is logged, not fatal.
	if removeErr := drainInstances(ctx, r.Target, r.Instances); removeErr != nil {
		workflow.GetLogger(ctx).Error("remove previous instances", "app_id", r.Target.AppID, "error", removeErr)
	}
	return nil
}

// startInstances starts the named hardened instances of a release side by side and waits until
// every one answers HTTP; it returns their loopback ports. The caller removes them on failure.
func startInstances(ctx workflow.Context, t store.AppTarget, releaseID, image string, names []string, deploymentID string) ([]int, error) {
	shortCtx := nodeContext(ctx, t.NodeID, 2*time.Minute, 0, 5)
	var network docker.EnsureNetworkResult
	if err := workflow.ExecuteActivity(shortCtx, dockerActs.EnsureNetwork, docker.EnsureNetworkInput{OrgID: t.OrgID}).Get(ctx, &network); err != nil {
		return nil, err
	}
	startInput := func(name string) docker.StartInstanceInput {
		return docker.StartInstanceInput{
			AppID: t.AppID, OrgID: t.OrgID, ReleaseID: releaseID, DeploymentID: deploymentID, InstanceName: name, Image: image,
			Network: network.Network, CPUMillis: t.CPUMillis, MemoryMB: t.MemoryMB, Port: AppPort, Env: t.Env,
			RuntimeKind: t.RuntimeKind, RootFS: t.RootFS, StackRootFS: t.StackRootFS,
		}
	}
	readyInput := func(name string, port int) docker.WaitReadyInput {
		return docker.WaitReadyInput{AppID: t.AppID, DeploymentID: deploymentID, InstanceName: name, HostPort: port, Timeout: ReadyTimeout}
	}
	// Runs started before each instance was probed as soon as it started, as they did: every
	// start first, then every probe.
	if workflow.GetVersion(ctx, "pipeline-ready", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return startThenProbeAll(ctx, t, names, startInput, readyInput)
	}
	ports := make([]int, len(names))
	errs := make([]error, len(names))
	wg := workflow.NewWaitGroup(ctx)
	for i, name := range names {
		wg.Add(1)
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer wg.Done()
			var started docker.StartInstanceResult
			startCtx := nodeContext(ctx, t.NodeID, 2*time.Minute, 0, 5)
			if errs[i] = workflow.ExecuteActivity(startCtx, dockerActs.StartInstance, startInput(name)).Get(ctx, &started); errs[i] != nil {
				return
			}
			ports[i] = started.HostPort
			readyCtx := nodeContext(ctx, t.NodeID, ReadyTimeout+time.Minute, 15*time.Second, 1)
			errs[i] = workflow.ExecuteActivity(readyCtx, dockerActs.WaitReady, readyInput(name, started.HostPort)).Get(ctx, nil)
		})
	}
	wg.Wait(ctx)
	for _, err := range errs {
		if err != nil {
			return ports, err
		}
	}
	return ports, nil
}

// startThenProbeAll is startInstances before "pipeline-ready": all starts, then all probes.
func startThenProbeAll(ctx workflow.Context, t store.AppTarget, names []string,
	startInput func(string) docker.StartInstanceInput, readyInput func(string, int) docker.WaitReadyInput) ([]int, error) {
	shortCtx := nodeContext(ctx, t.NodeID, 2*time.Minute, 0, 5)
	starts := make([]workflow.Future, len(names))
	for i, name := range names {
		starts[i] = workflow.ExecuteActivity(shortCtx, dockerActs.StartInstance, startInput(name))
	}
	ports := make([]int, len(names))
	var firstErr error
	for i, f := range starts {
		var started docker.StartInstanceResult
		if err := f.Get(ctx, &started); err != nil && firstErr == nil {
			firstErr = err
		}
		ports[i] = started.HostPort
	}
	if firstErr != nil {
		return nil, firstErr
	}
	readyCtx := nodeContext(ctx, t.NodeID, ReadyTimeout+time.Minute, 15*time.Second, 1)
	waits := make([]workflow.Future, len(names))
	for i, name := range names {
		waits[i] = workflow.ExecuteActivity(readyCtx, dockerActs.WaitReady, readyInput(name, ports[i]))
	}
	for _, f := range waits {
		if err := f.Get(ctx, nil); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return ports, firstErr
}

// publishRoute points the app's host name at exactly these loopback ports.
func publishRoute(ctx workflow.Context, t store.AppTarget, releaseID string, ports []int) error {
	upstreams := make([]string, len(ports))
	for i, port := range ports {
		upstreams[i] = loopbackUpstream(port)
	}
	routeCtx := nodeContext(ctx, t.NodeID, 2*time.Minute+drainGrace(t), 45*time.Second, 3)
	return workflow.ExecuteActivity(routeCtx, nginxActs.PublishRoute, nginx.PublishRouteInput{
		AppID: t.AppID, Hostname: t.Hostname, ReleaseID: releaseID, Upstreams: upstreams, Drain: drainGrace(t),
		MaxConnections: t.MaxConnections, ReadTimeout: time.Duration(t.ReadTimeoutSeconds) * time.Second, Domains: t.Domains,
	}).Get(ctx, nil)
}

// drainInstances stops and removes every instance of the app but those in keep, giving each
// the app's drain grace to finish its requests after SIGTERM. Call it once nginx no longer
// routes to them (publishRoute has waited for nginx's old workers by then).
func drainInstances(ctx workflow.Context, t store.AppTarget, keep []string) error {
	return workflow.ExecuteActivity(nodeContext(ctx, t.NodeID, 2*time.Minute+drainGrace(t), 0, 5), dockerActs.RemoveInstances,
		docker.RemoveInstancesInput{AppID: t.AppID, Keep: keep, GracePeriod: drainGrace(t)}).Get(ctx, nil)
}

// drainGrace is how long the app's old instances get to finish their requests (drain_seconds).
func drainGrace(t store.AppTarget) time.Duration {
	if t.DrainSeconds <= 0 {
		return nginx.DefaultDrain
	}
	return time.Duration(t.DrainSeconds) * time.Second
}

// removeInstances removes exactly the named instances, whatever happened to the workflow.
func removeInstances(ctx workflow.Context, t store.AppTarget, names []string) {
	ctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	err := workflow.ExecuteActivity(nodeContext(ctx, t.NodeID, 2*time.Minute, 0, 3), dockerActs.RemoveInstances,
		docker.RemoveInstancesInput{AppID: t.AppID, Names: names}).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Error("remove instances", "app_id", t.AppID, "instances", names, "error", err)
	}
}

// AppPort is the port every app must listen on, given to it as $PORT (Heroku's convention).
const AppPort = 8080

func loopbackUpstream(hostPort int) string {
	return "127.0.0.1:" + strconv.Itoa(hostPort)
}

// instanceNames names the count instances an operation starts, from index first (1-based):
// sp-<app>-<op12>, then sp-<app>-<op12>-2, ... so a retried start finds what it made before.
func instanceNames(appName, operationID string, first, count int) []string {
	names := make([]string, count)
	for i := range names {
		names[i] = instanceName(appName, operationID)
		if n := first + i; n > 1 {
			names[i] += "-" + strconv.Itoa(n)
		}
	}
	return names
}

// instanceCount is how many instances the app runs (at least one).
func instanceCount(t store.AppTarget) int {
	if t.Instances < 1 {
		return 1
	}
	return t.Instances
}
