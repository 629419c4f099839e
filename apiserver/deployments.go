package apiserver

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/db"
)

type deploymentPath struct {
	ID           string `path:"id" maxLength:"64"`
	DeploymentID string `path:"deploymentId" maxLength:"64"`
}

type logOutput struct {
	ContentType string `header:"Content-Type"`
	Body        []byte
}

func (s *Server) registerDeployments() {
	huma.Register(s.api, s.op("list-deployments", http.MethodGet, "/api/paas/applications/{id}/deployments", "List an application's deployments, newest first", "deployments", 0, false),
		func(ctx context.Context, in *idPath) (*items[db.Deployment], error) {
			deps, err := s.store.ListDeployments(ctx, principal(ctx).OrgID, in.ID)
			if err != nil {
				return nil, s.problem(ctx, "application", err)
			}
			return listOf(deps), nil
		})
	huma.Register(s.api, s.op("get-deployment", http.MethodGet, "/api/paas/applications/{id}/deployments/{deploymentId}", "Get a deployment's status", "deployments", 0, false),
		func(ctx context.Context, in *deploymentPath) (*body[db.Deployment], error) {
			dep, err := s.store.GetDeployment(ctx, principal(ctx).OrgID, in.ID, in.DeploymentID)
			if err != nil {
				return nil, s.problem(ctx, "deployment", err)
			}
			return bodyOf(dep), nil
		})
	huma.Register(s.api, s.op("get-deployment-logs", http.MethodGet, "/api/paas/applications/{id}/deployments/{deploymentId}/logs", "The deployment's build log as plain text, readable while it grows", "deployments", 0, false),
		func(ctx context.Context, in *deploymentPath) (*logOutput, error) {
			text, err := s.store.DeploymentLog(ctx, principal(ctx).OrgID, in.ID, in.DeploymentID)
			if err != nil {
				return nil, s.problem(ctx, "deployment", err)
			}
			return &logOutput{ContentType: "text/plain; charset=utf-8", Body: []byte(text)}, nil
		})
}
