// Package store holds the control-plane activities: every read and write of Postgres state a
// workflow makes. They run on the `control` task queue, in the `skypanel worker` process.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/activities/contract"
	"github.com/skypanel/skypanel/activities/control/backups"
	"github.com/skypanel/skypanel/activities/control/registry"
	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
)

// Activities reads and writes the control plane's state for workflows. Every method is
// idempotent: a retried activity changes nothing twice.
type Activities struct {
	Store *db.Store
	// Routing decides the host name and public URL of an app.
	Routing Routing
	// AllowLoopbackGit lets nodes clone http:// repositories on loopback (`skypanel dev` only).
	AllowLoopbackGit bool
	// KeepReleaseImages is how many releases' images each app keeps for rollbacks (default 5).
	KeepReleaseImages int
	// Registry is the platform registry (zero: none). Builds push there; pruned releases and
	// deleted apps leave it.
	Registry registry.Registry
	// Operations is the owner of app operations (temporal/operations): a finishing workflow
	// hands the app's turn on through it, billing queues its suspensions there.
	Operations OperationOwner
	// Keyring opens managed databases' passwords to make a linked app's connection variables,
	// which it seals for the app at once.
	Keyring *secrets.Keyring
	// Backups are the stores database backups land in (nil: none configured); each backup
	// is read back from the store its row names.
	Backups *backups.Stores
	// Schedules keeps the databases' backup schedules.
	Schedules DatabaseSchedules
}

// OperationOwner is what the control activities need of the app operations' owner.
type OperationOwner interface {
	// Finish records how the operation carried out by workflowID ended (a db.Operation*
	// status and the reason) and starts the app's next operation.
	Finish(ctx context.Context, appID, workflowID, status, reason string) error
	// EnqueueFor queues an operation the platform asks for (via says what: "billing") and
	// returns its id.
	EnqueueFor(ctx context.Context, orgID, appID, kind, via string) (string, error)
	// EnqueueMove queues a move of the app off fromNodeID (a drain's; evacuate: the node is
	// gone, leave it alone) and returns its id.
	EnqueueMove(ctx context.Context, orgID, appID, fromNodeID string, evacuate bool, via string) (string, error)
	// FinishDatabase records how a managed database's operation ended and starts its next.
	FinishDatabase(ctx context.Context, databaseID, workflowID, status, reason string) error
	// QueueDatabaseBackup queues a backup of kind (scheduled) the platform asks for and returns
	// its operation id.
	QueueDatabaseBackup(ctx context.Context, orgID, databaseID, kind, via string) (string, error)
	// QueueDatabaseOperation queues an operation of kind (suspend, resume) the platform asks
	// for on a database and returns its id.
	QueueDatabaseOperation(ctx context.Context, orgID, databaseID, kind, via string) (string, error)
}

// Routing turns an app name into its public host name and URL.
type Routing struct {
	PlatformDomain string // e.g. apps.example.com; dev: apps.localhost
	URLScheme      string // http or https
	PublicPort     int    // 0 for the scheme's default
}

// Hostname is <name>.<PlatformDomain>.
func (r Routing) Hostname(appName string) string { return appName + "." + r.PlatformDomain }

// URL is the address customers open.
func (r Routing) URL(appName string) string {
	if r.PublicPort == 0 {
		return fmt.Sprintf("%s://%s/", r.URLScheme, r.Hostname(appName))
	}
	return fmt.Sprintf("%s://%s:%d/", r.URLScheme, r.Hostname(appName), r.PublicPort)
}

// Error types workflows branch on.
const (
	ErrTypeNoNode      = "NoNodeAvailable"
	ErrTypeAppNotFound = "ApplicationNotFound"
)

// ErrTypeNodeOffline: the app's node does not report; its work would wait for nothing.
const ErrTypeNodeOffline = "NodeOffline"

// ErrTypeNotAppTurn: the workflow does not carry the app's running operation (it was not
// started through the app's queue), so it may change nothing.
const ErrTypeNotAppTurn = "NotAppTurn"

func notRetryable(err error) error {
	var noRoom *db.NoRoomError
	switch {
	case errors.As(err, &noRoom):
		return temporal.NewNonRetryableApplicationError(noRoom.Error(), ErrTypeNoNode, nil)
	case errors.Is(err, db.ErrNoNode):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeNoNode, nil)
	case errors.Is(err, db.ErrNotFound):
		return temporal.NewNonRetryableApplicationError("the application no longer exists", ErrTypeAppNotFound, nil)
	}
	return err
}

