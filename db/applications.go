package db

import (
	"context"
	"errors"
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
	ID                  string    `json:"id"`
	OrgID               string    `json:"organization_id"`
	Name                string    `json:"name"`
	Runtime             string    `json:"runtime"`
	Plan                string    `json:"plan"`
	Region              string    `json:"region"`
	NodeID              *string   `json:"node_id,omitempty"`
	GitURL              string    `json:"git_url"`
	GitBranch           string    `json:"git_branch"`
	Status              string    `json:"status"`
	Instances           int       `json:"instances"`
	DrainSeconds        int       `json:"drain_seconds"`
	URL                 string    `json:"url"`
	CurrentDeploymentID *string   `json:"current_deployment_id,omitempty"`
	ActiveWorkflowID    *string   `json:"active_workflow_id,omitempty"`
	CreatedAt           time.Time `json:"created_at"`
	UpdatedAt           time.Time `json:"updated_at"`

	currentInstance string
}

const appColumns = `a.id, a.org_id, a.name, rt.slug, p.slug, rg.slug, a.node_id, a.git_url, a.git_branch, a.status, a.instances, a.drain_seconds, a.url,
	a.current_deployment_id, a.active_workflow_id, a.created_at, a.updated_at, a.current_instance`

const appFrom = ` FROM applications a
	JOIN runtimes rt ON rt.id = a.runtime_id
	JOIN plans p ON p.id = a.plan_id
	JOIN regions rg ON rg.id = a.region_id `

func scanApp(row pgx.Row) (Application, error) {
	var a Application
	err := row.Scan(&a.ID, &a.OrgID, &a.Name, &a.Runtime, &a.Plan, &a.Region, &a.NodeID, &a.GitURL, &a.GitBranch, &a.Status, &a.Instances, &a.DrainSeconds, &a.URL,
		&a.CurrentDeploymentID, &a.ActiveWorkflowID, &a.CreatedAt, &a.UpdatedAt, &a.currentInstance)
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
}

// CreateApplication inserts an app.
func (s *Store) CreateApplication(ctx context.Context, n NewApplication) (Application, error) {
	var id string
	err := s.pool.QueryRow(ctx, `INSERT INTO applications (org_id, name, runtime_id, plan_id, region_id, git_url, git_branch, drain_seconds)
		VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE(NULLIF($8, 0), 10)) RETURNING id`,
		n.OrgID, n.Name, n.RuntimeID, n.PlanID, n.RegionID, n.GitURL, n.GitBranch, n.DrainSeconds).Scan(&id)
	if err != nil {
		return Application{}, translate(err)
	}
	return s.GetApplication(ctx, n.OrgID, id)
}

// ApplicationChanges are the fields an owner may change; nil means unchanged.
type ApplicationChanges struct {
	RuntimeID, PlanID, GitURL, GitBranch *string
	DrainSeconds                         *int
}

