package apiserver

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/activities/contract"
	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/temporal/operations"
)

// appNamePattern is an RFC 1123 label in lower case: the name becomes <name>.<PLATFORM_DOMAIN>.
var appNamePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

type createAppInput struct {
	Body struct {
		Name      string `json:"name" minLength:"1" maxLength:"63" doc:"RFC 1123 label, lower case; the app answers at <name>.<platform domain>"`
		Runtime   string `json:"runtime" minLength:"1" maxLength:"64" doc:"Runtime id or slug (node, python, php, dockerfile)"`
		Plan      string `json:"plan" minLength:"1" maxLength:"64" doc:"Plan id or slug"`
		Region    string `json:"region,omitempty" maxLength:"64" doc:"Region id or slug; may be omitted when there is one region"`
		GitURL    string `json:"git_url" minLength:"1" maxLength:"2048" doc:"https:// URL of the repository"`
		GitBranch string `json:"git_branch,omitempty" maxLength:"255" default:"main"`
		// DrainSeconds is the app's drain grace.
		DrainSeconds int `json:"drain_seconds,omitempty" minimum:"1" maximum:"120" default:"10" doc:"Seconds old instances get to finish their requests when a deploy, scale or restart replaces them (1-120; SIGTERM, then SIGKILL after this long)"`
	}
}

type updateAppInput struct {
	ID   string `path:"id" maxLength:"64"`
	Body struct {
		Name         *string `json:"name,omitempty" doc:"Immutable; accepted only when unchanged"`
		Runtime      *string `json:"runtime,omitempty" maxLength:"64"`
		Plan         *string `json:"plan,omitempty" maxLength:"64"`
		GitURL       *string `json:"git_url,omitempty" maxLength:"2048"`
		GitBranch    *string `json:"git_branch,omitempty" maxLength:"255"`
		DrainSeconds *int    `json:"drain_seconds,omitempty" minimum:"1" maximum:"120" doc:"Drain grace for old instances, 1-120 seconds; used from the next rollout"`
		// The app's share of its node's nginx.
		MaxConnections     *int `json:"max_connections,omitempty" minimum:"1" maximum:"2048" doc:"Concurrent client connections nginx lets through to the app (1-2048, default 512); past them the app answers 429. Used from the next rollout"`
		ReadTimeoutSeconds *int `json:"read_timeout_seconds,omitempty" minimum:"1" maximum:"3600" doc:"Seconds nginx waits for the app's answer (1-3600, default 60) before 504. Used from the next rollout"`
	}
}

