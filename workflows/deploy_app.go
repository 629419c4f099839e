package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/skypanel/skypanel/activities/control/store"
	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/activities/node/gitclone"
	sptemporal "github.com/skypanel/skypanel/temporal"
)

// DeployAppInput names the deployment to run. The API has already recorded it (queued) and
// taken the app's operation lock for this workflow.
type DeployAppInput struct {
	AppID        string
	DeploymentID string
}

// DeployAppResult is the release that went live.
type DeployAppResult struct {
	CommitSHA string
	Image     string
	Instance  string
	URL       string
}

// CancelDeployUpdate is the Update that cancels a deploy while it clones or builds. Its
// validator refuses once the rollout has begun switching traffic: that completes, or rolls
// back, on its own.
const CancelDeployUpdate = "cancel"

// ErrTypeNotCancellable is the type of the error a refused CancelDeployUpdate carries.
const ErrTypeNotCancellable = "NotCancellable"

// DeployApp clones the app's branch on its node, builds the image, starts a hardened instance,
// waits until it answers, routes nginx to it and only then removes the previous instance. Any
// failure marks the deployment failed with a reason and leaves the previous release serving.
// Until the rollout begins it can be cancelled (CancelDeployUpdate, or cancelling the workflow):
// the clone or build stops, and the deployment ends cancelled.
func DeployApp(ctx workflow.Context, in DeployAppInput) (result DeployAppResult, err error) {
	log := workflow.GetLogger(ctx)
	defer endOperation(ctx, in.AppID, &err)
	ctrl := controlContext(ctx)

	building, cancelBuild := workflow.WithCancel(ctx)
	switching := false
	if err := workflow.SetUpdateHandlerWithOptions(ctx, CancelDeployUpdate, func(workflow.Context) error {
		log.Info("deploy cancelled on request", "app_id", in.AppID, "deployment_id", in.DeploymentID)
		cancelBuild()
		return nil
	}, workflow.UpdateHandlerOptions{Validator: func(workflow.Context) error {
		if switching {
			return temporal.NewNonRetryableApplicationError("the deploy is switching traffic to the new release and can no longer be cancelled: it completes, or rolls back, on its own", ErrTypeNotCancellable, nil)
		}
		return nil
	}}); err != nil {
		return DeployAppResult{}, err
	}

	var plan store.DeploymentPlan
	if err := workflow.ExecuteActivity(ctrl, storeActs.PrepareDeployment, store.PrepareDeploymentInput{
		AppID: in.AppID, DeploymentID: in.DeploymentID,
	}).Get(ctx, &plan); err != nil {
		return DeployAppResult{}, failDeployment(ctx, in, err)
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, sptemporal.NodeIDKey.ValueSet(plan.NodeID)); err != nil {
		log.Warn("upsert node search attribute", "error", err)
	}
	log.Info("deploying", "app_id", in.AppID, "deployment_id", in.DeploymentID, "node_id", plan.NodeID)

	// The organization's network is made while the source is cloned and built: on a node with
	// hundreds of networks a new one takes about half a second of the engine's time (its
	// iptables rules grow with every network). The rollout makes sure of it again and reports
	// any failure; runs started before this did it there only.
	var network workflow.Future
	if workflow.GetVersion(ctx, "network-during-build", workflow.DefaultVersion, 1) == 1 {
		network = workflow.ExecuteActivity(nodeContext(ctx, plan.NodeID, 2*time.Minute, 0, 5), dockerActs.EnsureNetwork,
			docker.EnsureNetworkInput{OrgID: plan.OrgID})
	}

	// A cancelled clone or build is waited for: the deployment ends cancelled once the node
	// has stopped the work, not while it still runs.
	cloneCtx := workflow.WithWaitForCancellation(nodeContext(building, plan.NodeID, 10*time.Minute, 30*time.Second, 3), true)
	var source gitclone.CloneResult
	if err := workflow.ExecuteActivity(cloneCtx, gitActs.CloneRepository, gitclone.CloneInput{
		AppID: in.AppID, DeploymentID: in.DeploymentID, GitURL: plan.GitURL, Branch: plan.GitBranch, Commit: plan.Commit,
		GitHubToken: plan.GitHubToken, AllowLoopbackHTTP: plan.AllowLoopbackGit,
	}).Get(ctx, &source); err != nil {
		return DeployAppResult{}, failDeployment(ctx, in, err)
	}

	buildCtx := workflow.WithWaitForCancellation(nodeContext(building, plan.NodeID, 30*time.Minute, 20*time.Second, 2), true)
	var built docker.BuildImageResult
	buildErr := workflow.ExecuteActivity(buildCtx, dockerActs.BuildImage, docker.BuildImageInput{
		AppID: in.AppID, OrgID: plan.OrgID, DeploymentID: in.DeploymentID, ContextDir: source.Dir, ImageTag: plan.ImageTag,
		Runtime: plan.RuntimeKind, BuildImage: plan.BuildImage, RunImage: plan.RunImage, StackImages: plan.StackImages,
		Env: plan.Env, Push: plan.PushImage, MemoryMB: plan.MemoryMB, CPUMillis: plan.CPUMillis, TimeoutSeconds: plan.BuildTimeoutSeconds, DiskMB: plan.BuildDiskMB,
	}).Get(ctx, &built)
	removeWorkdir(ctx, plan.NodeID, in.DeploymentID)
	if buildErr == nil && building.Err() != nil {
		buildErr = temporal.NewCanceledError()
	}
	if buildErr != nil {
		return DeployAppResult{}, failDeployment(ctx, in, buildErr)
	}

	// A pushed image runs by its digest: every node, now or after a move, runs these bytes.
	image := plan.ImageTag
	if built.ImageRef != "" {
		image = built.ImageRef
	}
	if err := workflow.ExecuteActivity(ctrl, storeActs.RecordBuild, store.RecordBuildInput{
		DeploymentID: in.DeploymentID, CommitSHA: source.CommitSHA, CommitMessage: source.CommitMessage, Image: image,
	}).Get(ctx, nil); err != nil {
		return DeployAppResult{}, failDeployment(ctx, in, err)
	}

	// From here the deploy finishes on its own: a cancellation of the workflow no longer stops
	// it (the rollout switches traffic, or rolls back, whole).
	switching = true
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	ctrl = controlContext(ctx)
	if network != nil {
		if err := network.Get(ctx, nil); err != nil {
			log.Warn("network made during the build", "app_id", in.AppID, "error", err)
		}
	}
	instances := instanceNames(plan.Name, in.DeploymentID, 1, instanceCount(plan.AppTarget))
	instance := instances[0]
	if err := (rollout{Target: plan.AppTarget, ReleaseID: in.DeploymentID, Image: image, Instances: instances, DeploymentID: in.DeploymentID}).run(ctx); err != nil {
		return DeployAppResult{}, failDeployment(ctx, in, err)
	}

	if err := workflow.ExecuteActivity(ctrl, storeActs.CompleteDeployment, store.CompleteDeploymentInput{
		AppID: in.AppID, DeploymentID: in.DeploymentID, Instance: instance, URL: plan.URL,
	}).Get(ctx, nil); err != nil {
		return DeployAppResult{}, err
	}
	// Runs started before releases had a retention policy end here, as they did.
	if workflow.GetVersion(ctx, "prune-release-images", workflow.DefaultVersion, 1) == 1 {
		pruneReleaseImages(ctx, plan.AppID, plan.NodeID)
	}
	return DeployAppResult{CommitSHA: source.CommitSHA, Image: image, Instance: instance, URL: plan.URL}, nil
}