// AppTarget is an app as a workflow acts on it.
type AppTarget struct {
	AppID  string
	OrgID  string
	Name   string
	NodeID string
	// Status is the app's (running, stopped, suspended, …); empty in runs recorded before
	// moves needed it.
	Status       string `json:",omitempty"`
	Hostname     string
	URL          string
	CPUMillis    int
	MemoryMB     int
	Instances    int // how many instances the app runs
	DrainSeconds int // how long old instances get to finish their requests (0: 10 s)
	// MaxConnections and ReadTimeoutSeconds bound the app on its node's nginx (0: defaults).
	MaxConnections     int `json:",omitempty"`
	ReadTimeoutSeconds int `json:",omitempty"`
	// BuildTimeoutSeconds is the plan's time limit of one build (0: the node's own).
	BuildTimeoutSeconds int `json:",omitempty"`
	// BuildDiskMB is the plan's disk limit of one build (0: the node's own).
	BuildDiskMB int `json:",omitempty"`
	// Domains are the app's custom host names; every route the app's workflows publish serves
	// them besides Hostname.
	Domains []contract.Domain `json:",omitempty"`
	// Env is the app's environment, each value still sealed (a secrets envelope the node opens
	// when it starts an instance or a build): workflow histories never hold a plaintext value.
	Env              []contract.SealedVar `json:",omitempty"`
	Image            string               // the current release's image ("" before the first deploy)
	ReleaseID        string               // the current release's deployment id
	CurrentInstance  string
	AllowLoopbackGit bool
	// The app's runtime: its kind and the buildpack's base images; for the auto runtime, the
	// catalogue's images of every stack.
	RuntimeKind string
	BuildImage  string
	RunImage    string
	StackImages map[string]contract.StackImages
	// RootFS is the app's runtime's root filesystem setting; for the auto runtime, StackRootFS
	// holds each stack's (of the runtime StackImages come from). The node applies the setting
	// of the runtime that built the image it starts (see docker.StartInstanceInput).
	RootFS      contract.RootFS            `json:",omitzero"`
	StackRootFS map[string]contract.RootFS `json:",omitempty"`
	// NodeOffline says why the app's node cannot take work now ("node X is offline: …"); empty
	// while it reports (and in runs recorded before it was read). Operations that need the
	// node fail with it at once instead of waiting out the pickup timeout.
	NodeOffline string `json:",omitempty"`
}

// PrepareDeploymentInput names the deployment DeployApp runs.
type PrepareDeploymentInput struct {
	AppID        string
	DeploymentID string
}

// DeploymentPlan is everything DeployApp needs, read once at its start.
type DeploymentPlan struct {
	AppTarget
	GitURL    string
	GitBranch string
	// Commit is the exact commit to build ("" the branch's head): a push's, or one named by
	// POST …/deploy {"commit"}.
	Commit string `json:",omitempty"`
	// GitHubToken: the app is connected to GitHub, so its node clones with the token of the
	// user who connected it (asked of the API for this deployment; never in the plan).
	GitHubToken bool `json:",omitempty"`
	ImageTag    string
	// PushImage: push the built image to the platform registry; the release then runs its
	// digest reference, which any node can pull.
	PushImage bool `json:",omitempty"`
}