func (s *Server) registerApplications() {
	huma.Register(s.api, s.op("list-applications", http.MethodGet, "/api/paas/applications", "List your applications", "applications", 0, false),
		func(ctx context.Context, _ *struct{}) (*items[Application], error) {
			apps, err := s.store.ListApplications(ctx, principal(ctx).OrgID)
			if err != nil {
				return nil, s.problem(ctx, "application", err)
			}
			return listOf(viewsOf(apps, applicationView)), nil
		})
	huma.Register(s.api, s.op("create-application", http.MethodPost, "/api/paas/applications", "Create an application", "applications", http.StatusCreated, false),
		s.createApplication)
	huma.Register(s.api, s.op("get-application", http.MethodGet, "/api/paas/applications/{id}", "Get an application", "applications", 0, false),
		func(ctx context.Context, in *idPath) (*body[Application], error) {
			app, err := s.store.GetApplication(ctx, principal(ctx).OrgID, in.ID)
			if err != nil {
				return nil, s.problem(ctx, "application", err)
			}
			return bodyOf(applicationView(app)), nil
		})
	huma.Register(s.api, s.op("update-application", http.MethodPut, "/api/paas/applications/{id}", "Update an application; changes apply at the next deploy", "applications", 0, false),
		s.updateApplication)
	huma.Register(s.api, s.op("delete-application", http.MethodDelete, "/api/paas/applications/{id}", "Delete an application and everything it runs", "applications", http.StatusAccepted, false),
		func(ctx context.Context, in *idPath) (*operationOutput, error) {
			return s.enqueue(ctx, operations.Request{AppID: in.ID, Kind: db.OpDelete})
		})
	huma.Register(s.api, s.op("deploy-application", http.MethodPost, "/api/paas/applications/{id}/deploy", "Build and release the branch's latest commit", "applications", http.StatusAccepted, false),
		func(ctx context.Context, in *idPath) (*operationOutput, error) {
			// A first deploy places the app now: no room on any node is a 409 here, not a
			// deployment that fails later.
			app, err := s.store.GetApplication(ctx, principal(ctx).OrgID, in.ID)
			if err != nil {
				return nil, s.problem(ctx, "application", err)
			}
			if err := s.requireFundsFor(ctx, app.ID, 0); err != nil {
				return nil, err
			}
			if app.NodeID == nil {
				if _, err := s.store.PlaceApplication(ctx, app.ID); err != nil {
					return nil, s.problem(ctx, "application", err)
				}
			}
			return s.enqueue(ctx, operations.Request{AppID: in.ID, Kind: db.OpDeploy})
		})
	huma.Register(s.api, s.op("restart-application", http.MethodPost, "/api/paas/applications/{id}/restart", "Replace the running instance with a fresh one, without downtime", "applications", http.StatusAccepted, false),
		func(ctx context.Context, in *idPath) (*operationOutput, error) {
			return s.enqueue(ctx, operations.Request{AppID: in.ID, Kind: db.OpRestart})
		})
	huma.Register(s.api, s.op("stop-application", http.MethodPost, "/api/paas/applications/{id}/stop", "Stop serving the application", "applications", http.StatusAccepted, false),
		func(ctx context.Context, in *idPath) (*operationOutput, error) {
			return s.enqueue(ctx, operations.Request{AppID: in.ID, Kind: db.OpStop})
		})
	huma.Register(s.api, s.op("start-application", http.MethodPost, "/api/paas/applications/{id}/start", "Start a stopped application's current release", "applications", http.StatusAccepted, false),
		func(ctx context.Context, in *idPath) (*operationOutput, error) {
			if err := s.requireFundsFor(ctx, in.ID, 0); err != nil {
				return nil, err
			}
			return s.enqueue(ctx, operations.Request{AppID: in.ID, Kind: db.OpStart})
		})
}

func (s *Server) createApplication(ctx context.Context, in *createAppInput) (*body[Application], error) {
	b := in.Body
	if !appNamePattern.MatchString(b.Name) {
		return nil, fieldError("body.name", "name must be 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit", b.Name)
	}
	branch := b.GitBranch
	if branch == "" {
		branch = "main"
	}
	if err := s.validateSource(b.GitURL, branch); err != nil {
		return nil, err
	}
	runtime, plan, err := s.resolveRuntimeAndPlan(ctx, b.Runtime, b.Plan)
	if err != nil {
		return nil, err
	}
	region, err := s.resolveRegion(ctx, b.Region)
	if err != nil {
		return nil, err
	}
	// An app no node of its region could hold is refused now (its first deploy places it).
	if err := s.store.CheckRoomInRegion(ctx, region.ID, plan.ID); err != nil {
		return nil, s.problem(ctx, "application", err)
	}
	// An app the wallet could not run for one period is refused now too (one instance).
	if err := s.requireFunds(ctx, principal(ctx).OrgID, plan.PricePerHourMinor, ""); err != nil {
		return nil, err
	}
	app, err := s.store.CreateApplication(ctx, db.NewApplication{
		OrgID: principal(ctx).OrgID, Name: b.Name, RuntimeID: runtime.ID, PlanID: plan.ID, RegionID: region.ID,
		GitURL: b.GitURL, GitBranch: branch, DrainSeconds: b.DrainSeconds,
	})
	if errors.Is(err, db.ErrConflict) {
		return nil, huma.Error409Conflict("an application with this name already exists",
			&huma.ErrorDetail{Location: "body.name", Message: "name taken", Value: b.Name})
	}
	if err != nil {
		return nil, s.problem(ctx, "application", err)
	}
	return bodyOf(applicationView(app)), nil
}

