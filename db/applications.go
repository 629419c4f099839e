package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Application statuses.
const (
	AppCreated   = "created"   // never deployed
	AppDeploying = "deploying" // first deployment under way
	AppRunning   = "running"   // a release serves traffic
	AppStopped   = "stopped"   // stopped by its owner
	AppFailed    = "failed"    // no release could be started
	AppDeleting  = "deleting"
)

// Application is a customer's app.
type Application struct {
	ID        string
	OrgID     string
	Name      string
	Runtime   string
	Plan      string
	Region    string
	NodeID    *string
	GitURL    string
	GitBranch string
	// GitHubRepository is owner/repo for an app connected to GitHub ("" for a plain Git URL,
	// whose clone URL is GitURL either way); GitHubUserID is whose token clones it and manages
	// its webhook; AutoDeploy: a push to GitBranch deploys the pushed commit; GitHubHookID is
	// the repository webhook made for it.
	GitHubRepository string
	GitHubUserID     *string
	AutoDeploy       bool
	GitHubHookID     *int64
	Status           string
	Instances        int
	DrainSeconds     int
	// MaxConnections and ReadTimeoutSeconds bound the app on its node's nginx (0: defaults).
	MaxConnections      int
	ReadTimeoutSeconds  int
	URL                 string
	CurrentDeploymentID *string
	ActiveWorkflowID    *string
	// DegradedReason, on a running app, says why the platform stopped healing it (since
	// DegradedAt); empty otherwise.
	DegradedReason string
	DegradedAt     *time.Time
	// NodeName and NodeHost name the node that serves the app (empty before it is placed):
	// the host is where the app's host name must point, and it changes when the app moves.
	NodeName, NodeHost string
	CreatedAt          time.Time
	UpdatedAt          time.Time

	currentInstance string
}

const appColumns = `a.id, a.org_id, a.name, rt.slug, p.slug, rg.slug, a.node_id, a.git_url, a.git_branch, a.github_repository, a.github_user_id, a.auto_deploy, a.github_hook_id, a.status, a.instances, a.drain_seconds, a.max_connections, a.read_timeout_seconds, a.url,
	a.current_deployment_id, a.active_workflow_id, a.degraded_reason, a.degraded_at, COALESCE(n.name, ''), COALESCE(n.host, ''), a.created_at, a.updated_at, a.current_instance`

const appFrom = ` FROM applications a
	JOIN runtimes rt ON rt.id = a.runtime_id
	JOIN plans p ON p.id = a.plan_id
	JOIN regions rg ON rg.id = a.region_id
	LEFT JOIN nodes n ON n.id = a.node_id `

func scanApp(row pgx.Row) (Application, error) {
	var a Application
	err := row.Scan(&a.ID, &a.OrgID, &a.Name, &a.Runtime, &a.Plan, &a.Region, &a.NodeID, &a.GitURL, &a.GitBranch, &a.GitHubRepository, &a.GitHubUserID, &a.AutoDeploy, &a.GitHubHookID, &a.Status, &a.Instances, &a.DrainSeconds, &a.MaxConnections, &a.ReadTimeoutSeconds, &a.URL,
		&a.CurrentDeploymentID, &a.ActiveWorkflowID, &a.DegradedReason, &a.DegradedAt, &a.NodeName, &a.NodeHost, &a.CreatedAt, &a.UpdatedAt, &a.currentInstance)
	return a, translate(err)
}

// ListApplications lists one organization's apps.
func (s *Store) ListApplications(ctx context.Context, orgID string) ([]Application, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+appColumns+appFrom+` WHERE a.org_id = $1 ORDER BY a.created_at`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list applications: %w", err)
	}
	return collect(rows, scanApp)
}

