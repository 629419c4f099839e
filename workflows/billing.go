package workflows

import (
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/skypanel/skypanel/activities/control/billing"
	"github.com/skypanel/skypanel/activities/control/store"
	"github.com/skypanel/skypanel/activities/node/nginx"
	sptemporal "github.com/skypanel/skypanel/temporal"
)

// BillingRunInput is empty when the schedule starts the run; the run bills every period that
// ended by its start time.
type BillingRunInput struct{}

// BillingRunResult says what one run did.
type BillingRunResult struct {
	Charged   billing.ChargeDuePeriodsResult
	Suspended []string // organizations whose suspension was started
	Resumed   []string // organizations whose resumption was started
}

// BillingRun charges every running app for the periods that ended (once per app and period,
// whatever retries or overlapping runs), then suspends the organizations whose wallet cannot pay
// the next period and resumes those whose wallet can again. The schedule starts it every period.
func BillingRun(ctx workflow.Context, _ BillingRunInput) (BillingRunResult, error) {
	if err := workflow.UpsertTypedSearchAttributes(ctx, sptemporal.OperationKey.ValueSet("billing")); err != nil {
		workflow.GetLogger(ctx).Warn("upsert operation search attribute", "error", err)
	}
	var res BillingRunResult
	chargeCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           sptemporal.ControlTaskQueue,
		StartToCloseTimeout: 10 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second},
	})
	if err := workflow.ExecuteActivity(chargeCtx, billActs.ChargeDuePeriods, billing.ChargeDuePeriodsInput{Now: workflow.Now(ctx)}).Get(ctx, &res.Charged); err != nil {
		return res, err
	}
	var standings billing.WalletStandingsResult
	paidUntil := res.Charged.BilledUntil
	if paidUntil.IsZero() {
		paidUntil = workflow.Now(ctx)
	}
	if err := workflow.ExecuteActivity(controlContext(ctx), billActs.WalletStandings, billing.WalletStandingsInput{PaidUntil: paidUntil}).Get(ctx, &standings); err != nil {
		return res, err
	}
	for _, org := range standings.Suspend {
		if startOrgWorkflow(ctx, SuspendOrganization, SuspendOrganizationWorkflowID(org), org, "suspend") {
			res.Suspended = append(res.Suspended, org)
		}
	}
	for _, org := range standings.Resume {
		if startOrgWorkflow(ctx, ResumeOrganization, ResumeOrganizationWorkflowID(org), org, "resume") {
			res.Resumed = append(res.Resumed, org)
		}
	}
	return res, nil
}

// startOrgWorkflow starts a suspension or resumption as an abandoned child (it outlives the
// run), unless one is already running for the organization. It reports whether it started one.
func startOrgWorkflow(ctx workflow.Context, wf any, workflowID, orgID, operation string) bool {
	childCtx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            workflowID,
		TaskQueue:             sptemporal.ControlTaskQueue,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(sptemporal.OrgIDKey.ValueSet(orgID), sptemporal.OperationKey.ValueSet(operation)),
	})
	child := workflow.ExecuteChildWorkflow(childCtx, wf, OrganizationInput{OrgID: orgID})
	if err := child.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		// Already running for this organization (a previous run started it): that one does it.
		workflow.GetLogger(ctx).Info("organization workflow not started", "org_id", orgID, "operation", operation, "error", err)
		return false
	}
	return true
}

// OrganizationInput names the organization a suspension or resumption acts on.
type OrganizationInput struct {
	OrgID string
}

// SuspendOrganization suspends every running app of an organization whose wallet cannot pay:
// nginx answers 402 for it, its instances are drained and removed, its usage (and billing)
// stops; nothing is deleted. An app busy with another operation is left for the next run.
func SuspendOrganization(ctx workflow.Context, in OrganizationInput) ([]string, error) {
	var apps, suspended []string
	if err := workflow.ExecuteActivity(controlContext(ctx), storeActs.ListOrgApps, store.ListOrgAppsInput{OrgID: in.OrgID, Status: store.AppRunning}).Get(ctx, &apps); err != nil {
		return nil, err
	}
	// Each app's suspension takes the app's turn (SuspendApp), so an app busy with a deploy is
	// suspended right after it instead of skipped. Runs started before did the work here.
	if workflow.GetVersion(ctx, "queued-suspension", workflow.DefaultVersion, 1) == 1 {
		suspended, err := queueOnApps(ctx, in.OrgID, apps, store.OpSuspend)
		if err != nil {
			return suspended, err
		}
		// Its databases are stopped, each in its own turn (SuspendDatabase), never deleted.
		if workflow.GetVersion(ctx, "database-suspension", workflow.DefaultVersion, 1) == 1 {
			return queueOnDatabases(ctx, in.OrgID, store.DatabaseAvailable, store.DatabaseOpSuspend, suspended)
		}
		return suspended, nil
	}
	for _, appID := range apps {
		done, err := withAppLock(ctx, in.OrgID, appID, store.OpSuspend, func() error {
			return suspendApp(ctx, appID, workflow.GetInfo(ctx).WorkflowExecution.RunID)
		})
		if err != nil {
			return suspended, err
		}
		if done {
			suspended = append(suspended, appID)
		}
	}
	return suspended, nil
}