func (s *Server) updateApplication(ctx context.Context, in *updateAppInput) (*body[Application], error) {
	orgID := principal(ctx).OrgID
	current, err := s.store.GetApplication(ctx, orgID, in.ID)
	if err != nil {
		return nil, s.problem(ctx, "application", err)
	}
	b := in.Body
	if b.Name != nil && *b.Name != current.Name {
		return nil, fieldError("body.name", "an application's name cannot be changed (it is its host name); create a new application instead", *b.Name)
	}
	url, branch := current.GitURL, current.GitBranch
	if b.GitURL != nil {
		url = *b.GitURL
	}
	if b.GitBranch != nil {
		branch = *b.GitBranch
	}
	if err := s.validateSource(url, branch); err != nil {
		return nil, err
	}
	changes := db.ApplicationChanges{GitURL: b.GitURL, GitBranch: b.GitBranch, DrainSeconds: b.DrainSeconds,
		MaxConnections: b.MaxConnections, ReadTimeoutSeconds: b.ReadTimeoutSeconds}
	if b.Runtime != nil || b.Plan != nil {
		runtimeRef, planRef := current.Runtime, current.Plan
		if b.Runtime != nil {
			runtimeRef = *b.Runtime
		}
		if b.Plan != nil {
			planRef = *b.Plan
		}
		runtime, plan, err := s.resolveRuntimeAndPlan(ctx, runtimeRef, planRef)
		if err != nil {
			return nil, err
		}
		changes.RuntimeID, changes.PlanID = &runtime.ID, &plan.ID
	}
	app, err := s.store.UpdateApplication(ctx, orgID, in.ID, changes)
	if err != nil {
		return nil, s.problem(ctx, "application", err)
	}
	return bodyOf(applicationView(app)), nil
}

func (s *Server) validateSource(gitURL, branch string) error {
	if err := contract.ValidateRemoteURL(gitURL, s.cfg.AllowLoopbackGit); err != nil {
		// The value is not echoed: a refused URL may carry a password.
		return fieldError("body.git_url", err.Error(), nil)
	}
	if err := contract.ValidateBranch(branch); err != nil {
		return fieldError("body.git_branch", err.Error(), branch)
	}
	return nil
}

func (s *Server) resolveRuntimeAndPlan(ctx context.Context, runtimeRef, planRef string) (db.Runtime, db.Plan, error) {
	runtime, err := s.store.RuntimeByRef(ctx, runtimeRef)
	if errors.Is(err, db.ErrNotFound) || (err == nil && !runtime.Active) {
		return db.Runtime{}, db.Plan{}, fieldError("body.runtime", "unknown runtime; see GET /api/paas/runtimes", runtimeRef)
	}
	if err != nil {
		return db.Runtime{}, db.Plan{}, s.problem(ctx, "runtime", err)
	}
	plan, err := s.store.PlanByRef(ctx, planRef)
	if errors.Is(err, db.ErrNotFound) || (err == nil && !plan.Active) {
		return db.Runtime{}, db.Plan{}, fieldError("body.plan", "unknown plan; see GET /api/paas/plans", planRef)
	}
	if err != nil {
		return db.Runtime{}, db.Plan{}, s.problem(ctx, "plan", err)
	}
	return runtime, plan, nil
}

func (s *Server) resolveRegion(ctx context.Context, ref string) (db.Region, error) {
	if strings.TrimSpace(ref) == "" {
		regions, err := s.store.ListRegions(ctx)
		if err != nil {
			return db.Region{}, s.problem(ctx, "region", err)
		}
		if len(regions) != 1 {
			return db.Region{}, fieldError("body.region", "region is required when the platform has several; see GET /api/paas/regions", ref)
		}
		return regions[0], nil
	}
	region, err := s.store.RegionByRef(ctx, ref)
	if errors.Is(err, db.ErrNotFound) {
		return db.Region{}, fieldError("body.region", "unknown region; see GET /api/paas/regions", ref)
	}
	if err != nil {
		return db.Region{}, s.problem(ctx, "region", err)
	}
	return region, nil
}
