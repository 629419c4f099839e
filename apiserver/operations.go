package apiserver

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/temporal/operations"
)

// operationOutput answers an accepted operation: it waits in the app's queue (position 1, 2,
// …) or runs already (position 0).
type operationOutput struct {
	Body struct {
		OperationID  string `json:"operation_id"`
		DeploymentID string `json:"deployment_id,omitempty"`
		WorkflowID   string `json:"workflow_id"`
		Status       string `json:"status" doc:"queued: accepted, it runs after the operations ahead of it; see GET .../operations"`
		Position     int    `json:"position" doc:"0 when it runs already; otherwise how many operations run or wait before it, counting the running one as 0"`
	}
}

// operationView is one operation of an app's queue.
type operationView struct {
	ID           string     `json:"id"`
	Kind         string     `json:"kind" doc:"deploy, restart, stop, start, scale, rollback, configure, delete, suspend, resume, heal, move"`
	Status       string     `json:"status" enum:"queued,running,succeeded,failed,cancelled,superseded"`
	Position     int        `json:"position" doc:"0 for the running operation, 1, 2, … for those waiting, in the order they run"`
	RequestedBy  string     `json:"requested_by" doc:"the e-mail of the user who asked, or what in the platform asked (billing, convergence, drain)"`
	RequestedAt  time.Time  `json:"requested_at"`
	StartedAt    *time.Time `json:"started_at,omitempty"`
	FinishedAt   *time.Time `json:"finished_at,omitempty"`
	Reason       string     `json:"reason,omitempty" doc:"why it ended as it did (failed, cancelled, superseded); for a heal or a move, what it did"`
	WorkflowID   string     `json:"workflow_id"`
	DeploymentID string     `json:"deployment_id,omitempty"`
	SupersededBy string     `json:"superseded_by,omitempty"`
}

func viewOperation(o db.Operation) operationView {
	v := operationView{
		ID: o.ID, Kind: o.Kind, Status: o.Status, Position: o.Position, RequestedBy: o.RequestedVia,
		RequestedAt: o.CreatedAt, StartedAt: o.StartedAt, FinishedAt: o.FinishedAt, Reason: o.Reason, WorkflowID: o.WorkflowID,
	}
	if o.Requester != "" {
		v.RequestedBy = o.Requester
	}
	if o.DeploymentID != nil {
		v.DeploymentID = *o.DeploymentID
	}
	if o.SupersededBy != nil {
		v.SupersededBy = *o.SupersededBy
	}
	return v
}

type listOperationsInput struct {
	ID    string `path:"id" maxLength:"64"`
	Ended int    `query:"ended" minimum:"0" maximum:"100" default:"0" doc:"also list the N operations that ended last (succeeded, failed, cancelled, superseded), newest first"`
}

type operationPath struct {
	ID          string `path:"id" maxLength:"64"`
	OperationID string `path:"operationId" maxLength:"64"`
}

type cancelOutput struct {
	Status int
	Body   struct {
		Status    string        `json:"status" doc:"cancelled: it will not run; running: the deploy is being stopped and ends cancelled"`
		Message   string        `json:"message"`
		Operation operationView `json:"operation"`
	}
}

func (s *Server) registerOperations() {
	huma.Register(s.api, s.op("list-operations", http.MethodGet, "/api/paas/applications/{id}/operations",
		"The application's running and waiting operations, in the order they run, then (with ended=N) the N that ended last, newest first",
		"applications", 0, false),
		func(ctx context.Context, in *listOperationsInput) (*items[operationView], error) {
			ops, err := s.store.ListActiveOperations(ctx, principal(ctx).OrgID, in.ID)
			if err != nil {
				return nil, s.problem(ctx, "application", err)
			}
			if in.Ended > 0 {
				ended, err := s.store.ListEndedOperations(ctx, principal(ctx).OrgID, in.ID, in.Ended)
				if err != nil {
					return nil, s.problem(ctx, "application", err)
				}
				ops = append(ops, ended...)
			}
			views := make([]operationView, len(ops))
			for i, o := range ops {
				views[i] = viewOperation(o)
			}
			return listOf(views), nil
		})
	huma.Register(s.api, s.op("get-operation", http.MethodGet, "/api/paas/applications/{id}/operations/{operationId}",
		"One operation of the application, whatever its status", "applications", 0, false),
		func(ctx context.Context, in *operationPath) (*body[operationView], error) {
			op, err := s.store.GetOperation(ctx, principal(ctx).OrgID, in.ID, in.OperationID)
			if err != nil {
				return nil, s.problem(ctx, "operation", err)
			}
			return bodyOf(viewOperation(op)), nil
		})
	huma.Register(s.api, s.op("cancel-operation", http.MethodDelete, "/api/paas/applications/{id}/operations/{operationId}",
		"Cancel an operation: a waiting one never runs; a deploy that clones or builds stops (202), the previous release serving throughout",
		"applications", 0, false),
		s.cancelOperation)
}

func (s *Server) cancelOperation(ctx context.Context, in *operationPath) (*cancelOutput, error) {
	p := principal(ctx)
	who, err := s.store.UserEmail(ctx, p.UserID)
	if err != nil {
		return nil, s.problem(ctx, "user", err)
	}
	op, err := s.ops.Cancel(ctx, p.OrgID, in.ID, in.OperationID, who)
	if err != nil {
		return nil, s.problem(ctx, "operation", err)
	}
	out := &cancelOutput{Status: http.StatusOK}
	out.Body.Operation, out.Body.Status = viewOperation(op), op.Status
	out.Body.Message = "cancelled: it will not run"
	if op.Status == db.OperationRunning {
		out.Status = http.StatusAccepted
		out.Body.Message = "the deploy is being stopped; its deployment ends cancelled and the previous release keeps serving"
	}
	return out, nil
}

// enqueue hands an operation to the owner and shapes the answer.
func (s *Server) enqueue(ctx context.Context, r operations.Request) (*operationOutput, error) {
	p := principal(ctx)
	r.OrgID, r.UserID = p.OrgID, p.UserID
	op, err := s.ops.Enqueue(ctx, r)
	if err != nil {
		return nil, s.operationProblem(ctx, r.Kind, err)
	}
	return operationAnswer(op), nil
}

func operationAnswer(op db.Operation) *operationOutput {
	out := &operationOutput{}
	out.Body.OperationID, out.Body.WorkflowID, out.Body.Position = op.ID, op.WorkflowID, op.Position
	out.Body.Status = db.OperationQueued
	if op.DeploymentID != nil {
		out.Body.DeploymentID = *op.DeploymentID
	}
	return out
}

// operationProblem is problem plus the owner's own refusals.
func (s *Server) operationProblem(ctx context.Context, kind string, err error) error {
	if errors.Is(err, operations.ErrUnavailable) {
		return huma.Error503ServiceUnavailable("could not start the " + kind + ": the workflow service is unavailable; nothing was changed, try again")
	}
	return s.problem(ctx, "application", err)
}
