package apiserver

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"go.temporal.io/sdk/client"

	"github.com/skypanel/skypanel/activities/contract"
	"github.com/skypanel/skypanel/db"
	sptemporal "github.com/skypanel/skypanel/temporal"
	"github.com/skypanel/skypanel/temporal/operations"
	"github.com/skypanel/skypanel/workflows"
)

type scaleInput struct {
	ID   string `path:"id" maxLength:"64"`
	Body struct {
		Instances int `json:"instances" minimum:"1" maximum:"10" doc:"How many instances of the current release serve the app (1-10)"`
	}
}

type instanceView struct {
	Name      string    `json:"name"`
	Container string    `json:"container_id"`
	ReleaseID string    `json:"release_id"`
	State     string    `json:"state" doc:"running, restarting, exited, ... or crashing: it keeps dying (see exit_code and last_output)"`
	Health    string    `json:"health" enum:"healthy,unhealthy,down" doc:"healthy: it answered HTTP on its port when listed; unhealthy: running but not answering; down: not running"`
	Current   bool      `json:"current" doc:"runs the current release"`
	Restarts  int       `json:"restarts"`
	ExitCode  int       `json:"exit_code"`
	StartedAt time.Time `json:"started_at"`
	// LastOutput is the app's last output when the instance is not running or keeps crashing.
	LastOutput string `json:"last_output,omitempty"`
}

func (s *Server) registerInstances() {
	huma.Register(s.api, s.op("scale-application", http.MethodPost, "/api/paas/applications/{id}/scale",
		"Run 1-10 instances of the current release; nginx balances across the healthy ones", "applications", http.StatusAccepted, false),
		func(ctx context.Context, in *scaleInput) (*operationOutput, error) {
			if err := s.store.CheckRoomToScale(ctx, principal(ctx).OrgID, in.ID, in.Body.Instances); err != nil {
				return nil, s.problem(ctx, "application", err)
			}
			return s.enqueue(ctx, operations.Request{AppID: in.ID, Kind: db.OpScale, Instances: in.Body.Instances})
		})
	huma.Register(s.api, s.op("list-instances", http.MethodGet, "/api/paas/applications/{id}/instances",
		"The application's containers on its node, with their state", "applications", 0, false),
		s.listInstances)
}

// listInstances asks the app's node through a short workflow (every machine step is an
// activity on the node's queue) and waits for the answer.
func (s *Server) listInstances(ctx context.Context, in *idPath) (*items[instanceView], error) {
	app, err := s.store.GetApplication(ctx, principal(ctx).OrgID, in.ID)
	if err != nil {
		return nil, s.problem(ctx, "application", err)
	}
	if app.NodeID == nil {
		return listOf([]instanceView{}), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	run, err := s.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       workflows.OperationWorkflowID("instances", app.ID, uuid.NewString()),
		TaskQueue:                sptemporal.ControlTaskQueue,
		WorkflowExecutionTimeout: 20 * time.Second,
	}, workflows.ListAppInstances, workflows.ListAppInstancesInput{AppID: app.ID})
	var list contract.ListInstancesResult
	if err == nil {
		err = run.Get(ctx, &list)
	}
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, huma.Error503ServiceUnavailable("the application's node did not answer in time")
		}
		s.log.Error("list instances", "app_id", app.ID, "error", err)
		return nil, huma.Error503ServiceUnavailable("could not reach the application's node")
	}
	target, err := s.store.AppTargetByID(ctx, app.ID)
	if err != nil {
		return nil, s.problem(ctx, "application", err)
	}
	views := make([]instanceView, 0, len(list.Instances))
	for _, inst := range list.Instances {
		state := inst.State
		if inst.Crashing {
			state = "crashing"
		}
		health := "down"
		if inst.State == "running" {
			health = "unhealthy"
			if inst.Healthy {
				health = "healthy"
			}
		}
		views = append(views, instanceView{
			Name: inst.Name, Container: inst.ContainerID, ReleaseID: inst.ReleaseID, State: state, Health: health, LastOutput: inst.LastOutput,
			Current:  inst.ReleaseID != "" && inst.ReleaseID == target.ReleaseID,
			Restarts: inst.Restarts, ExitCode: inst.ExitCode, StartedAt: inst.StartedAt,
		})
	}
	return listOf(views), nil
}
