package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/skypanel/skypanel/activities/control/store"
)

// ConfigureAppInput is a change of the app's environment, already stored (sealed) by the API,
// which took the app's operation lock for this workflow. Description says what changed by key
// name only: no value ever enters a workflow's input.
type ConfigureAppInput struct {
	AppID       string
	OperationID string
	UserID      string
	Description string
}

// ConfigureApp rolls the app's new environment out without a build: fresh instances of the
// current image with the new variables, switched to once every one answers, the old ones drained
// and removed; then a new release records it (Heroku's behaviour). On failure the old instances
// keep serving with the old environment, and the stored change stays for the next deploy.
func ConfigureApp(ctx workflow.Context, in ConfigureAppInput) (err error) {
	defer endOperation(ctx, in.AppID, &err)
	t, err := loadReleased(ctx, in.AppID)
	if err != nil {
		return err
	}
	instances, err := rolloutCurrentImage(ctx, t, in.OperationID, in.OperationID)
	if err != nil {
		return err
	}
	return workflow.ExecuteActivity(controlContext(ctx), storeActs.CompleteConfigRelease, store.CompleteConfigReleaseInput{
		AppID: in.AppID, OperationID: in.OperationID, UserID: in.UserID, Description: in.Description,
		Instance: instances[0], URL: t.URL,
	}).Get(ctx, nil)
}