// GetApplication returns an app of orgID. Another organization's app is ErrNotFound, exactly
// like a missing one.
func (s *Store) GetApplication(ctx context.Context, orgID, appID string) (Application, error) {
	return scanApp(s.pool.QueryRow(ctx, `SELECT `+appColumns+appFrom+` WHERE a.id::text = $1 AND a.org_id = $2`, appID, orgID))
}

// NewApplication is what a customer asks for.
type NewApplication struct {
	OrgID, Name, RuntimeID, PlanID, RegionID, GitURL, GitBranch string
	DrainSeconds                                                int // 0 = the default (10)
	// GitHub connection (see Application); GitHubUserID "" when not connected.
	GitHubRepository, GitHubUserID string
	AutoDeploy                     bool
	GitHubHookID                   *int64
}

// CreateApplication inserts an app.
func (s *Store) CreateApplication(ctx context.Context, n NewApplication) (Application, error) {
	var id string
	err := s.pool.QueryRow(ctx, `INSERT INTO applications (org_id, name, runtime_id, plan_id, region_id, git_url, git_branch, drain_seconds,
			github_repository, github_user_id, auto_deploy, github_hook_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE(NULLIF($8, 0), 10), $9, NULLIF($10, '')::uuid, $11, $12) RETURNING id`,
		n.OrgID, n.Name, n.RuntimeID, n.PlanID, n.RegionID, n.GitURL, n.GitBranch, n.DrainSeconds,
		n.GitHubRepository, n.GitHubUserID, n.AutoDeploy, n.GitHubHookID).Scan(&id)
	if err != nil {
		return Application{}, translate(err)
	}
	return s.GetApplication(ctx, n.OrgID, id)
}

// ApplicationChanges are the fields an owner may change; nil means unchanged.
type ApplicationChanges struct {
	RuntimeID, PlanID, GitURL, GitBranch *string
	DrainSeconds                         *int
	MaxConnections, ReadTimeoutSeconds   *int
	// GitHub: a connection (repository and user) or its removal (both ""), auto-deploy, and
	// the webhook's id (SetHook; a nil HookID with SetHook removes it).
	GitHubRepository, GitHubUserID *string
	AutoDeploy                     *bool
	SetHook                        bool
	HookID                         *int64
}