// PrepareDeployment places the app on a node (first deploy only), marks the deployment
// building, and returns the plan.
func (a *Activities) PrepareDeployment(ctx context.Context, in PrepareDeploymentInput) (DeploymentPlan, error) {
	if err := a.requireTurn(ctx, in.AppID); err != nil {
		return DeploymentPlan{}, err
	}
	nodeID, err := a.Store.PlaceApplication(ctx, in.AppID)
	if err != nil {
		return DeploymentPlan{}, notRetryable(err)
	}
	// A node that stopped reporting would never pick the build up: the deploy fails now, with
	// why, rather than after its 2-minute pickup timeout.
	offline, err := a.nodeOffline(ctx, nodeID)
	if err != nil {
		return DeploymentPlan{}, err
	}
	if offline != "" {
		return DeploymentPlan{}, temporal.NewNonRetryableApplicationError(offline, ErrTypeNodeOffline, nil)
	}
	target, err := a.LoadAppTarget(ctx, LoadAppTargetInput{AppID: in.AppID})
	if err != nil {
		return DeploymentPlan{}, err
	}
	dep, err := a.Store.DeploymentByID(ctx, in.DeploymentID)
	if err != nil {
		return DeploymentPlan{}, notRetryable(err)
	}
	github, err := a.Store.AppConnectedToGitHub(ctx, in.AppID)
	if err != nil {
		return DeploymentPlan{}, err
	}
	if err := a.Store.SetDeploymentStatus(ctx, in.DeploymentID, db.DeploymentBuilding); err != nil {
		return DeploymentPlan{}, fmt.Errorf("mark deployment building: %w", err)
	}
	if err := a.Store.MarkAppDeploying(ctx, in.AppID); err != nil {
		return DeploymentPlan{}, fmt.Errorf("mark app deploying: %w", err)
	}
	plan := DeploymentPlan{
		AppTarget:   target,
		GitURL:      dep.GitURL,
		GitBranch:   dep.GitBranch,
		Commit:      dep.RequestedCommit,
		GitHubToken: github,
		ImageTag:    fmt.Sprintf("skypanel/app-%s:%s", in.AppID, in.DeploymentID),
	}
	if a.Registry.Enabled() {
		plan.ImageTag, plan.PushImage = a.Registry.Repository(in.AppID)+":"+in.DeploymentID, true
	}
	return plan, nil
}

// LoadAppTargetInput names an app.
type LoadAppTargetInput struct {
	AppID string
	// ReadOnly: the workflow only reads (the instance listing), so it needs no turn.
	ReadOnly bool `json:",omitempty"`
}

// LoadAppTarget reads what a workflow needs to act on the app's node, for the workflow that
// holds the app's turn (requireTurn) unless it only reads.
func (a *Activities) LoadAppTarget(ctx context.Context, in LoadAppTargetInput) (AppTarget, error) {
	t, err := a.Store.AppTargetByID(ctx, in.AppID)
	if err != nil {
		return AppTarget{}, notRetryable(err)
	}
	if !in.ReadOnly {
		if err := a.requireTurn(ctx, in.AppID); err != nil {
			return AppTarget{}, err
		}
	}
	vars, err := a.Store.ListEnv(ctx, in.AppID)
	if err != nil {
		return AppTarget{}, err
	}
	env := make([]contract.SealedVar, len(vars))
	taken := make(map[string]bool, len(vars))
	for i, v := range vars {
		env[i] = contract.SealedVar{Key: v.Key, Sealed: v.Sealed, BuildTime: v.BuildTime}
		taken[v.Key] = true
	}
	if !in.ReadOnly { // a read (the instance listing) starts nothing: no password is opened for it
		linked, err := a.linkedDatabaseVars(ctx, in.AppID, taken)
		if err != nil {
			return AppTarget{}, err
		}
		env = append(env, linked...)
	}
	var stacks map[string]contract.StackImages
	var stackRootFS map[string]contract.RootFS
	if t.RuntimeKind == "auto" {
		if stacks, stackRootFS, err = a.stackRuntimes(ctx); err != nil {
			return AppTarget{}, err
		}
	}
	offline := ""
	if t.NodeID != "" {
		if offline, err = a.nodeOffline(ctx, t.NodeID); err != nil {
			return AppTarget{}, err
		}
	}
	return AppTarget{
		NodeOffline: offline,
		Env:         env,
		StackImages: stacks,
		AppID:       t.AppID, OrgID: t.OrgID, Name: t.Name, NodeID: t.NodeID, Status: t.Status,
		Hostname: a.Routing.Hostname(t.Name), URL: a.Routing.URL(t.Name),
		CPUMillis: t.CPUMillis, MemoryMB: t.MemoryMB, Instances: t.Instances, DrainSeconds: t.DrainSeconds,
		MaxConnections: t.MaxConnections, ReadTimeoutSeconds: t.ReadTimeoutSeconds, BuildTimeoutSeconds: t.BuildTimeoutSeconds, BuildDiskMB: t.BuildDiskMB,
		Domains: routeDomains(t.Domains),
		Image:   t.Image, ReleaseID: t.ReleaseID, CurrentInstance: t.CurrentInstance,
		AllowLoopbackGit: a.AllowLoopbackGit,
		RuntimeKind:      t.RuntimeKind, BuildImage: t.BuildImage, RunImage: t.RunImage,
		RootFS:      contract.RootFS{ReadOnly: t.ReadOnlyRoot, Writable: nonEmpty(t.WritablePaths)},
		StackRootFS: stackRootFS,
	}, nil
}