// UpdateApplication applies changes; they take effect at the next deployment (the drain time
// at the next rollout).
func (s *Store) UpdateApplication(ctx context.Context, orgID, appID string, c ApplicationChanges) (Application, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE applications SET
			runtime_id = COALESCE($3, runtime_id), plan_id = COALESCE($4, plan_id),
			git_url = COALESCE($5, git_url), git_branch = COALESCE($6, git_branch),
			drain_seconds = COALESCE($7, drain_seconds), updated_at = now()
		WHERE id::text = $1 AND org_id = $2 AND status <> 'deleting'`, appID, orgID, c.RuntimeID, c.PlanID, c.GitURL, c.GitBranch, c.DrainSeconds)
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
)

// InvalidStateError refuses an operation the app's state does not allow.
type InvalidStateError struct{ Reason string }

func (e *InvalidStateError) Error() string { return e.Reason }

// BusyError says which workflow holds the app's operation lock.
type BusyError struct{ WorkflowID string }

func (e *BusyError) Error() string {
	return fmt.Sprintf("another operation (%s) is in progress on this application", e.WorkflowID)
}
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// OperationRequest asks for an app's operation lock.
type OperationRequest struct {
	Kind        string
	OperationID string // for deploys, the new deployment's id
	WorkflowID  string
	UserID      string // who asked
	// StillRunning tells whether the workflow holding the lock is still running, so a lock left
	// by a crash between "lock" and "start workflow" does not block the app forever.
	StillRunning func(ctx context.Context, workflowID string) (bool, error)
}

// checkHolder refuses the lock while another workflow holds it and still runs; a holder that no
// longer runs (a crash between "lock" and "start workflow") is taken over.
func (req OperationRequest) checkHolder(ctx context.Context, holder *string) error {
	if holder == nil || *holder == req.WorkflowID {
		return nil
	}
	running, err := req.StillRunning(ctx, *holder)
	if err != nil {
		return fmt.Errorf("check operation %s: %w", *holder, err)
	}
	if running {
		return &BusyError{WorkflowID: *holder}
	}
	return nil
}

// BeginOperation takes the app's operation lock for req.WorkflowID in one transaction, checks
// the app's state allows the operation, and for a deploy records the queued deployment.
// Two operations on one app never interleave: the second gets a *BusyError.
func (s *Store) BeginOperation(ctx context.Context, orgID, appID string, req OperationRequest) (Application, error) {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var status, gitURL, gitBranch string
		var holder, current *string
		err := tx.QueryRow(ctx, `SELECT status, git_url, git_branch, active_workflow_id, current_deployment_id
			FROM applications WHERE id::text = $1 AND org_id = $2 FOR UPDATE`, appID, orgID).
			Scan(&status, &gitURL, &gitBranch, &holder, &current)
		if err != nil {
			return translate(err)
		}
		if err := req.checkHolder(ctx, holder); err != nil {
			return err
		}
		if err := checkOperationAllowed(req.Kind, status, current != nil); err != nil {
			return err
		}
		if req.Kind == OpDeploy {
			var creator *string
			if req.UserID != "" {
				creator = &req.UserID
			}
			if _, err := tx.Exec(ctx, `INSERT INTO deployments (id, app_id, workflow_id, git_url, git_branch, created_by)
				VALUES ($1, $2, $3, $4, $5, $6)`, req.OperationID, appID, req.WorkflowID, gitURL, gitBranch, creator); err != nil {
				return fmt.Errorf("record deployment: %w", err)
			}
		}
		_, err = tx.Exec(ctx, `UPDATE applications SET active_workflow_id = $2,
				status = CASE WHEN $3 = 'delete' THEN 'deleting' ELSE status END, updated_at = now()
			WHERE id = $1`, appID, req.WorkflowID, req.Kind)
		return err
	})
	if err != nil {
		return Application{}, translate(err)
	}
	return s.GetApplication(ctx, orgID, appID)
}

func checkOperationAllowed(kind, status string, hasRelease bool) error {
	if status == AppDeleting && kind != OpDelete {
		return &InvalidStateError{Reason: "the application is being deleted"}
	}
	if status == AppSuspended && kind != OpDelete && kind != OpResume {
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
	case OpScale:
		if status != AppRunning {
			return &InvalidStateError{Reason: "only a running application can be scaled; deploy or start it first"}
		}
	case OpRollback:
		if !hasRelease {
			return &InvalidStateError{Reason: "the application has no release yet; deploy it first"}
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

// ReleaseOperation frees the app's operation lock if workflowID still holds it.
func (s *Store) ReleaseOperation(ctx context.Context, appID, workflowID string) error {
	_, err := s.pool.Exec(ctx, `UPDATE applications SET active_workflow_id = NULL WHERE id = $1 AND active_workflow_id = $2`, appID, workflowID)
	return translate(err)
}

// AbortOperation undoes BeginOperation when the workflow could not be started.
func (s *Store) AbortOperation(ctx context.Context, appID, workflowID, deploymentID, reason string) error {
	return translate(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if deploymentID != "" {
			if _, err := tx.Exec(ctx, `UPDATE deployments SET status = 'failed', failure_reason = $2, finished_at = now()
				WHERE id = $1 AND status = 'queued'`, deploymentID, reason); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `UPDATE applications SET active_workflow_id = NULL,
				status = CASE WHEN status = 'deleting' THEN CASE WHEN current_deployment_id IS NULL THEN 'created' ELSE 'running' END ELSE status END
			WHERE id = $1 AND active_workflow_id = $2`, appID, workflowID)
		return err
	}))
}

// AppTarget is what a workflow needs to act on an app's machine.
type AppTarget struct {
	AppID           string
	OrgID           string
	Name            string
	NodeID          string
	CPUMillis       int
	MemoryMB        int
	Instances       int
	DrainSeconds    int
	Image           string // the current release's image
	ReleaseID       string // the operation (deployment or rollback) that made the current release
	CurrentInstance string
	RuntimeKind     string
	BuildImage      string
	RunImage        string
}

// AppTargetByID loads an app for a workflow (no organization scoping: workflows act for the
// platform once the API has authorized the request).
func (s *Store) AppTargetByID(ctx context.Context, appID string) (AppTarget, error) {
	var t AppTarget
	var nodeID, image, release *string
	err := s.pool.QueryRow(ctx, `SELECT a.id, a.org_id, a.name, a.node_id, p.cpu_millis, p.memory_mb, a.instances, a.drain_seconds,
			COALESCE(r.image, d.image), COALESCE(r.operation_id, d.id)::text, a.current_instance,
			rt.kind, rt.build_image, rt.run_image
		FROM applications a JOIN plans p ON p.id = a.plan_id JOIN runtimes rt ON rt.id = a.runtime_id
		LEFT JOIN releases r ON r.id = a.current_release_id
		LEFT JOIN deployments d ON d.id = a.current_deployment_id
		WHERE a.id = $1`, appID).Scan(&t.AppID, &t.OrgID, &t.Name, &nodeID, &t.CPUMillis, &t.MemoryMB, &t.Instances, &t.DrainSeconds, &image, &release, &t.CurrentInstance,
		&t.RuntimeKind, &t.BuildImage, &t.RunImage)
	if err != nil {
		return t, translate(err)
	}
	t.NodeID, t.Image, t.ReleaseID = deref(nodeID), deref(image), deref(release)
	return t, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// PlaceApplication returns the app's node, choosing the least busy online node of its region
// the first time. ErrNoNode when the region has none online.
func (s *Store) PlaceApplication(ctx context.Context, appID string) (string, error) {
	var nodeID string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var current *string
		var regionID string
		if err := tx.QueryRow(ctx, `SELECT node_id, region_id FROM applications WHERE id = $1 FOR UPDATE`, appID).Scan(&current, &regionID); err != nil {
			return translate(err)
		}
		if current != nil {
			nodeID = *current
			return nil
		}
		err := tx.QueryRow(ctx, `SELECT id FROM nodes WHERE region_id = $1 AND registered_at IS NOT NULL
				AND last_heartbeat_at > now() - make_interval(secs => $2)
			ORDER BY containers, name LIMIT 1`, regionID, NodeOfflineAfter.Seconds()).Scan(&nodeID)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNoNode
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE applications SET node_id = $2 WHERE id = $1`, appID, nodeID)
		return err
	})
	return nodeID, err
}

// ErrNoNode: no online node in the app's region.
var ErrNoNode = errors.New("no online node in the application's region")

// SetAppRunning records that instance of the current release now serves the app.
func (s *Store) SetAppRunning(ctx context.Context, appID, instance, url string) error {
	return s.changeAndSyncUsage(ctx, appID, `UPDATE applications SET status = 'running', current_instance = $2, url = $3, updated_at = now() WHERE id = $1`, appID, instance, url)
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
