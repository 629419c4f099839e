package db

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Deployment statuses.
const (
	DeploymentQueued    = "queued"
	DeploymentBuilding  = "building"
	DeploymentDeploying = "deploying"
	DeploymentSucceeded = "succeeded"
	DeploymentFailed    = "failed"
)

// Deployment is one build-and-release of an app.
type Deployment struct {
	ID         string
	AppID      string
	Status     string
	WorkflowID string
	GitURL     string
	GitBranch  string
	CommitSHA  string
	// RequestedCommit is the exact commit asked for (a push, or POST …/deploy {"commit"}); ""
	// builds the branch's head. CommitMessage is the built commit's message.
	RequestedCommit string
	CommitMessage   string
	Image           string
	FailureReason   string
	// SupersededBy is the newer deployment that replaced this one while it waited.
	SupersededBy *string
	CreatedAt    time.Time
	StartedAt    *time.Time
	FinishedAt   *time.Time
}

const deploymentColumns = `d.id, d.app_id, d.status, d.workflow_id, d.git_url, d.git_branch, d.commit_sha, d.requested_commit, d.commit_message, d.image, d.failure_reason,
	d.superseded_by, d.created_at, d.started_at, d.finished_at`

func scanDeployment(row pgx.Row) (Deployment, error) {
	var d Deployment
	err := row.Scan(&d.ID, &d.AppID, &d.Status, &d.WorkflowID, &d.GitURL, &d.GitBranch, &d.CommitSHA, &d.RequestedCommit, &d.CommitMessage, &d.Image, &d.FailureReason,
		&d.SupersededBy, &d.CreatedAt, &d.StartedAt, &d.FinishedAt)
	return d, translate(err)
}

// ListDeployments lists an app's deployments, newest first.
func (s *Store) ListDeployments(ctx context.Context, orgID, appID string) ([]Deployment, error) {
	if _, err := s.GetApplication(ctx, orgID, appID); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deploymentColumns+` FROM deployments d WHERE d.app_id = $1 ORDER BY d.created_at DESC`, appID)
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	return collect(rows, scanDeployment)
}

// GetDeployment returns one deployment of an app of orgID.
func (s *Store) GetDeployment(ctx context.Context, orgID, appID, deploymentID string) (Deployment, error) {
	return scanDeployment(s.pool.QueryRow(ctx, `SELECT `+deploymentColumns+` FROM deployments d
		JOIN applications a ON a.id = d.app_id
		WHERE d.id::text = $1 AND a.id::text = $2 AND a.org_id = $3`, deploymentID, appID, orgID))
}

// DeploymentByID loads a deployment for a workflow.
func (s *Store) DeploymentByID(ctx context.Context, deploymentID string) (Deployment, error) {
	return scanDeployment(s.pool.QueryRow(ctx, `SELECT `+deploymentColumns+` FROM deployments d WHERE d.id = $1`, deploymentID))
}

// DeploymentLog returns the deployment's log as it is so far.
func (s *Store) DeploymentLog(ctx context.Context, orgID, appID, deploymentID string) (string, error) {
	if _, err := s.GetDeployment(ctx, orgID, appID, deploymentID); err != nil {
		return "", err
	}
	var text strings.Builder
	err := s.WriteDeploymentLog(ctx, deploymentID, &text)
	return text.String(), err
}

// WriteDeploymentLog writes the deployment's log to w chunk by chunk, as the rows arrive: a
// 10 MiB log never sits in memory whole, on the database's side nor on ours. The caller has
// checked that the deployment is the caller's.
func (s *Store) WriteDeploymentLog(ctx context.Context, deploymentID string, w io.Writer) error {
	rows, err := s.pool.Query(ctx, `SELECT body FROM deployment_log_chunks WHERE deployment_id = $1 ORDER BY id`, deploymentID)
	if err != nil {
		return fmt.Errorf("read log: %w", translate(err))
	}
	defer rows.Close()
	var body string
	for rows.Next() {
		if err := rows.Scan(&body); err != nil {
			return fmt.Errorf("read log: %w", err)
		}
		if _, err := io.WriteString(w, body); err != nil {
			return fmt.Errorf("write log: %w", err)
		}
	}
	return translate(rows.Err())
}

// NodeLogChunk is one piece of a deployment's log as a node sent it. (DeploymentID, Source,
// Attempt, Seq) is unique: a chunk sent twice is stored once.
type NodeLogChunk struct {
	DeploymentID string
	Source       string
	Attempt      int32
	Seq          int
	Text         string
}

