package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/temporal/operations"
)

type rollbackInput struct {
	ID   string `path:"id" maxLength:"64"`
	Body struct {
		Release int `json:"release" minimum:"1" doc:"The release version to bring back (the N of vN)"`
	}
}

type rollbackOutput struct {
	Body struct {
		OperationID string `json:"operation_id"`
		WorkflowID  string `json:"workflow_id"`
		Release     int    `json:"release"`
		Status      string `json:"status"`
		Position    int    `json:"position"`
	}
}

func (s *Server) registerReleases() {
	huma.Register(s.api, s.op("list-releases", http.MethodGet, "/api/paas/applications/{id}/releases",
		"List an application's releases, newest first", "releases", 0, false),
		func(ctx context.Context, in *idPath) (*items[Release], error) {
			releases, err := s.store.ListReleases(ctx, principal(ctx).OrgID, in.ID)
			if err != nil {
				return nil, s.problem(ctx, "application", err)
			}
			return listOf(viewsOf(releases, releaseView)), nil
		})
	huma.Register(s.api, s.op("rollback-application", http.MethodPost, "/api/paas/applications/{id}/rollback",
		"Serve an earlier release again, from its kept image and config, without a rebuild", "releases", http.StatusAccepted, false),
		s.rollback)
}

func (s *Server) rollback(ctx context.Context, in *rollbackInput) (*rollbackOutput, error) {
	orgID := principal(ctx).OrgID
	app, err := s.store.GetApplication(ctx, orgID, in.ID)
	if err != nil {
		return nil, s.problem(ctx, "application", err)
	}
	version := in.Body.Release
	rel, err := s.store.ReleaseByVersion(ctx, app.ID, version)
	if errors.Is(err, db.ErrNotFound) {
		return nil, fieldError("body.release", fmt.Sprintf("the application has no release v%d; see GET .../releases", version), version)
	}
	if err != nil {
		return nil, s.problem(ctx, "release", err)
	}
	if !rel.ImageAvailable {
		return nil, fieldError("body.release", fmt.Sprintf("the image of v%d was removed by the retention policy; only recent releases can be rolled back to", version), version)
	}
	if rel.Current {
		return nil, fieldError("body.release", fmt.Sprintf("v%d is already the current release", version), version)
	}
	started, err := s.enqueue(ctx, operations.Request{AppID: app.ID, Kind: db.OpRollback, Release: version})
	if err != nil {
		return nil, err
	}
	out := &rollbackOutput{}
	out.Body.OperationID, out.Body.WorkflowID, out.Body.Release = started.Body.OperationID, started.Body.WorkflowID, version
	out.Body.Status, out.Body.Position = started.Body.Status, started.Body.Position
	return out, nil
}
