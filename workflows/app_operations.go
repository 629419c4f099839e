package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/skypanel/skypanel/activities/control/billing"
	"github.com/skypanel/skypanel/activities/control/store"
	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/activities/node/nginx"
	sptemporal "github.com/skypanel/skypanel/temporal"
)

// AppOperationInput names an operation on an app other than a deploy. OperationID is unique
// per request; the API has taken the app's operation lock for this workflow.
type AppOperationInput struct {
	AppID       string
	OperationID string
}

// loadTarget reads the app, for a workflow that holds the app's turn (it fails otherwise), and
// tags the workflow with its node for the Temporal UI.
func loadTarget(ctx workflow.Context, appID string) (store.AppTarget, error) {
	return loadTargetFor(ctx, store.LoadAppTargetInput{AppID: appID})
}

func loadTargetFor(ctx workflow.Context, in store.LoadAppTargetInput) (store.AppTarget, error) {
	var t store.AppTarget
	err := workflow.ExecuteActivity(controlContext(ctx), storeActs.LoadAppTarget, in).Get(ctx, &t)
	if err != nil {
		return t, err
	}
	if t.NodeID != "" {
		if err := workflow.UpsertTypedSearchAttributes(ctx, sptemporal.NodeIDKey.ValueSet(t.NodeID)); err != nil {
			workflow.GetLogger(ctx).Warn("upsert node search attribute", "error", err)
		}
	}
	return t, nil
}

var errNoRelease = temporal.NewNonRetryableApplicationError("the application has no release; deploy it first", "NoRelease", nil)

// StartApp brings the current release back: a fresh instance, ready, routed.
func StartApp(ctx workflow.Context, in AppOperationInput) (err error) {
	defer endOperation(ctx, in.AppID, &err)
	return startRelease(ctx, in)
}

// RestartApp replaces the running instance with a fresh one of the same release, without
// downtime: the old instance serves until the new one answers and is routed.
func RestartApp(ctx workflow.Context, in AppOperationInput) (err error) {
	defer endOperation(ctx, in.AppID, &err)
	return startRelease(ctx, in)
}

func startRelease(ctx workflow.Context, in AppOperationInput) error {
	t, err := loadReleased(ctx, in.AppID)
	if err != nil {
		return err
	}
	instances, err := rolloutCurrentImage(ctx, t, t.ReleaseID, in.OperationID)
	if err != nil {
		return err
	}
	return workflow.ExecuteActivity(controlContext(ctx), storeActs.MarkAppRunning, store.MarkAppRunningInput{
		AppID: in.AppID, Instance: instances[0], URL: t.URL,
	}).Get(ctx, nil)
}

// loadReleased loads an app for an operation on its current release: errNoRelease when it has
// none (never deployed).
func loadReleased(ctx workflow.Context, appID string) (store.AppTarget, error) {
	t, err := loadTarget(ctx, appID)
	if err != nil {
		return t, err
	}
	if t.Image == "" || t.NodeID == "" {
		return t, errNoRelease
	}
	return t, nodeOffline(t)
}

// nodeOffline fails an operation that needs the app's node while that node does not report,
// saying so, rather than after the pickup timeout (NodePickupTimeout).
func nodeOffline(t store.AppTarget) error {
	if t.NodeID == "" || t.NodeOffline == "" {
		return nil
	}
	return temporal.NewNonRetryableApplicationError(t.NodeOffline, store.ErrTypeNodeOffline, nil)
}

// rolloutCurrentImage runs the app's instance count of its current image as releaseID, named
// after operationID, with the zero-downtime switch; it returns the new instances' names.
func rolloutCurrentImage(ctx workflow.Context, t store.AppTarget, releaseID, operationID string) ([]string, error) {
	instances := instanceNames(t.Name, operationID, 1, instanceCount(t))
	if err := (rollout{Target: t, ReleaseID: releaseID, Image: t.Image, Instances: instances}).run(ctx); err != nil {
		return nil, err
	}
	return instances, nil
}

// StopApp stops serving the app: its route turns into a 503 "this app is stopped" page first
// (so clients get a clear answer, never a bad gateway), then its instances go.
func StopApp(ctx workflow.Context, in AppOperationInput) (err error) {
	defer endOperation(ctx, in.AppID, &err)
	t, err := loadTarget(ctx, in.AppID)
	if err != nil {
		return err
	}
	if err := nodeOffline(t); err != nil {
		return err
	}
	if t.NodeID != "" {
		if err := stopOnNode(ctx, t, in.OperationID); err != nil {
			return err
		}
	}
	return workflow.ExecuteActivity(controlContext(ctx), storeActs.MarkAppStopped, store.MarkAppStoppedInput{AppID: in.AppID}).Get(ctx, nil)
}

