package operations

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/skypanel/skypanel/cmd/skypanel/devharness/devserver"
	"github.com/skypanel/skypanel/cmd/skypanel/devharness/localcluster"
	"github.com/skypanel/skypanel/db"
	sptemporal "github.com/skypanel/skypanel/temporal"
)

// The sweep against a real Postgres and a real Temporal dev server: an operation given its turn
// whose workflow was never started (a crash between the two) is started; one whose workflow
// was terminated without ending it is ended failed with the reason, and the next one starts;
// a second sweep changes nothing.
func TestSweepStartsALostTurnAndEndsATerminatedRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	pg, err := localcluster.Start(ctx, localcluster.Options{Dir: filepath.Join(t.TempDir(), "pg")})
	if err != nil {
		t.Fatalf("start Postgres (make deps installs it): %v", err)
	}
	defer pg.Stop(context.Background()) //nolint:errcheck
	pool, err := db.Open(ctx, pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := db.Migrate(ctx, pool, quiet); err != nil {
		t.Fatal(err)
	}
	store := db.NewStore(pool)

	ts, err := devserver.Start(ctx, devserver.Options{UIPort: -1})
	if err != nil {
		t.Fatalf("start the Temporal dev server (make deps installs it): %v", err)
	}
	defer ts.Stop(context.Background()) //nolint:errcheck
	tc, err := client.Dial(client.Options{HostPort: ts.Address(), Namespace: ts.Namespace(), Logger: nil})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	// A stand-in for DeployApp that runs until it is stopped from outside.
	w := worker.New(tc, sptemporal.ControlTaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(func(ctx workflow.Context, _ DeployInputStandIn) error {
		return workflow.Await(ctx, func() bool { return false })
	}, workflow.RegisterOptions{Name: "DeployApp"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	user, err := store.CreateUser(ctx, "sweep@example.com", "Sweep", "customer", []byte("sweep-token-hash"))
	if err != nil {
		t.Fatal(err)
	}
	region, _ := store.RegionByRef(ctx, "local")
	plan, _ := store.PlanByRef(ctx, "starter")
	runtime, _ := store.RuntimeByRef(ctx, "dockerfile")
	app, err := store.CreateApplication(ctx, db.NewApplication{OrgID: user.OrgID, Name: "sweep", RuntimeID: runtime.ID, PlanID: plan.ID,
		RegionID: region.ID, GitURL: "https://example.com/sweep.git", GitBranch: "main", DrainSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	owner := &Owner{Store: store, Temporal: tc, Log: quiet, StartGrace: time.Millisecond}
	request := func() db.Enqueued {
		op, err := New(Request{OrgID: user.OrgID, AppID: app.ID, Kind: db.OpDeploy, UserID: user.ID})
		if err != nil {
			t.Fatal(err)
		}
		enq, err := store.EnqueueOperation(ctx, user.OrgID, app.ID, op)
		if err != nil {
			t.Fatal(err)
		}
		return enq
	}
	status := func(workflowID string) enumspb.WorkflowExecutionStatus {
		desc, err := tc.DescribeWorkflowExecution(ctx, workflowID, "")
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			return enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED
		}
		if err != nil {
			t.Fatal(err)
		}
		return desc.GetWorkflowExecutionInfo().GetStatus()
	}

	// The turn is given, and the process that should start the workflow dies.
	lost := request()
	if lost.Start == nil || status(lost.Operation.WorkflowID) != enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED {
		t.Fatalf("setup: %+v", lost.Start)
	}
	time.Sleep(5 * time.Millisecond) // past the test's start grace
	if err := owner.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if s := status(lost.Operation.WorkflowID); s != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Fatalf("after the sweep the lost operation's workflow is %s, want running", s)
	}

	// The next one waits; the first is terminated by hand, which never records its end.
	next := request()
	if err := tc.TerminateWorkflow(ctx, lost.Operation.WorkflowID, "", "by hand"); err != nil {
		t.Fatal(err)
	}
	if err := owner.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	ended, err := store.GetOperation(ctx, user.OrgID, app.ID, lost.Operation.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ended.Status != db.OperationFailed || !strings.Contains(ended.Reason, "terminated") {
		t.Errorf("the terminated operation: %s %q, want failed saying it was terminated", ended.Status, ended.Reason)
	}
	if dep, _ := store.GetDeployment(ctx, user.OrgID, app.ID, lost.Operation.ID); dep.Status != db.DeploymentFailed {
		t.Errorf("its deployment: %s, want failed", dep.Status)
	}
	if s := status(next.Operation.WorkflowID); s != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Fatalf("the next operation's workflow is %s, want running", s)
	}

	// Sweeping again changes nothing: the next one keeps its one run.
	if err := owner.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if op, _ := store.GetOperation(ctx, user.OrgID, app.ID, next.Operation.ID); op.Status != db.OperationRunning {
		t.Errorf("the next operation after a second sweep: %s", op.Status)
	}
}

// DeployInputStandIn decodes DeployApp's input in the stand-in workflow.
type DeployInputStandIn struct {
	AppID        string
	DeploymentID string
}
