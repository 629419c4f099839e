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

// ensureCertificateSchedule creates the Temporal Schedule that starts RenewCertificates every
// interval (daily in production), or brings an existing one to this interval. A run that
// comes while one runs waits for it (one buffered): a trigger after a domain is added is never
// lost.
func ensureCertificateSchedule(ctx context.Context, log *slog.Logger, tc client.Client, every time.Duration) error {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	action := &client.ScheduleWorkflowAction{
		ID:                    "certificates",
		Workflow:              workflows.RenewCertificates,
		Args:                  []any{workflows.RenewCertificatesInput{}},
		TaskQueue:             sptemporal.ControlTaskQueue,
		WorkflowRunTimeout:    10 * time.Minute,
		TypedSearchAttributes: temporal.NewSearchAttributes(sptemporal.OperationKey.ValueSet("certificates")),
	}
	return ensureSchedule(ctx, log, tc, sptemporal.CertificatesScheduleID, spec, action, enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE)
}

// certificateTrigger runs the certificates schedule now, for the control activities.
func certificateTrigger(tc client.Client) func(ctx context.Context) error {
	return func(ctx context.Context) error { return sptemporal.TriggerCertificateCheck(ctx, tc) }
}
