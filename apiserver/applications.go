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
		GitURL    string `json:"git_url,omitempty" maxLength:"2048" doc:"https:// URL of a public repository; or give github_repository"`
		GitBranch string `json:"git_branch,omitempty" maxLength:"255" doc:"default: main, or the GitHub repository's default branch"`
		// GitHubRepository and AutoDeploy connect the app to GitHub (docs/github.md).
		GitHubRepository string `json:"github_repository,omitempty" maxLength:"140" doc:"owner/repo of a repository your connected GitHub account can read (private ones too); instead of git_url"`
		AutoDeploy       bool   `json:"auto_deploy,omitempty" doc:"with github_repository: a push to git_branch deploys the pushed commit (the platform creates the repository's webhook)"`
		// DrainSeconds is the app's drain grace.
		DrainSeconds int `json:"drain_seconds,omitempty" minimum:"1" maximum:"120" default:"10" doc:"Seconds old instances get to finish their requests when a deploy, scale or restart replaces them (1-120; SIGTERM, then SIGKILL after this long)"`
	}
}

type deployInput struct {
	ID   string `path:"id" maxLength:"64"`
	Body *struct {
		Commit string `json:"commit,omitempty" maxLength:"64" doc:"the exact commit to build (full SHA, on the app's branch); default: the branch's newest"`
	}
}

type updateAppInput struct {
	ID   string `path:"id" maxLength:"64"`
	Body struct {
		Name      *string `json:"name,omitempty" doc:"Immutable; accepted only when unchanged"`
		Runtime   *string `json:"runtime,omitempty" maxLength:"64"`
		Plan      *string `json:"plan,omitempty" maxLength:"64"`
		GitURL    *string `json:"git_url,omitempty" maxLength:"2048"`
		GitBranch *string `json:"git_branch,omitempty" maxLength:"255"`
		// A GitHub connection: setting github_repository connects the app with your token,
		// setting git_url disconnects it; auto_deploy creates or removes the webhook.
		GitHubRepository *string `json:"github_repository,omitempty" maxLength:"140" doc:"owner/repo: connect the app to this repository with your GitHub account"`
		AutoDeploy       *bool   `json:"auto_deploy,omitempty" doc:"a push to the branch deploys the pushed commit (GitHub apps only)"`
		DrainSeconds     *int    `json:"drain_seconds,omitempty" minimum:"1" maximum:"120" doc:"Drain grace for old instances, 1-120 seconds; used from the next rollout"`
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
			app, err := s.store.GetApplication(ctx, principal(ctx).OrgID, in.ID)
			if err != nil {
				return nil, s.problem(ctx, "application", err)
			}
			out, err := s.enqueue(ctx, operations.Request{AppID: in.ID, Kind: db.OpDelete})
			if err == nil {
				// The app takes no more pushes: its repository's webhook goes with it.
				s.removePushHook(context.WithoutCancel(ctx), app)
			}
			return out, err
		})
	huma.Register(s.api, s.op("deploy-application", http.MethodPost, "/api/paas/applications/{id}/deploy",
		"Build and release the branch's latest commit, or the commit named", "applications", http.StatusAccepted, false),
		func(ctx context.Context, in *deployInput) (*operationOutput, error) {
			commit := ""
			if in.Body != nil {
				commit = in.Body.Commit
			}
			if commit != "" && !contract.ValidCommit(commit) {
				return nil, fieldError("body.commit", "a commit is its full 40- or 64-character lower-case hex SHA", commit)
			}
			p := principal(ctx)
			op, err := s.deployApp(ctx, p.OrgID, in.ID, p.UserID, "api", commit)
			if err != nil {
				return nil, err
			}
			return operationAnswer(op), nil
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
	if b.AutoDeploy && b.GitHubRepository == "" {
		return nil, fieldError("body.auto_deploy", "auto-deploy needs github_repository: pushes come from GitHub", true)
	}
	src, err := s.resolveSource(ctx, b.GitURL, b.GitHubRepository, b.GitBranch)
	if err != nil {
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
	// The webhook first: an app is created whole, or (its row refused) the webhook is removed.
	var hookID *int64
	if b.AutoDeploy {
		id, err := s.createPushHook(ctx, src)
		if err != nil {
			return nil, err
		}
		hookID = &id
	}
	app, err := s.store.CreateApplication(ctx, db.NewApplication{
		OrgID: principal(ctx).OrgID, Name: b.Name, RuntimeID: runtime.ID, PlanID: plan.ID, RegionID: region.ID,
		GitURL: src.GitURL, GitBranch: src.Branch, DrainSeconds: b.DrainSeconds,
		GitHubRepository: src.GitHubRepository, GitHubUserID: src.GitHubUserID, AutoDeploy: b.AutoDeploy, GitHubHookID: hookID,
	})
	if err != nil && hookID != nil {
		if derr := s.cfg.GitHub.DeleteHook(context.WithoutCancel(ctx), src.token, src.owner, src.repo, *hookID); derr != nil {
			s.log.WarnContext(ctx, "remove the webhook of an app not created", "repository", src.GitHubRepository, "error", derr)
		}
	}
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
	changes := db.ApplicationChanges{DrainSeconds: b.DrainSeconds, MaxConnections: b.MaxConnections, ReadTimeoutSeconds: b.ReadTimeoutSeconds}
	hooks, err := s.changeSource(ctx, current, b.GitURL, b.GitHubRepository, b.GitBranch, b.AutoDeploy, &changes)
	if err != nil {
		return nil, err
	}
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
	hooks.settle(context.WithoutCancel(ctx), err == nil)
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
