package store

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/activity"

	"github.com/skypanel/skypanel/db"
)

// ListOrgAppsInput asks for an organization's apps in one status.
type ListOrgAppsInput struct {
	OrgID  string
	Status string
}

// ListOrgApps lists the ids of an organization's apps in a status (running, suspended).
func (a *Activities) ListOrgApps(ctx context.Context, in ListOrgAppsInput) ([]string, error) {
	return a.Store.AppsWithStatus(ctx, in.OrgID, in.Status)
}

// LockAppInput asks for an app's operation lock for the calling workflow.
type LockAppInput struct {
	OrgID string
	AppID string
	Kind  string // db.OpSuspend or db.OpResume
}

// LockApp takes the app's operation lock for the calling workflow, as the API does for a
// customer's operation. It reports false, without error, when the app is busy with another
// operation or no longer in the state the kind needs: billing tries again at its next run.
func (a *Activities) LockApp(ctx context.Context, in LockAppInput) (bool, error) {
	if a.WorkflowRunning == nil {
		return false, errors.New("store activities: WorkflowRunning is not set")
	}
	_, err := a.Store.BeginOperation(ctx, in.OrgID, in.AppID, db.OperationRequest{
		Kind: in.Kind, WorkflowID: activity.GetInfo(ctx).WorkflowExecution.ID, StillRunning: a.WorkflowRunning,
	})
	var busy *db.BusyError
	var invalid *db.InvalidStateError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &busy), errors.As(err, &invalid), errors.Is(err, db.ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("lock app %s for %s: %w", in.AppID, in.Kind, err)
}

// MarkAppSuspendedInput names an app billing suspended.
type MarkAppSuspendedInput struct {
	AppID string
}

// MarkAppSuspended records the suspension; the app's usage (and so its billing) stops now.
func (a *Activities) MarkAppSuspended(ctx context.Context, in MarkAppSuspendedInput) error {
	return a.Store.SetAppSuspended(ctx, in.AppID)
}
