package apiserver

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
)

type deploymentPath struct {
	ID           string `path:"id" maxLength:"64"`
	DeploymentID string `path:"deploymentId" maxLength:"64"`
}

type deploymentLogsInput struct {
	ID           string `path:"id" maxLength:"64"`
	DeploymentID string `path:"deploymentId" maxLength:"64"`
	// Accept chooses between the log so far (text/plain) and the live stream
	// (text/event-stream); OpenAPI documents it through the response's content types.
	Accept      string `header:"Accept" hidden:"true"`
	LastEventID string `header:"Last-Event-ID" doc:"With Accept: text/event-stream, the id of the last event received: the stream continues after it. Unknown values start from the beginning."`
}

func (s *Server) registerDeployments() {
	huma.Register(s.api, s.op("list-deployments", http.MethodGet, "/api/paas/applications/{id}/deployments", "List an application's deployments, newest first", "deployments", 0, false),
		func(ctx context.Context, in *idPath) (*items[Deployment], error) {
			deps, err := s.store.ListDeployments(ctx, principal(ctx).OrgID, in.ID)
			if err != nil {
				return nil, s.problem(ctx, "application", err)
			}
			return listOf(viewsOf(deps, deploymentView)), nil
		})
	huma.Register(s.api, s.op("get-deployment", http.MethodGet, "/api/paas/applications/{id}/deployments/{deploymentId}", "Get a deployment's status", "deployments", 0, false),
		func(ctx context.Context, in *deploymentPath) (*body[Deployment], error) {
			dep, err := s.store.GetDeployment(ctx, principal(ctx).OrgID, in.ID, in.DeploymentID)
			if err != nil {
				return nil, s.problem(ctx, "deployment", err)
			}
			return bodyOf(deploymentView(dep)), nil
		})
	huma.Register(s.api, s.deploymentLogsOperation(),
		func(ctx context.Context, in *deploymentLogsInput) (*huma.StreamResponse, error) {
			orgID := principal(ctx).OrgID
			if wantsEventStream(in.Accept) {
				// Authorize before the stream starts: another organization's deployment is a
				// 404 like a missing one.
				dep, err := s.store.GetDeployment(ctx, orgID, in.ID, in.DeploymentID)
				if err != nil {
					return nil, s.problem(ctx, "deployment", err)
				}
				release, err := s.streams.acquire(orgID)
				if err != nil {
					return nil, err
				}
				lastEventID := in.LastEventID
				token := principal(ctx)
				return &huma.StreamResponse{Body: func(hctx huma.Context) {
					defer release()
					s.streamLog(hctx, dep.ID, lastEventID, token)
				}}, nil
			}
			dep, err := s.store.GetDeployment(ctx, orgID, in.ID, in.DeploymentID)
			if err != nil {
				return nil, s.problem(ctx, "deployment", err)
			}
			return &huma.StreamResponse{Body: func(hctx huma.Context) {
				hctx.SetHeader("Content-Type", "text/plain; charset=utf-8")
				hctx.SetStatus(http.StatusOK)
				// Streamed chunk by chunk from the database, never held whole.
				if err := s.store.WriteDeploymentLog(hctx.Context(), dep.ID, hctx.BodyWriter()); err != nil && hctx.Context().Err() == nil {
					s.log.WarnContext(hctx.Context(), "read deployment log", "deployment_id", dep.ID, "error", err)
				}
			}}, nil
		})
}

// deploymentLogsOperation documents both answers of the logs endpoint.
func (s *Server) deploymentLogsOperation() huma.Operation {
	op := s.op("get-deployment-logs", http.MethodGet, "/api/paas/applications/{id}/deployments/{deploymentId}/logs",
		"The deployment's build log: the text so far, or a live stream", "deployments", http.StatusOK, false)
	op.Description = "Without `Accept: text/event-stream`: the log so far as plain text, readable while it grows.\n\n" +
		"With `Accept: text/event-stream`: the log as Server-Sent Events from its start, live while the deployment runs. " +
		"Each line is one event (`data:` the line without its line break; `id:` a position to resume from with `Last-Event-ID`), " +
		"comments are heartbeats, and when the deployment has ended and every line has been sent a last event `end` carries " +
		"its status (`succeeded` or `failed`) and the server closes the stream. A stream that closes without `end` " +
		"(server restart, or after an hour) can be resumed with `Last-Event-ID`."
	op.Responses = map[string]*huma.Response{
		"200": {
			Description: "The log so far (text/plain) or its live stream (text/event-stream)",
			Content: map[string]*huma.MediaType{
				"text/plain": {Schema: &huma.Schema{Type: huma.TypeString}},
				eventStreamType: {Schema: &huma.Schema{
					Type:        huma.TypeString,
					Description: "Server-Sent Events: `id: <chunk>-<offset>` and `data: <line>` per log line, then `event: end` with `data: succeeded` or `data: failed`.",
				}},
			},
		},
	}
	return op
}