// AppendLogChunk stores a chunk sent by nodeID. A node may only write the logs of deployments
// of apps placed on it; a chunk sent twice is stored once.
func (s *Store) AppendLogChunk(ctx context.Context, nodeID string, c NodeLogChunk) error {
	return translate(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The deployment's row lock orders a node's appends, so the count never overshoots.
		var logBytes int64
		var truncated bool
		err := tx.QueryRow(ctx, `SELECT d.log_bytes, d.log_truncated FROM deployments d JOIN applications a ON a.id = d.app_id
			WHERE d.id::text = $1 AND a.node_id = $2 FOR UPDATE OF d`, c.DeploymentID, nodeID).Scan(&logBytes, &truncated)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		// A chunk sent twice (an HTTP retry) is stored, and counted, once.
		var seen bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM deployment_log_chunks
			WHERE deployment_id::text = $1 AND source = $2 AND attempt = $3 AND seq = $4)`, c.DeploymentID, c.Source, c.Attempt, c.Seq).Scan(&seen); err != nil || seen {
			return err
		}
		size := int64(len(c.Text))
		if logBytes+size > s.buildLogCap() {
			if truncated {
				return nil // past the cap: dropped, the build goes on
			}
			// One line says so, in place of the chunk that went past the cap.
			_, err := tx.Exec(ctx, `INSERT INTO deployment_log_chunks (deployment_id, source, attempt, seq, body)
				VALUES ($1, 'control:log-cap', 0, 0, $2) ON CONFLICT DO NOTHING`, c.DeploymentID,
				fmt.Sprintf("\n==> The build log reached its cap of %d MiB: the rest of it is not stored (the build goes on).\n", s.buildLogCap()>>20))
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `UPDATE deployments SET log_truncated = true WHERE id::text = $1`, c.DeploymentID)
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO deployment_log_chunks (deployment_id, source, attempt, seq, body)
			VALUES ($1, $2, $3, $4, $5)`, c.DeploymentID, c.Source, c.Attempt, c.Seq, c.Text); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE deployments SET log_bytes = log_bytes + $2 WHERE id::text = $1`, c.DeploymentID, size)
		return err
	}))
}

// DefaultBuildLogCap is how much of a deployment's log the nodes may store: 10 MiB.
const DefaultBuildLogCap = 10 << 20

func (s *Store) buildLogCap() int64 {
	if s.BuildLogCap > 0 {
		return s.BuildLogCap
	}
	return DefaultBuildLogCap
}

// LogKeyResult is the control log key of a deployment's final line ("==> Deployed" or
// "==> Deployment failed"), written after its terminal status: a live stream ends after it.
const LogKeyResult = "result"

// AppendControlLog writes a line of the control plane's own into a deployment's log (the
// workflow's progress and its failure reason).
func (s *Store) AppendControlLog(ctx context.Context, deploymentID, key, text string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO deployment_log_chunks (deployment_id, source, attempt, seq, body)
		VALUES ($1, 'control:' || $2, 0, 0, $3) ON CONFLICT DO NOTHING`, deploymentID, key, text)
	return translate(err)
}

// SetDeploymentStatus moves a deployment forward (building, deploying).
func (s *Store) SetDeploymentStatus(ctx context.Context, deploymentID, status string) error {
	_, err := s.pool.Exec(ctx, `UPDATE deployments SET status = $2, started_at = COALESCE(started_at, now())
		WHERE id = $1 AND status NOT IN ('succeeded', 'failed')`, deploymentID, status)
	return translate(err)
}

// SetDeploymentSource records the commit (and its message) and image a deployment is building.
func (s *Store) SetDeploymentSource(ctx context.Context, deploymentID, commitSHA, commitMessage, image string) error {
	_, err := s.pool.Exec(ctx, `UPDATE deployments SET commit_sha = $2, commit_message = $3, image = $4 WHERE id = $1`, deploymentID, commitSHA, commitMessage, image)
	return translate(err)
}

// CompleteDeployment marks the deployment succeeded, records it as the app's newest release and
// makes that current, atomically.
func (s *Store) CompleteDeployment(ctx context.Context, appID, deploymentID, instance, url string) error {
	return translate(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE deployments SET status = 'succeeded', finished_at = now(), failure_reason = ''
			WHERE id = $1`, deploymentID); err != nil {
			return err
		}
		if err := recordDeployRelease(ctx, tx, deploymentID); err != nil {
			return fmt.Errorf("record release: %w", err)
		}
		_, err := tx.Exec(ctx, `UPDATE applications SET status = 'running', current_deployment_id = $2, current_instance = $3,
			current_release_id = (SELECT id FROM releases WHERE operation_id = $2), running_plan_id = plan_id,
			url = $4, updated_at = now(), active_workflow_id = `+releasedBy(`$2`)+` WHERE id = $1`, appID, deploymentID, instance, url)
		if err != nil {
			return err
		}
		return syncUsage(ctx, tx, appID)
	}))
}

// FailDeployment marks the deployment failed (or cancelled) with reason. The app keeps its
// previous release; an app that never had one becomes failed (or stays created).
func (s *Store) FailDeployment(ctx context.Context, appID, deploymentID, status, reason string) error {
	if status != DeploymentFailed && status != DeploymentCancelled {
		return fmt.Errorf("a deployment cannot fail as %q", status)
	}
	return translate(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE deployments SET status = $3, failure_reason = $2, finished_at = now()
			WHERE id = $1`, deploymentID, reason, status); err != nil {
			return err
		}
		// A cancelled first deploy leaves the app as it was: never deployed.
		_, err := tx.Exec(ctx, `UPDATE applications SET status = CASE WHEN current_deployment_id IS NULL
				THEN CASE WHEN $3 = 'cancelled' THEN 'created' ELSE 'failed' END ELSE status END,
			updated_at = now(), active_workflow_id = `+releasedBy(`$2`)+` WHERE id = $1`, appID, deploymentID, status)
		return err
	}))
}

// releasedBy is the new active_workflow_id when the deployment whose id is in parameter param
// ends: the lock is freed in the same transaction that publishes the outcome, so a client that
// sees "succeeded" or "failed" can start its next operation at once. It stays untouched when
// another workflow holds it.
func releasedBy(param string) string {
	return `CASE WHEN active_workflow_id = (SELECT workflow_id FROM deployments WHERE id = ` + param + `)
		THEN NULL ELSE active_workflow_id END`
}
