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

// QueueAppOperationInput is an operation the platform asks for on an app.
type QueueAppOperationInput struct {
	OrgID string
	AppID string
	Kind  string // db.OpSuspend or db.OpResume
	Via   string // what asks: "billing"
}

// QueueAppOperation queues the operation in the app's turn and returns its id, or "" when the
// app refuses it (deleted, being deleted, its queue full, or not in a state the kind needs
// while idle): billing tries again at its next run.
func (a *Activities) QueueAppOperation(ctx context.Context, in QueueAppOperationInput) (string, error) {
	if a.Operations == nil {
		return "", errors.New("store activities: Operations is not set")
	}
	id, err := a.Operations.EnqueueFor(ctx, in.OrgID, in.AppID, in.Kind, in.Via)
	var invalid *db.InvalidStateError
	var full *db.QueueFullError
	switch {
	case err == nil:
		return id, nil
	case errors.As(err, &invalid), errors.As(err, &full), errors.Is(err, db.ErrNotFound):
		activity.GetLogger(ctx).Info("app refused the operation", "app_id", in.AppID, "operation", in.Kind, "reason", err.Error())
		return "", nil
	}
	return "", fmt.Errorf("queue %s on app %s: %w", in.Kind, in.AppID, err)
}

// LockAppInput asks for an app's operation lock for the calling workflow.
type LockAppInput struct {
	OrgID string
	AppID string
	Kind  string // db.OpSuspend or db.OpResume
}

// LockApp answered whether billing took an app's operation lock, in suspensions and
// resumptions started before billing queued them in the app's turn (SuspendApp, ResumeApp). The
// lock is gone: such a run skips every app, and the next billing run queues them.
func (a *Activities) LockApp(ctx context.Context, in LockAppInput) (bool, error) {
	activity.GetLogger(ctx).Info("app skipped: billing now queues its operations in the app's turn", "app_id", in.AppID, "operation", in.Kind)
	return false, nil
}

// MarkAppSuspendedInput names an app billing suspended.
type MarkAppSuspendedInput struct {
	AppID string
}

// MarkAppSuspended records the suspension; the app's usage (and so its billing) stops now.
func (a *Activities) MarkAppSuspended(ctx context.Context, in MarkAppSuspendedInput) error {
	return a.Store.SetAppSuspended(ctx, in.AppID)
}