// stackRuntimes reads what the auto runtime takes from the catalogue for each stack: its images
// and its root filesystem setting. A stack the catalogue has no runtime for is built with the
// buildpack's default images (buildpack.DefaultImage) and run with its kind's default setting.
func (a *Activities) stackRuntimes(ctx context.Context) (map[string]contract.StackImages, map[string]contract.RootFS, error) {
	catalogue, err := a.Store.StackRuntimes(ctx)
	if err != nil {
		return nil, nil, err
	}
	images := make(map[string]contract.StackImages, len(catalogue))
	rootFS := map[string]contract.RootFS{}
	for _, kind := range []string{"node", "python", "php"} {
		rootFS[kind] = contract.DefaultRootFS(kind)
	}
	for kind, rt := range catalogue {
		images[kind] = contract.StackImages{Build: rt.BuildImage, Run: rt.RunImage}
		rootFS[kind] = contract.RootFS{ReadOnly: rt.ReadOnlyRoot, Writable: nonEmpty(rt.WritablePaths)}
	}
	return images, rootFS, nil
}

// nonEmpty is paths, nil when there are none (so the wire value omits it).
func nonEmpty(paths []string) []string {
	if len(paths) == 0 {
		return nil
	}
	return paths
}

// requireTurn refuses the calling workflow unless it carries the app's running operation. Every
// workflow that changes an app reads it first (LoadAppTarget, PrepareDeployment), so one that
// was started outside the API (by another client of the Temporal frontend, say) fails before
// its first side effect and changes nothing.
func (a *Activities) requireTurn(ctx context.Context, appID string) error {
	workflowID := activity.GetInfo(ctx).WorkflowExecution.ID
	held, err := a.Store.HoldsTurn(ctx, appID, workflowID)
	if err != nil {
		return err
	}
	if !held {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"workflow %s does not hold the turn of application %s: operations on an application start through the API, in the application's queue; this run changes nothing",
			workflowID, appID), ErrTypeNotAppTurn, nil)
	}
	return nil
}

// nodeOffline is why nodeID cannot take work now (the sentence an operation fails with), or
// "" while it reports.
func (a *Activities) nodeOffline(ctx context.Context, nodeID string) (string, error) {
	name, online, silentAfter, err := a.Store.NodeOnline(ctx, nodeID)
	if err != nil || online {
		return "", err
	}
	return fmt.Sprintf("node %s is offline: it has not reported for more than %s, so nothing can run there until it is back", name, silentAfter), nil
}

// RecordBuildInput is the built release.
type RecordBuildInput struct {
	DeploymentID  string
	CommitSHA     string
	CommitMessage string `json:",omitempty"`
	Image         string
}

// RecordBuild stores the commit and image and moves the deployment to deploying.
func (a *Activities) RecordBuild(ctx context.Context, in RecordBuildInput) error {
	if err := a.Store.SetDeploymentSource(ctx, in.DeploymentID, in.CommitSHA, in.CommitMessage, in.Image); err != nil {
		return fmt.Errorf("record build of %s: %w", in.DeploymentID, err)
	}
	return a.Store.SetDeploymentStatus(ctx, in.DeploymentID, db.DeploymentDeploying)
}

// CompleteDeploymentInput is a release now serving.
type CompleteDeploymentInput struct {
	AppID        string
	DeploymentID string
	Instance     string
	URL          string
}

// CompleteDeployment makes the deployment the app's current release.
func (a *Activities) CompleteDeployment(ctx context.Context, in CompleteDeploymentInput) error {
	if err := a.Store.CompleteDeployment(ctx, in.AppID, in.DeploymentID, in.Instance, in.URL); err != nil {
		return fmt.Errorf("complete deployment %s: %w", in.DeploymentID, err)
	}
	return a.Store.AppendControlLog(ctx, in.DeploymentID, db.LogKeyResult, fmt.Sprintf("\n==> Deployed: %s is live at %s\n", in.Instance, in.URL))
}

// FailDeploymentInput is a deployment that did not go live.
type FailDeploymentInput struct {
	AppID        string
	DeploymentID string
	Reason       string
	// Cancelled: someone cancelled the deployment while it cloned or built.
	Cancelled bool
}

