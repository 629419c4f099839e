// Package workflows holds SkyPanel's Temporal workflows: deterministic code only. Each workflow
// runs on the `control` task queue; every step that touches a machine is an activity on that
// node's own queue.
package workflows

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/skypanel/skypanel/activities/control/billing"
	"github.com/skypanel/skypanel/activities/control/store"
	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/activities/node/gitclone"
	"github.com/skypanel/skypanel/activities/node/nginx"
	sptemporal "github.com/skypanel/skypanel/temporal"
)

// Typed nil receivers: workflows name activities by method, the workers register the structs.
var (
	storeActs  *store.Activities
	gitActs    *gitclone.Activities
	dockerActs *docker.Activities
	nginxActs  *nginx.Activities
	billActs   *billing.Activities
)

// NodePickupTimeout is how long a node-bound activity may wait for its node to take it: past it
// the node counts as offline and the operation fails instead of hanging.
const NodePickupTimeout = 2 * time.Minute

// ReadyTimeout is how long a new instance has to answer HTTP on $PORT.
const ReadyTimeout = 60 * time.Second

func controlContext(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              sptemporal.ControlTaskQueue,
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: 10 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
		},
	})
}

// nodeContext routes activities to nodeID's queue. heartbeat is 0 for short steps.
func nodeContext(ctx workflow.Context, nodeID string, startToClose, heartbeat time.Duration, attempts int32) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              sptemporal.NodeTaskQueue(nodeID),
		ScheduleToStartTimeout: NodePickupTimeout,
		StartToCloseTimeout:    startToClose,
		HeartbeatTimeout:       heartbeat,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    2 * time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
			MaximumAttempts:    attempts,
		},
	})
}

// failureReason turns an activity error into the sentence a customer reads.
func failureReason(err error) string {
	var timeoutErr *temporal.TimeoutError
	if errors.As(err, &timeoutErr) {
		switch timeoutErr.TimeoutType() {
		case enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START:
			return fmt.Sprintf("the node did not pick up the work within %s: it looks offline", NodePickupTimeout)
		case enumspb.TIMEOUT_TYPE_HEARTBEAT:
			return "the node stopped reporting progress (heartbeat timeout): it may have crashed"
		default:
			return "the step timed out"
		}
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) {
		return "the operation was canceled"
	}
	return err.Error()
}

// endOperation records how the workflow's operation ended, from *result (the error the
// workflow returns; nil result: succeeded), and hands the app's turn to its next operation,
// whatever happened to the workflow. Deferred by every operation workflow.
func endOperation(ctx workflow.Context, appID string, result *error) {
	endOperationWithOutcome(ctx, appID, result, nil)
}

// endOperationWithOutcome is endOperation for a workflow that says what it did when it
// succeeds (*outcome, listed as the operation's reason).
func endOperationWithOutcome(ctx workflow.Context, appID string, result *error, outcome *string) {
	ctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	in := store.ReleaseOperationInput{AppID: appID, WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID, Status: store.OperationSucceeded}
	if outcome != nil {
		in.Reason = *outcome
	}
	if result != nil && *result != nil {
		in.Status, in.Reason = store.OperationFailed, failureReason(*result)
		var canceled *temporal.CanceledError
		if errors.As(*result, &canceled) {
			in.Status, in.Reason = store.OperationCancelled, "cancelled while it cloned or built; the previous release kept serving"
		}
	}
	if err := workflow.ExecuteActivity(controlContext(ctx), storeActs.ReleaseOperation, in).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("end operation", "app_id", appID, "error", err)
	}
}

// releaseLock frees the app for its next operation after billing's own work under the app's
// lock (runs started before billing queued its suspensions).
func releaseLock(ctx workflow.Context, appID string) {
	endOperation(ctx, appID, nil)
}

// instanceName derives a container name from the app and the operation, so a retried start
// finds the container it made before.
func instanceName(appName, operationID string) string {
	short := operationID
	if len(short) > 12 {
		short = short[:12]
	}
	return "sp-" + appName + "-" + short
}
