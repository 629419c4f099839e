package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	sptemporal "github.com/skypanel/skypanel/temporal"
	"github.com/skypanel/skypanel/workflows"
)

// ensureBillingSchedule creates the Temporal Schedule that starts BillingRun every period, or
// brings an existing one to this period. Overlapping runs are skipped (and would be harmless:
// every charge happens once per app and period).
func ensureBillingSchedule(ctx context.Context, log *slog.Logger, tc client.Client, period time.Duration) error {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: period}}}
	action := &client.ScheduleWorkflowAction{
		ID:                    "billing",
		Workflow:              workflows.BillingRun,
		Args:                  []any{workflows.BillingRunInput{}},
		TaskQueue:             sptemporal.ControlTaskQueue,
		WorkflowRunTimeout:    max(period, 10*time.Minute),
		TypedSearchAttributes: temporal.NewSearchAttributes(sptemporal.OperationKey.ValueSet("billing")),
	}
	_, err := tc.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:      sptemporal.BillingScheduleID,
		Spec:    spec,
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		Action:  action,
	})
	if err == nil {
		log.Info("billing schedule created", "schedule_id", sptemporal.BillingScheduleID, "period", period)
		return nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return fmt.Errorf("create the billing schedule: %w", err)
	}
	log.Info("billing schedule updated", "schedule_id", sptemporal.BillingScheduleID, "period", period)
	handle := tc.ScheduleClient().GetHandle(ctx, sptemporal.BillingScheduleID)
	return handle.Update(ctx, client.ScheduleUpdateOptions{
		// Always rewritten: the period may have changed, and the action's input is re-encrypted
		// under the current primary key (a rotation must not leave it under a key to be removed).
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			in.Description.Schedule.Spec = &spec
			in.Description.Schedule.Action = action
			return &client.ScheduleUpdate{Schedule: &in.Description.Schedule}, nil
		},
	})
}