// failDeployment records why the deployment failed and returns the original error, so the
// workflow itself shows as failed in the Temporal UI with the same cause.
func failDeployment(ctx workflow.Context, in DeployAppInput, cause error) error {
	ctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	reason := failureReason(cause)
	var canceled *temporal.CanceledError
	cancelled := errors.As(cause, &canceled)
	if cancelled {
		reason = "cancelled while it cloned or built; the previous release kept serving"
	}
	err := workflow.ExecuteActivity(controlContext(ctx), storeActs.FailDeployment, store.FailDeploymentInput{
		AppID: in.AppID, DeploymentID: in.DeploymentID, Reason: reason, Cancelled: cancelled,
	}).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Error("record deployment failure", "deployment_id", in.DeploymentID, "error", err)
	}
	return cause
}

func removeWorkdir(ctx workflow.Context, nodeID, deploymentID string) {
	cleanupCtx := nodeContext(ctx, nodeID, time.Minute, 0, 3)
	if err := workflow.ExecuteActivity(cleanupCtx, gitActs.RemoveWorkdir, gitclone.RemoveWorkdirInput{DeploymentID: deploymentID}).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("remove work dir", "deployment_id", deploymentID, "error", err)
	}
}

// pruneReleaseImages removes the images of releases past the app's retention count. The
// release is live already: a failure here is logged, not fatal.
func pruneReleaseImages(ctx workflow.Context, appID, nodeID string) {
	var prune store.PruneReleaseImagesResult
	err := workflow.ExecuteActivity(controlContext(ctx), storeActs.PruneReleaseImages, store.PruneReleaseImagesInput{AppID: appID}).Get(ctx, &prune)
	if err == nil && len(prune.Images) > 0 {
		err = workflow.ExecuteActivity(nodeContext(ctx, nodeID, 5*time.Minute, 0, 3), dockerActs.RemoveImages,
			docker.RemoveImagesInput{AppID: appID, Images: prune.Images}).Get(ctx, nil)
	}
	if err != nil {
		workflow.GetLogger(ctx).Warn("prune old release images", "app_id", appID, "error", err)
	}
}
