package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/skypanel/skypanel/activities/control/store"
)

// RollbackAppInput names the release to bring back. The API has checked it exists and has its
// image, and taken the app's operation lock for this workflow.
type RollbackAppInput struct {
	AppID       string
	OperationID string
	Version     int
	UserID      string
}

// RollbackApp starts the kept image of release vN with that release's config, switches nginx
// once it answers, removes the instance it replaces, and records a new release "Rollback to vN".
// Nothing is built.
func RollbackApp(ctx workflow.Context, in RollbackAppInput) (err error) {
	defer endOperation(ctx, in.AppID, &err)
	ctrl := controlContext(ctx)
	var plan store.RollbackPlan
	if err := workflow.ExecuteActivity(ctrl, storeActs.PrepareRollback, store.PrepareRollbackInput{
		AppID: in.AppID, Version: in.Version,
	}).Get(ctx, &plan); err != nil {
		return err
	}
	if plan.NodeID == "" {
		return errNoRelease
	}
	if err := nodeOffline(plan.AppTarget); err != nil {
		return err
	}
	target := plan.AppTarget
	target.CPUMillis, target.MemoryMB = plan.CPUMillis, plan.MemoryMB
	instances := instanceNames(plan.Name, in.OperationID, 1, instanceCount(target))
	instance := instances[0]
	if err := (rollout{Target: target, ReleaseID: in.OperationID, Image: plan.Image, Instances: instances}).run(ctx); err != nil {
		return err
	}
	return workflow.ExecuteActivity(ctrl, storeActs.CompleteRollback, store.CompleteRollbackInput{
		AppID: in.AppID, OperationID: in.OperationID, Version: in.Version, UserID: in.UserID, Instance: instance, URL: plan.URL,
	}).Get(ctx, nil)
}
