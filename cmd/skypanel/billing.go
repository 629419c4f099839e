package main

import (
	"context"
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
	return ensureSchedule(ctx, log, tc, sptemporal.BillingScheduleID, spec, action, enumspb.SCHEDULE_OVERLAP_POLICY_SKIP)
}
