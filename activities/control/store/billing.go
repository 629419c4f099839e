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
	switch {
	case err == nil:
		return id, nil
	case refusedByQueue(err):
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

// ListOrgDatabasesInput asks for an organization's databases in one status.
type ListOrgDatabasesInput struct {
	OrgID  string
	Status string // available, suspended
}

// ListOrgDatabases lists the ids of an organization's databases in a status.
func (a *Activities) ListOrgDatabases(ctx context.Context, in ListOrgDatabasesInput) ([]string, error) {
	return a.Store.DatabasesWithStatus(ctx, in.OrgID, in.Status)
}

// QueueDatabaseOperationInput is an operation billing asks for on a database.
type QueueDatabaseOperationInput struct {
	OrgID      string
	DatabaseID string
	Kind       string // db.DatabaseOpSuspend or db.DatabaseOpResume
	Via        string // "billing"
}

// QueueDatabaseOperation queues a suspension or resumption in the database's turn and returns
// its id, or "" when there is nothing to queue: one of that kind already waits or runs, the
// database is not in the state the kind starts from (a suspension needs it available, a
// resumption suspended), or it refuses (deleted, being deleted, its queue full). Billing tries
// again at its next run.
func (a *Activities) QueueDatabaseOperation(ctx context.Context, in QueueDatabaseOperationInput) (string, error) {
	if a.Operations == nil {
		return "", errors.New("store activities: Operations is not set")
	}
	d, err := a.Store.DatabaseByID(ctx, in.DatabaseID)
	if errors.Is(err, db.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	from := db.DatabaseAvailable
	if in.Kind == db.DatabaseOpResume {
		from = db.DatabaseSuspended
	}
	pending, err := a.Store.DatabaseOperationPending(ctx, in.DatabaseID, in.Kind)
	if err != nil {
		return "", err
	}
	if d.OrgID != in.OrgID || d.Status != from || pending {
		activity.GetLogger(ctx).Info("database operation not queued", "database_id", in.DatabaseID, "operation", in.Kind,
			"status", d.Status, "already_pending", pending)
		return "", nil
	}
	id, err := a.Operations.QueueDatabaseOperation(ctx, in.OrgID, in.DatabaseID, in.Kind, in.Via)
	switch {
	case err == nil:
		return id, nil
	case refusedByQueue(err):
		activity.GetLogger(ctx).Info("database refused the operation", "database_id", in.DatabaseID, "operation", in.Kind, "reason", err.Error())
		return "", nil
	}
	return "", fmt.Errorf("queue %s on database %s: %w", in.Kind, in.DatabaseID, err)
}

// refusedByQueue: the app or database turned the operation down (deleted, not in a state the
// kind needs, its queue full); billing tries again at its next run.
func refusedByQueue(err error) bool {
	var invalid *db.InvalidStateError
	var full *db.QueueFullError
	return errors.As(err, &invalid) || errors.As(err, &full) || errors.Is(err, db.ErrNotFound)
}