// FailDeployment records the failure (or the cancellation); the app keeps serving its previous
// release.
func (a *Activities) FailDeployment(ctx context.Context, in FailDeploymentInput) error {
	status, headline := db.DeploymentFailed, "Deployment failed: "
	if in.Cancelled {
		status, headline = db.DeploymentCancelled, "Deployment cancelled: "
	}
	if err := a.Store.FailDeployment(ctx, in.AppID, in.DeploymentID, status, in.Reason); err != nil {
		return fmt.Errorf("fail deployment %s: %w", in.DeploymentID, err)
	}
	return a.Store.AppendControlLog(ctx, in.DeploymentID, db.LogKeyResult, "\n==> "+headline+in.Reason+"\n")
}

// App statuses and operation kinds the billing workflows name (db's, so workflows need not
// import db).
const (
	AppRunning   = db.AppRunning
	AppSuspended = db.AppSuspended
	OpSuspend    = db.OpSuspend
	OpResume     = db.OpResume
)

// How an operation ended, for ReleaseOperationInput.Status.
const (
	OperationSucceeded = db.OperationSucceeded
	OperationFailed    = db.OperationFailed
	OperationCancelled = db.OperationCancelled
)

// ReleaseOperationInput ends the operation a workflow carried out.
type ReleaseOperationInput struct {
	AppID      string
	WorkflowID string
	// Status is db.OperationSucceeded, Failed or Cancelled, with the reason; empty from runs
	// started before operations were queued (they held a lock and nothing else): succeeded.
	Status string
	Reason string
}

// ReleaseOperation records how the workflow's operation ended and gives the app's turn to the
// next operation, starting its workflow. (The name is from when it only freed a lock: recorded
// histories name it.)
func (a *Activities) ReleaseOperation(ctx context.Context, in ReleaseOperationInput) error {
	if a.Operations == nil {
		return errors.New("store activities: Operations is not set")
	}
	status := in.Status
	if status == "" {
		status = db.OperationSucceeded
	}
	return a.Operations.Finish(ctx, in.AppID, in.WorkflowID, status, in.Reason)
}

// MarkAppRunningInput records the instance serving the app.
type MarkAppRunningInput struct {
	AppID    string
	Instance string
	URL      string
}

// MarkAppRunning records that the app serves again (start, restart).
func (a *Activities) MarkAppRunning(ctx context.Context, in MarkAppRunningInput) error {
	return a.Store.SetAppRunning(ctx, in.AppID, in.Instance, in.URL)
}

// MarkAppStoppedInput names a stopped app.
type MarkAppStoppedInput struct {
	AppID string
}

// MarkAppStopped records the app stopped on purpose.
func (a *Activities) MarkAppStopped(ctx context.Context, in MarkAppStoppedInput) error {
	return a.Store.SetAppStopped(ctx, in.AppID)
}

// DeleteApplicationRecordInput names a deleted app.
type DeleteApplicationRecordInput struct {
	AppID string
}

// DeleteApplicationRecord removes the app's rows once nothing of it runs any more.
func (a *Activities) DeleteApplicationRecord(ctx context.Context, in DeleteApplicationRecordInput) error {
	// The registry keeps no image of a deleted app. A registry that does not answer must not
	// keep the app alive: the images left are logged, for an operator's garbage collection.
	if err := a.Registry.DeleteApp(ctx, in.AppID); err != nil {
		slog.WarnContext(ctx, "remove the app's images from the registry", "app_id", in.AppID, "err", err)
	}
	return a.Store.DeleteApplication(ctx, in.AppID)
}

// SetInstanceCountInput records how many instances the app runs.
type SetInstanceCountInput struct {
	AppID     string
	Instances int
}

// SetInstanceCount records the app's instance count once scaling is done; deploys, restarts
// and rollbacks start that many.
func (a *Activities) SetInstanceCount(ctx context.Context, in SetInstanceCountInput) error {
	return a.Store.SetInstanceCount(ctx, in.AppID, in.Instances)
}

// routeDomains are the app's custom host names as its route takes them.
func routeDomains(domains []db.TargetDomain) []contract.Domain {
	if len(domains) == 0 {
		return nil
	}
	out := make([]contract.Domain, len(domains))
	for i, d := range domains {
		out[i] = contract.Domain{Hostname: d.Hostname, TLS: d.Certificate}
	}
	return out
}
