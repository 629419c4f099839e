package workflows

import (
	"strconv"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/skypanel/skypanel/activities/docker"
	"github.com/skypanel/skypanel/activities/nginx"
	"github.com/skypanel/skypanel/activities/store"
)

// rollout is the zero-downtime switch shared by deploy, start and restart: start the new
// instance, wait until it answers, point nginx at it, and only then remove the others.
type rollout struct {
	Target    store.AppTarget
	ReleaseID string
	Image     string
	Instance  string
	// DeploymentID, when the rollout is a deploy's, receives a failing instance's last output
	// in its build log.
	DeploymentID string
}

// run returns the started instance's name. On failure the new instance is removed and the
// previous one keeps serving.
func (r rollout) run(ctx workflow.Context) error {
	t := r.Target
	shortCtx := nodeContext(ctx, t.NodeID, 2*time.Minute, 0, 5)

	var network docker.EnsureNetworkResult
	if err := workflow.ExecuteActivity(shortCtx, dockerActs.EnsureNetwork, docker.EnsureNetworkInput{OrgID: t.OrgID}).Get(ctx, &network); err != nil {
		return err
	}
	var started docker.StartInstanceResult
	err := workflow.ExecuteActivity(shortCtx, dockerActs.StartInstance, docker.StartInstanceInput{
		AppID: t.AppID, OrgID: t.OrgID, ReleaseID: r.ReleaseID, DeploymentID: r.DeploymentID, InstanceName: r.Instance, Image: r.Image,
		Network: network.Network, CPUMillis: t.CPUMillis, MemoryMB: t.MemoryMB, Port: AppPort,
	}).Get(ctx, &started)
	if err != nil {
		r.removeNewInstance(ctx)
		return err
	}
	readyCtx := nodeContext(ctx, t.NodeID, ReadyTimeout+time.Minute, 15*time.Second, 1)
	err = workflow.ExecuteActivity(readyCtx, dockerActs.WaitReady, docker.WaitReadyInput{
		AppID: t.AppID, DeploymentID: r.DeploymentID, InstanceName: r.Instance, HostPort: started.HostPort, Timeout: ReadyTimeout,
	}).Get(ctx, nil)
	if err == nil {
		routeCtx := nodeContext(ctx, t.NodeID, 2*time.Minute, 15*time.Second, 3)
		err = workflow.ExecuteActivity(routeCtx, nginxActs.PublishRoute, nginx.PublishRouteInput{
			AppID: t.AppID, Hostname: t.Hostname, ReleaseID: r.ReleaseID,
			Upstreams: []string{loopbackUpstream(started.HostPort)},
		}).Get(ctx, nil)
	}
	if err != nil {
		r.removeNewInstance(ctx)
		return err
	}
	// nginx now serves the new instance: the old ones can go. A failure here leaves an extra
	// container running but the release is live, so it is logged, not fatal.
	removeErr := workflow.ExecuteActivity(shortCtx, dockerActs.RemoveInstances, docker.RemoveInstancesInput{
		AppID: t.AppID, Keep: []string{r.Instance},
	}).Get(ctx, nil)
	if removeErr != nil {
		workflow.GetLogger(ctx).Error("remove previous instances", "app_id", t.AppID, "error", removeErr)
	}
	return nil
}

func (r rollout) removeNewInstance(ctx workflow.Context) {
	ctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	cleanupCtx := nodeContext(ctx, r.Target.NodeID, 2*time.Minute, 0, 3)
	err := workflow.ExecuteActivity(cleanupCtx, dockerActs.RemoveInstances, docker.RemoveInstancesInput{
		AppID: r.Target.AppID, Names: []string{r.Instance},
	}).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Error("remove failed instance", "app_id", r.Target.AppID, "instance", r.Instance, "error", err)
	}
}

// AppPort is the port every app must listen on, given to it as $PORT (Heroku's convention).
const AppPort = 8080

func loopbackUpstream(hostPort int) string {
	return "127.0.0.1:" + strconv.Itoa(hostPort)
}