// UpdateApplication applies changes; they take effect at the next deployment (the drain time
// at the next rollout).
func (s *Store) UpdateApplication(ctx context.Context, orgID, appID string, c ApplicationChanges) (Application, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE applications SET
			runtime_id = COALESCE($3, runtime_id), plan_id = COALESCE($4, plan_id),
			git_url = COALESCE($5, git_url), git_branch = COALESCE($6, git_branch),
			drain_seconds = COALESCE($7, drain_seconds), max_connections = COALESCE($8, max_connections),
			read_timeout_seconds = COALESCE($9, read_timeout_seconds),
			github_repository = COALESCE($10, github_repository),
			github_user_id = CASE WHEN $11::text IS NULL THEN github_user_id ELSE NULLIF($11, '')::uuid END,
			auto_deploy = COALESCE($12, auto_deploy),
			github_hook_id = CASE WHEN $13 THEN $14 ELSE github_hook_id END, updated_at = now()
		WHERE id::text = $1 AND org_id = $2 AND status <> 'deleting'`, appID, orgID, c.RuntimeID, c.PlanID, c.GitURL, c.GitBranch, c.DrainSeconds,
		c.MaxConnections, c.ReadTimeoutSeconds, c.GitHubRepository, c.GitHubUserID, c.AutoDeploy, c.SetHook, c.HookID)
	if err != nil {
		return Application{}, translate(err)
	}
	if tag.RowsAffected() == 0 {
		return Application{}, ErrNotFound
	}
	return s.GetApplication(ctx, orgID, appID)
}

// Operation kinds that take an app's operation lock.
const (
	OpDeploy   = "deploy"
	OpStop     = "stop"
	OpStart    = "start"
	OpRestart  = "restart"
	OpDelete   = "delete"
	OpRollback = "rollback"
	OpScale    = "scale"
	// OpConfigure rolls out a change of the app's environment (ConfigureApp).
	OpConfigure = "configure"
	// OpSuspend and OpResume are billing's: the wallet cannot pay, then can again.
	OpSuspend = "suspend"
	OpResume  = "resume"
	// OpMove moves an app to another node of its region (a node's drain or evacuation).
	OpMove = "move"
)

// InvalidStateError refuses an operation the app's state does not allow.
type InvalidStateError struct{ Reason string }

func (e *InvalidStateError) Error() string { return e.Reason }

func checkOperationAllowed(kind, status string, hasRelease bool) error {
	if status == AppDeleting && kind != OpDelete {
		return &InvalidStateError{Reason: "the application is being deleted"}
	}
	// A move only changes where the app lives, whatever its state: a drained node must be
	// emptied of stopped and suspended apps too. A domain change shows on whatever the app
	// serves, its suspended page included.
	if status == AppSuspended && kind != OpDelete && kind != OpResume && kind != OpMove && kind != OpDomains {
		return &InvalidStateError{Reason: "the application is suspended: its organization's wallet cannot pay for it. Add funds and it resumes by itself"}
	}
	switch kind {
	case OpStop:
		if status == AppStopped {
			return &InvalidStateError{Reason: "the application is already stopped"}
		}
		if !hasRelease {
			return &InvalidStateError{Reason: "the application has no release to stop; deploy it first"}
		}
	case OpStart:
		if !hasRelease {
			return &InvalidStateError{Reason: "the application has no release to start; deploy it first"}
		}
		if status == AppRunning {
			return &InvalidStateError{Reason: "the application is already running"}
		}
	case OpSuspend:
		if status != AppRunning {
			return &InvalidStateError{Reason: "only a running application is suspended"}
		}
	case OpResume:
		if status != AppSuspended {
			return &InvalidStateError{Reason: "the application is not suspended"}
		}
	case OpHeal:
		if status != AppRunning || !hasRelease {
			return &InvalidStateError{Reason: "only a running application is healed"}
		}
	case OpScale:
		if status != AppRunning {
			return &InvalidStateError{Reason: "only a running application can be scaled; deploy or start it first"}
		}
	case OpRollback:
		if !hasRelease {
			return &InvalidStateError{Reason: "the application has no release yet; deploy it first"}
		}
	case OpConfigure:
		if status != AppRunning || !hasRelease {
			return &InvalidStateError{Reason: "the application does not run: its new environment applies at its next deploy or start"}
		}
	case OpRestart:
		if !hasRelease {
			return &InvalidStateError{Reason: "the application has no release to restart; deploy it first"}
		}
		if status == AppStopped {
			return &InvalidStateError{Reason: "the application is stopped; start it instead"}
		}
	}
	return nil
}

// AppTarget is what a workflow needs to act on an app's machine.
type AppTarget struct {
	AppID        string
	OrgID        string
	Name         string
	NodeID       string
	Status       string // the app's status (running, stopped, suspended, …)
	CPUMillis    int
	MemoryMB     int
	Instances    int
	DrainSeconds int
	// MaxConnections and ReadTimeoutSeconds bound the app on its node's nginx (0: defaults).
	MaxConnections     int
	ReadTimeoutSeconds int
	// BuildTimeoutSeconds is the plan's time limit of one build.
	BuildTimeoutSeconds int
	// BuildDiskMB is the plan's disk limit of one build.
	BuildDiskMB int
	// Domains are the app's custom host names, served like its own.
	Domains         []TargetDomain
	Image           string // the current release's image
	ReleaseID       string // the operation (deployment or rollback) that made the current release
	CurrentInstance string
	RuntimeKind     string
	BuildImage      string
	RunImage        string
	// ReadOnlyRoot and WritablePaths are the runtime's root filesystem setting.
	ReadOnlyRoot  bool
	WritablePaths []string
}

// AppTargetByID loads an app for a workflow (no organization scoping: workflows act for the
// platform once the API has authorized the request).
func (s *Store) AppTargetByID(ctx context.Context, appID string) (AppTarget, error) {
	var t AppTarget
	var nodeID, image, release *string
	err := s.pool.QueryRow(ctx, `SELECT a.id, a.org_id, a.name, a.node_id, a.status, p.cpu_millis, p.memory_mb, a.instances, a.drain_seconds,
			a.max_connections, a.read_timeout_seconds, p.build_timeout_seconds, p.build_disk_mb, COALESCE(r.image, d.image), COALESCE(r.operation_id, d.id)::text, a.current_instance,
			rt.kind, rt.build_image, rt.run_image, rt.read_only_root, rt.writable_paths
		FROM applications a JOIN plans p ON p.id = a.plan_id JOIN runtimes rt ON rt.id = a.runtime_id
		LEFT JOIN releases r ON r.id = a.current_release_id
		LEFT JOIN deployments d ON d.id = a.current_deployment_id
		WHERE a.id = $1`, appID).Scan(&t.AppID, &t.OrgID, &t.Name, &nodeID, &t.Status, &t.CPUMillis, &t.MemoryMB, &t.Instances, &t.DrainSeconds,
		&t.MaxConnections, &t.ReadTimeoutSeconds, &t.BuildTimeoutSeconds, &t.BuildDiskMB, &image, &release, &t.CurrentInstance,
		&t.RuntimeKind, &t.BuildImage, &t.RunImage, &t.ReadOnlyRoot, &t.WritablePaths)
	if err != nil {
		return t, translate(err)
	}
	t.NodeID, t.Image, t.ReleaseID = deref(nodeID), deref(image), deref(release)
	if t.Domains, err = s.appDomains(ctx, appID); err != nil {
		return t, err
	}
	return t, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// SetAppRunning records that instance of the current release now serves the app.
func (s *Store) SetAppRunning(ctx context.Context, appID, instance, url string) error {
	return s.changeAndSyncUsage(ctx, appID, `UPDATE applications SET status = 'running', current_instance = $2, url = $3, running_plan_id = plan_id, updated_at = now() WHERE id = $1`, appID, instance, url)
}

// changeAndSyncUsage runs one update of the app and brings its usage segment in line, in one
// transaction: billing starts and stops exactly when the app's state does.
func (s *Store) changeAndSyncUsage(ctx context.Context, appID, sql string, args ...any) error {
	return translate(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			return err
		}
		return syncUsage(ctx, tx, appID)
	}))
}

// SetAppStopped records that the app serves nothing on purpose.
func (s *Store) SetAppStopped(ctx context.Context, appID string) error {
	return s.changeAndSyncUsage(ctx, appID, `UPDATE applications SET status = 'stopped', current_instance = '', updated_at = now() WHERE id = $1`, appID)
}

// DeleteApplication removes the app's row (its deployments and logs cascade).
func (s *Store) DeleteApplication(ctx context.Context, appID string) error {
	return s.changeAndSyncUsage(ctx, appID, `DELETE FROM applications WHERE id = $1`, appID)
}

// MarkAppDeploying shows a first deployment under way; an app with a release keeps its status
// (it still serves the previous one).
func (s *Store) MarkAppDeploying(ctx context.Context, appID string) error {
	_, err := s.pool.Exec(ctx, `UPDATE applications SET status = 'deploying', updated_at = now()
		WHERE id = $1 AND current_deployment_id IS NULL AND status <> 'deleting'`, appID)
	return translate(err)
}

// SetInstanceCount records how many instances the app runs (1-10).
func (s *Store) SetInstanceCount(ctx context.Context, appID string, instances int) error {
	return s.changeAndSyncUsage(ctx, appID, `UPDATE applications SET instances = $2, updated_at = now() WHERE id = $1`, appID, instances)
}
