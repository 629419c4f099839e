package temporal

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	sdktemporal "go.temporal.io/sdk/temporal"
)

// DatabaseBackupScheduleID is the Temporal Schedule that backs a managed database up on its
// interval.
func DatabaseBackupScheduleID(databaseID string) string { return "database-backups/" + databaseID }

// ScheduledDatabaseBackupWorkflow is the workflow type a database's backup schedule starts
// (workflows.ScheduledDatabaseBackup): it queues a scheduled backup in the database's queue.
const ScheduledDatabaseBackupWorkflow = "ScheduledDatabaseBackup"

// EnsureDatabaseBackupSchedule creates the database's backup schedule, or brings it to every;
// every 0 removes it. A run that comes while the last one's backup still waits is skipped.
func EnsureDatabaseBackupSchedule(ctx context.Context, c client.Client, databaseID, orgID string, every time.Duration) error {
	if every <= 0 {
		return DeleteDatabaseBackupSchedule(ctx, c, databaseID)
	}
	id := DatabaseBackupScheduleID(databaseID)
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	action := &client.ScheduleWorkflowAction{
		ID: "database-scheduled-backup/" + databaseID, Workflow: ScheduledDatabaseBackupWorkflow, TaskQueue: ControlTaskQueue,
		Args:                  []any{map[string]string{"DatabaseID": databaseID}},
		WorkflowRunTimeout:    10 * time.Minute,
		TypedSearchAttributes: sdktemporal.NewSearchAttributes(DatabaseIDKey.ValueSet(databaseID), OrgIDKey.ValueSet(orgID)),
	}
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{ID: id, Spec: spec, Action: action,
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP})
	if err == nil || !errors.Is(err, sdktemporal.ErrScheduleAlreadyRunning) {
		if err != nil {
			return fmt.Errorf("create the backup schedule of database %s: %w", databaseID, err)
		}
		return nil
	}
	return c.ScheduleClient().GetHandle(ctx, id).Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			in.Description.Schedule.Spec = &spec
			in.Description.Schedule.Action = action
			return &client.ScheduleUpdate{Schedule: &in.Description.Schedule}, nil
		},
	})
}

// DeleteDatabaseBackupSchedule removes the database's backup schedule (none is fine).
func DeleteDatabaseBackupSchedule(ctx context.Context, c client.Client, databaseID string) error {
	err := c.ScheduleClient().GetHandle(ctx, DatabaseBackupScheduleID(databaseID)).Delete(ctx)
	var notFound *serviceerror.NotFound
	if err != nil && !errors.As(err, &notFound) {
		return fmt.Errorf("delete the backup schedule of database %s: %w", databaseID, err)
	}
	return nil
}