// suspendApp puts the app's 402 page up, drains its instances and records the suspension.
// operationID names the page (the suspension's operation, or the run that did it before the
// queue).
func suspendApp(ctx workflow.Context, appID, operationID string) error {
	t, err := loadTarget(ctx, appID)
	if err != nil {
		return err
	}
	if t.NodeID != "" {
		if err := takeOffline(ctx, t, nginx.RouteSuspended, operationID); err != nil {
			return err
		}
	}
	return workflow.ExecuteActivity(controlContext(ctx), storeActs.MarkAppSuspended, store.MarkAppSuspendedInput{AppID: appID}).Get(ctx, nil)
}

// ResumeOrganization brings every suspended app of an organization back with the zero-downtime
// start (fresh instances, ready, routed), once its wallet pays the next period again.
func ResumeOrganization(ctx workflow.Context, in OrganizationInput) ([]string, error) {
	var apps, resumed []string
	if err := workflow.ExecuteActivity(controlContext(ctx), storeActs.ListOrgApps, store.ListOrgAppsInput{OrgID: in.OrgID, Status: store.AppSuspended}).Get(ctx, &apps); err != nil {
		return nil, err
	}
	if workflow.GetVersion(ctx, "queued-suspension", workflow.DefaultVersion, 1) == 1 {
		resumed, err := queueOnApps(ctx, in.OrgID, apps, store.OpResume)
		if err != nil {
			return resumed, err
		}
		// Its suspended databases are started again, each in its own turn (ResumeDatabase).
		if workflow.GetVersion(ctx, "database-suspension", workflow.DefaultVersion, 1) == 1 {
			return queueOnDatabases(ctx, in.OrgID, store.DatabaseSuspended, store.DatabaseOpResume, resumed)
		}
		return resumed, nil
	}
	operationID := workflow.GetInfo(ctx).WorkflowExecution.RunID
	for _, appID := range apps {
		done, err := withAppLock(ctx, in.OrgID, appID, store.OpResume, func() error {
			return startRelease(ctx, AppOperationInput{AppID: appID, OperationID: operationID})
		})
		if err != nil {
			return resumed, err
		}
		if done {
			resumed = append(resumed, appID)
		}
	}
	return resumed, nil
}

// queueOnApps queues an operation of kind on each app, asked by billing; it returns the apps
// whose operation was queued (an app deleted or changed meanwhile is skipped).
func queueOnApps(ctx workflow.Context, orgID string, apps []string, kind string) ([]string, error) {
	var queued []string
	for _, appID := range apps {
		var operationID string
		if err := workflow.ExecuteActivity(controlContext(ctx), storeActs.QueueAppOperation, store.QueueAppOperationInput{
			OrgID: orgID, AppID: appID, Kind: kind, Via: "billing",
		}).Get(ctx, &operationID); err != nil {
			return queued, err
		}
		if operationID != "" {
			queued = append(queued, appID)
		}
	}
	return queued, nil
}

// queueOnDatabases queues an operation of kind, asked by billing, on each of the
// organization's databases in status; it returns queued with the databases whose operation was
// queued appended (one deleted, changed or already being handled meanwhile is skipped).
func queueOnDatabases(ctx workflow.Context, orgID, status, kind string, queued []string) ([]string, error) {
	var databases []string
	if err := workflow.ExecuteActivity(controlContext(ctx), storeActs.ListOrgDatabases, store.ListOrgDatabasesInput{OrgID: orgID, Status: status}).Get(ctx, &databases); err != nil {
		return queued, err
	}
	for _, databaseID := range databases {
		var operationID string
		if err := workflow.ExecuteActivity(controlContext(ctx), storeActs.QueueDatabaseOperation, store.QueueDatabaseOperationInput{
			OrgID: orgID, DatabaseID: databaseID, Kind: kind, Via: "billing",
		}).Get(ctx, &operationID); err != nil {
			return queued, err
		}
		if operationID != "" {
			queued = append(queued, databaseID)
		}
	}
	return queued, nil
}

// SuspendApp suspends one app of an organization whose wallet cannot pay, in the app's turn:
// nginx answers 402 for it, its instances are drained and removed, its usage (and billing)
// stops; nothing is deleted.
func SuspendApp(ctx workflow.Context, in AppOperationInput) (err error) {
	defer endOperation(ctx, in.AppID, &err)
	return suspendApp(ctx, in.AppID, in.OperationID)
}

// ResumeApp brings a suspended app back with the zero-downtime start, in the app's turn, once
// its organization's wallet pays again.
func ResumeApp(ctx workflow.Context, in AppOperationInput) (err error) {
	defer endOperation(ctx, in.AppID, &err)
	return startRelease(ctx, in)
}

// withAppLock runs op under the app's operation lock, like a customer's operation; an app whose
// lock is held, or that is no longer in the state the kind needs, is skipped (done false).
func withAppLock(ctx workflow.Context, orgID, appID, kind string, op func() error) (bool, error) {
	var locked bool
	if err := workflow.ExecuteActivity(controlContext(ctx), storeActs.LockApp, store.LockAppInput{OrgID: orgID, AppID: appID, Kind: kind}).Get(ctx, &locked); err != nil {
		return false, err
	}
	if !locked {
		workflow.GetLogger(ctx).Info("app skipped: busy or in another state", "app_id", appID, "operation", kind)
		return false, nil
	}
	defer releaseLock(ctx, appID)
	if err := op(); err != nil {
		return false, err
	}
	return true, nil
}
