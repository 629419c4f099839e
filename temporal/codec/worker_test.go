package codec

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdktemporal "go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/skypanel/skypanel/cmd/skypanel/devharness/devserver"
)

type touchInput struct{ AppID string }

// Workers with the encryption converters against a real Temporal server: a workflow started by
// a client without the platform key (plain JSON input, as any other client of the frontend
// would send) fails before its code runs, non-retryably, saying why; so does an activity whose
// input another worker scheduled in plaintext. The same work sent encrypted runs.
func TestWorkersRefusePlaintextWorkflowAndActivityInput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ts, err := devserver.Start(ctx, devserver.Options{UIPort: -1})
	if err != nil {
		t.Fatalf("start the Temporal dev server (make deps installs it): %v", err)
	}
	defer ts.Stop(context.Background()) //nolint:errcheck

	ring := testKeyring(t, "k1")
	dc, fc := EncryptionConverters(ring)
	platform, err := client.Dial(client.Options{HostPort: ts.Address(), Namespace: ts.Namespace(), DataConverter: dc, FailureConverter: fc})
	require.NoError(t, err)
	defer platform.Close()
	outsider, err := client.Dial(client.Options{HostPort: ts.Address(), Namespace: ts.Namespace()})
	require.NoError(t, err)
	defer outsider.Close()

	// The platform's worker: a workflow and an activity that count what they did.
	var workflowRuns, activityRuns atomic.Int32
	touch := func(context.Context, touchInput) error { activityRuns.Add(1); return nil }
	touchWorkflow := func(ctx workflow.Context, in touchInput) error {
		workflowRuns.Add(1)
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{TaskQueue: "node-q", StartToCloseTimeout: 10 * time.Second})
		return workflow.ExecuteActivity(ctx, "Touch", in).Get(ctx, nil)
	}
	control := worker.New(platform, "control-q", worker.Options{})
	control.RegisterWorkflowWithOptions(touchWorkflow, workflow.RegisterOptions{Name: "TouchApp"})
	require.NoError(t, control.Start())
	defer control.Stop()
	node := worker.New(platform, "node-q", worker.Options{})
	node.RegisterActivityWithOptions(touch, activity.RegisterOptions{Name: "Touch"})
	require.NoError(t, node.Start())
	defer node.Stop()

	requirePlaintextRefusal := func(err error, what string) {
		t.Helper()
		var appErr *sdktemporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != ErrTypePlaintextPayload || !appErr.NonRetryable() {
			t.Fatalf("%s: %v, want a %s failure", what, err, ErrTypePlaintextPayload)
		}
	}

	// A workflow started in plaintext fails: its code never runs, so nothing happens.
	run, err := outsider.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "control-q"}, "TouchApp", touchInput{AppID: "app-1"})
	require.NoError(t, err)
	// (Read through the platform's client: the failure is encrypted like every payload.)
	runErr := platform.GetWorkflow(ctx, run.GetID(), run.GetRunID()).Get(ctx, nil)
	var wfErr *sdktemporal.WorkflowExecutionError
	require.ErrorAs(t, runErr, &wfErr)
	desc, err := platform.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, desc.WorkflowExecutionInfo.Status)
	require.Zero(t, workflowRuns.Load(), "the workflow's code ran on plaintext input")
	requirePlaintextRefusal(runErr, "workflow started in plaintext")

	// An activity scheduled in plaintext (by a worker of another client) fails once, without
	// running, and is not retried.
	rogue := worker.New(outsider, "rogue-q", worker.Options{})
	rogue.RegisterWorkflowWithOptions(touchWorkflow, workflow.RegisterOptions{Name: "RogueTouch"})
	require.NoError(t, rogue.Start())
	defer rogue.Stop()
	run, err = outsider.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "rogue-q"}, "RogueTouch", touchInput{AppID: "app-1"})
	require.NoError(t, err)
	err = platform.GetWorkflow(ctx, run.GetID(), run.GetRunID()).Get(ctx, nil)
	var actErr *sdktemporal.ActivityError
	require.ErrorAs(t, err, &actErr, "the activity must fail")
	require.Zero(t, activityRuns.Load(), "the activity ran on plaintext input")
	requirePlaintextRefusal(err, "activity scheduled in plaintext")
	var appErr *sdktemporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.True(t, appErr.NonRetryable(), "a refused activity must not be retried: %v", err)

	// The same work, encrypted, runs.
	before := workflowRuns.Load()
	run, err = platform.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "control-q"}, "TouchApp", touchInput{AppID: "app-1"})
	require.NoError(t, err)
	require.NoError(t, run.Get(ctx, nil))
	require.Equal(t, before+1, workflowRuns.Load())
	require.Equal(t, int32(1), activityRuns.Load())
}
