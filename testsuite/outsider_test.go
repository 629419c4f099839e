package testsuite

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/activities/control/store"
	sptemporal "github.com/skypanel/skypanel/temporal"
	"github.com/skypanel/skypanel/temporal/codec"
	"github.com/skypanel/skypanel/workflows"
)

// Whoever reaches the Temporal frontend can start workflows. A DeleteApp started there, not
// through the API, changes nothing: in plain JSON (any client without the platform key) the
// workers refuse its input; encrypted (a client that has the key) it does not hold the app's
// turn, so its first step refuses it. The app keeps serving either way.
func TestWorkflowsStartedOutsideTheAPIChangeNothing(t *testing.T) {
	owner, app, _, _ := liveHelloApp(t, "outsider", "still here")
	defer owner.deleteAndWait(t, app.ID)
	// The deploy's operation ends just after its deployment succeeded: start from an idle queue.
	owner.waitIdle(t, app.ID)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	outsider, err := client.Dial(client.Options{HostPort: platform.temporalAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer outsider.Close()
	attempts := []struct {
		name    string
		via     client.Client
		errType string
	}{
		{"plain JSON", outsider, codec.ErrTypePlaintextPayload},
		{"encrypted, without the app's turn", platform.temporal, store.ErrTypeNotAppTurn},
	}
	for _, attempt := range attempts {
		operationID := uuid.NewString()
		run, err := attempt.via.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID:        workflows.OperationWorkflowID("delete", app.ID, operationID),
			TaskQueue: sptemporal.ControlTaskQueue,
		}, "DeleteApp", workflows.AppOperationInput{AppID: app.ID, OperationID: operationID})
		if err != nil {
			t.Fatalf("%s: start DeleteApp: %v", attempt.name, err)
		}
		// Read through the platform's client: the failure is encrypted like every payload.
		err = platform.temporal.GetWorkflow(ctx, run.GetID(), run.GetRunID()).Get(ctx, nil)
		var refusal *temporal.ApplicationError
		if !errors.As(err, &refusal) || refusal.Type() != attempt.errType {
			t.Errorf("%s: DeleteApp ended with %v, want a %s failure", attempt.name, err, attempt.errType)
		}

		if got := owner.getApp(t, app.ID); got.Status != "running" {
			t.Errorf("after the %s DeleteApp the app is %q, want running", attempt.name, got.Status)
		}
		if status, body, _ := platform.throughNginx(app.Name + ".apps.localhost"); status != http.StatusOK || body != "still here" {
			t.Errorf("after the %s DeleteApp the app answers %d %q", attempt.name, status, body)
		}
		if q := owner.queue(t, app.ID); len(q) != 0 {
			t.Errorf("after the %s DeleteApp the app's queue holds %s", attempt.name, describeQueue(q))
		}
	}
	// The API's own operations still run: the next restart holds the turn.
	owner.operation(t, app.ID, "restart")
}
