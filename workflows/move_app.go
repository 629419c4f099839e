package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/skypanel/skypanel/activities/control/store"
	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/activities/node/nginx"
	sptemporal "github.com/skypanel/skypanel/temporal"
)

// MoveAppInput names the app a drain moves off FromNodeID. Evacuate: the node is gone (or
// about to be), so nothing is asked of it; whatever it still runs is removed by its agent when
// it comes back (the report's foreign apps).
type MoveAppInput struct {
	AppID       string
	OperationID string
	FromNodeID  string
	Evacuate    bool
}

// MoveApp moves an app to another node of its region, in the app's queue like any operation.
// A running app is started on the destination from its current release's image (a digest
// reference the destination pulls from the platform registry) and routed by the destination's
// nginx before its placement switches; only then are the old node's route and instances
// removed. A failure before the switch removes what was started on the destination and leaves
// the app serving where it was. A stopped or suspended app only changes node (its page is put
// up on the destination). Its outcome says what it did.
func MoveApp(ctx workflow.Context, in MoveAppInput) (err error) {
	var outcome string
	defer endOperationWithOutcome(ctx, in.AppID, &err, &outcome)

	from, err := loadTarget(ctx, in.AppID)
	if err != nil {
		return err
	}
	if from.NodeID != in.FromNodeID {
		outcome = "already moved: the application is no longer on the node it was to leave"
		return nil
	}
	var dest store.MoveDestination
	if err := workflow.ExecuteActivity(controlContext(ctx), storeActs.ChooseMoveDestination, store.ChooseMoveDestinationInput{
		AppID: in.AppID, FromNodeID: in.FromNodeID,
	}).Get(ctx, &dest); err != nil {
		return err
	}
	to := from
	to.NodeID = dest.NodeID

	what, instance, err := bringUpOn(ctx, to, in.OperationID)
	if err != nil {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("moving from node %s to node %s failed: %s; the application stays on node %s",
			dest.FromName, dest.NodeName, failureReason(err), dest.FromName), "MoveFailed", nil)
	}
	var switched bool
	if err := workflow.ExecuteActivity(controlContext(ctx), storeActs.SwitchAppNode, store.SwitchAppNodeInput{
		AppID: in.AppID, From: in.FromNodeID, To: dest.NodeID, Instance: instance,
	}).Get(ctx, &switched); err != nil || !switched {
		takeDownOn(ctx, to, instanceNames(to.Name, in.OperationID, 1, instanceCount(to)))
		if err == nil {
			err = temporal.NewNonRetryableApplicationError("the application was placed elsewhere meanwhile", "MoveFailed", nil)
		}
		return err
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, sptemporal.NodeIDKey.ValueSet(dest.NodeID)); err != nil {
		workflow.GetLogger(ctx).Warn("upsert node search attribute", "error", err)
	}
	outcome = fmt.Sprintf("moved from node %s to node %s (%s)", dest.FromName, dest.NodeName, what)
	if in.Evacuate {
		outcome += "; the old node was left alone (evacuated): its agent removes what it still holds when it comes back"
		return nil
	}
	if err := leaveNode(ctx, from); err != nil {
		workflow.GetLogger(ctx).Error("clean the node the app left", "app_id", in.AppID, "node_id", from.NodeID, "error", err)
		outcome += "; removing it from node " + dest.FromName + " failed (" + failureReason(err) + "): its agent removes it at its next report"
	}
	return nil
}

// bringUpOn makes the app serve on t's node as it serves now: a running app's instance count
// of its current release, routed; a stopped or suspended app's page. It says what it did and
// names the first instance it started. On failure, what it started there is removed.
func bringUpOn(ctx workflow.Context, t store.AppTarget, operationID string) (string, string, error) {
	switch {
	case t.Status == store.AppRunning && t.Image != "":
		names := instanceNames(t.Name, operationID, 1, instanceCount(t))
		ports, err := startInstances(ctx, t, t.ReleaseID, t.Image, names, "")
		if err == nil {
			err = publishRoute(ctx, t, t.ReleaseID, ports)
		}
		if err != nil {
			takeDownOn(ctx, t, names)
			return "", "", err
		}
		from := "from its image"
		if strings.Contains(t.Image, "@sha256:") {
			from = "pulled by digest"
		}
		return fmt.Sprintf("%d %s of release %s, %s", len(names), plural(len(names), "instance", "instances"), t.ReleaseID, from), names[0], nil
	case t.Status == store.AppStopped || t.Status == store.AppSuspended:
		mode := nginx.RouteStopped
		if t.Status == store.AppSuspended {
			mode = nginx.RouteSuspended
		}
		routeCtx := nodeContext(ctx, t.NodeID, 2*time.Minute, 45*time.Second, 5)
		if err := workflow.ExecuteActivity(routeCtx, nginxActs.PublishRoute, nginx.PublishRouteInput{
			AppID: t.AppID, Hostname: t.Hostname, ReleaseID: operationID, Mode: mode, Domains: t.Domains,
		}).Get(ctx, nil); err != nil {
			return "", "", err
		}
		return "it is " + t.Status + ": its page is served there", "", nil
	}
	return "it runs nothing: only its placement changed", "", nil
}

// takeDownOn removes a move's route and instances from its destination (the move failed).
func takeDownOn(ctx workflow.Context, t store.AppTarget, names []string) {
	ctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	err := workflow.ExecuteActivity(nodeContext(ctx, t.NodeID, 2*time.Minute, 0, 3), nginxActs.RemoveRoute,
		nginx.RemoveRouteInput{AppID: t.AppID}).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Error("remove the route of a failed move", "app_id", t.AppID, "node_id", t.NodeID, "error", err)
	}
	removeInstances(ctx, t, names)
}

// leaveNode removes the app's route, then its instances, then its images from the node it left:
// nginx there no longer answers for its host name once DNS follows the app to its new node, and
// the node's disk does not keep releases it will not run (the registry has them).
func leaveNode(ctx workflow.Context, t store.AppTarget) error {
	nodeCtx := nodeContext(ctx, t.NodeID, 2*time.Minute+drainGrace(t), 45*time.Second, 3)
	if err := workflow.ExecuteActivity(nodeCtx, nginxActs.RemoveRoute, nginx.RemoveRouteInput{AppID: t.AppID, Drain: drainGrace(t)}).Get(ctx, nil); err != nil {
		return err
	}
	if err := drainInstances(ctx, t, nil); err != nil {
		return err
	}
	if err := workflow.ExecuteActivity(nodeContext(ctx, t.NodeID, 5*time.Minute, 0, 3), dockerActs.RemoveAppImages,
		docker.RemoveAppImagesInput{AppID: t.AppID}).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("remove the app's images from the node it left", "app_id", t.AppID, "node_id", t.NodeID, "error", err)
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