// DeleteApp removes everything of the app from its node, then its records.
func DeleteApp(ctx workflow.Context, in AppOperationInput) (err error) {
	defer endOperation(ctx, in.AppID, &err)
	t, err := loadTarget(ctx, in.AppID)
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == store.ErrTypeAppNotFound {
		return nil // already deleted: a retried delete is a no-op
	}
	if err != nil {
		return err
	}
	// An offline node is not waited for: once the records are gone the app is foreign to it,
	// and its agent removes the app's route, containers and images on its next report.
	if t.NodeID != "" && t.NodeOffline == "" {
		if err := removeFromNode(ctx, t); err != nil {
			return err
		}
	}
	if err := workflow.ExecuteActivity(controlContext(ctx), storeActs.DeleteApplicationRecord, store.DeleteApplicationRecordInput{AppID: in.AppID}).Get(ctx, nil); err != nil {
		return err
	}
	// Deletes started before billing settled at once left it to the next billing run.
	if workflow.GetVersion(ctx, "settle-on-delete", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	return workflow.ExecuteActivity(controlContext(ctx), billActs.SettleApp, billing.SettleAppInput{AppID: in.AppID, Now: workflow.Now(ctx)}).Get(ctx, nil)
}

func stopOnNode(ctx workflow.Context, t store.AppTarget, operationID string) error {
	// Runs started before the stopped page removed the route, as they did.
	if workflow.GetVersion(ctx, "stopped-page", workflow.DefaultVersion, 1) == 1 {
		return takeOffline(ctx, t, nginx.RouteStopped, operationID)
	}
	nodeCtx := nodeContext(ctx, t.NodeID, 2*time.Minute, 0, 5)
	if err := workflow.ExecuteActivity(nodeCtx, nginxActs.RemoveRoute, nginx.RemoveRouteInput{AppID: t.AppID}).Get(ctx, nil); err != nil {
		return err
	}
	return drainInstances(ctx, t, nil)
}

// takeOffline is the one stop-route sequence of a stop and a suspension: the route shows the
// page of mode first (a client gets a clear answer, never a bad gateway), named after the
// operation that put it up, and once nginx serves it the instances are drained and removed.
func takeOffline(ctx workflow.Context, t store.AppTarget, mode nginx.RouteMode, operationID string) error {
	routeCtx := nodeContext(ctx, t.NodeID, 2*time.Minute+drainGrace(t), 45*time.Second, 5)
	if err := workflow.ExecuteActivity(routeCtx, nginxActs.PublishRoute, nginx.PublishRouteInput{
		AppID: t.AppID, Hostname: t.Hostname, ReleaseID: operationID, Mode: mode, Drain: drainGrace(t), Domains: t.Domains,
	}).Get(ctx, nil); err != nil {
		return err
	}
	return drainInstances(ctx, t, nil)
}

func removeFromNode(ctx workflow.Context, t store.AppTarget) error {
	nodeCtx := nodeContext(ctx, t.NodeID, 2*time.Minute, 0, 5)
	if err := workflow.ExecuteActivity(nodeCtx, nginxActs.RemoveRoute, nginx.RemoveRouteInput{AppID: t.AppID}).Get(ctx, nil); err != nil {
		return err
	}
	if err := workflow.ExecuteActivity(nodeCtx, dockerActs.RemoveInstances, docker.RemoveInstancesInput{AppID: t.AppID, OrgID: t.OrgID}).Get(ctx, nil); err != nil {
		return err
	}
	return workflow.ExecuteActivity(nodeCtx, dockerActs.RemoveAppImages, docker.RemoveAppImagesInput{AppID: t.AppID}).Get(ctx, nil)
}

// All lists the workflows the control worker registers.
var All = []any{DeployApp, StartApp, RestartApp, StopApp, DeleteApp, RollbackApp, ScaleApp, ListAppInstances, ConfigureApp,
	UpdateAppDomains, RenewCertificates, IssueCertificate, BillingRun, SuspendOrganization, ResumeOrganization, SuspendApp, ResumeApp, HealApp, MoveApp, DrainNode,
	ProvisionDatabase, DeleteDatabase, BackupDatabase, RestoreDatabase, ScheduledDatabaseBackup, SuspendDatabase, ResumeDatabase}
