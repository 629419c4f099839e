package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// ensureSchedule creates the Temporal Schedule id, or brings an existing one to spec, action
// and overlap. It is always rewritten: the interval may have changed, and the action's input is
// re-encrypted under the current primary key (a rotation must not leave it under a key to be
// removed).
func ensureSchedule(ctx context.Context, log *slog.Logger, tc client.Client, id string, spec client.ScheduleSpec,
	action *client.ScheduleWorkflowAction, overlap enumspb.ScheduleOverlapPolicy) error {
	_, err := tc.ScheduleClient().Create(ctx, client.ScheduleOptions{ID: id, Spec: spec, Overlap: overlap, Action: action})
	if err == nil {
		log.Info("schedule created", "schedule_id", id, "every", spec.Intervals[0].Every)
		return nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return fmt.Errorf("create the schedule %s: %w", id, err)
	}
	log.Info("schedule updated", "schedule_id", id, "every", spec.Intervals[0].Every)
	return tc.ScheduleClient().GetHandle(ctx, id).Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			in.Description.Schedule.Spec = &spec
			in.Description.Schedule.Action = action
			if in.Description.Schedule.Policy != nil {
				in.Description.Schedule.Policy.Overlap = overlap
			}
			return &client.ScheduleUpdate{Schedule: &in.Description.Schedule}, nil
		},
	})
}
