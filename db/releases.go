package db

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Release kinds.
const (
	ReleaseDeploy   = "deploy"
	ReleaseRollback = "rollback"
)

// Release is one version an app served: a deployment's image, or an earlier release restored by
// a rollback, with the config it ran with.
type Release struct {
	ID              string
	AppID           string
	Version         int
	Kind            string
	Description     string
	DeploymentID    *string
	RestoredVersion *int
	CommitSHA       string
	CommitMessage   string
	Image           string
	ImageAvailable  bool
	Config          json.RawMessage
	CreatedBy       *string
	CreatedAt       time.Time
	Current         bool

	operationID string
}

// ReleaseConfig is the config snapshot a release runs with. Its JSON is how releases.config
// stores it (jsonb), not an API shape: the one set of json tags in db.
type ReleaseConfig struct {
	Plan      string `json:"plan"`
	CPUMillis int    `json:"cpu_millis"`
	MemoryMB  int    `json:"memory_mb"`
	Runtime   string `json:"runtime"`
	// EnvKeys are the names of the variables the release runs with (values are never copied).
	EnvKeys []string `json:"env_keys,omitempty"`
}

const releaseColumns = `r.id, r.app_id, r.version, r.kind, r.description, r.deployment_id, r.restored_version, r.commit_sha, r.commit_message, r.image,
	NOT r.image_removed, r.config, u.email, r.created_at, (a.current_release_id = r.id), r.operation_id`

const releaseFrom = ` FROM releases r JOIN applications a ON a.id = r.app_id LEFT JOIN users u ON u.id = r.created_by `

func scanRelease(row pgx.Row) (Release, error) {
	var r Release
	var current *bool
	err := row.Scan(&r.ID, &r.AppID, &r.Version, &r.Kind, &r.Description, &r.DeploymentID, &r.RestoredVersion, &r.CommitSHA, &r.CommitMessage, &r.Image,
		&r.ImageAvailable, &r.Config, &r.CreatedBy, &r.CreatedAt, &current, &r.operationID)
	r.Current = current != nil && *current
	return r, translate(err)
}

// OperationID is the deployment or rollback that made the release (it labels its containers).
func (r Release) OperationID() string { return r.operationID }

// ListReleases lists an app's releases, newest first.
func (s *Store) ListReleases(ctx context.Context, orgID, appID string) ([]Release, error) {
	if _, err := s.GetApplication(ctx, orgID, appID); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+releaseColumns+releaseFrom+` WHERE r.app_id = $1 ORDER BY r.version DESC`, appID)
	if err != nil {
		return nil, fmt.Errorf("list releases: %w", err)
	}
	return collect(rows, scanRelease)
}

// ReleaseByVersion finds release vN of an app (for workflows: not organization-scoped).
func (s *Store) ReleaseByVersion(ctx context.Context, appID string, version int) (Release, error) {
	return scanRelease(s.pool.QueryRow(ctx, `SELECT `+releaseColumns+releaseFrom+` WHERE r.app_id = $1 AND r.version = $2`, appID, version))
}

// recordDeployRelease makes a succeeded deployment the app's newest release, in tx. Recording
// the same deployment twice is a no-op.
func recordDeployRelease(ctx context.Context, tx pgx.Tx, deploymentID string) error {
	_, err := tx.Exec(ctx, `INSERT INTO releases (app_id, version, operation_id, kind, deployment_id, commit_sha, commit_message, image, config, description, created_by)
		SELECT d.app_id, COALESCE((SELECT max(version) FROM releases WHERE app_id = d.app_id), 0) + 1, d.id, 'deploy', d.id,
			d.commit_sha, d.commit_message, d.image,
			jsonb_build_object('plan', p.slug, 'cpu_millis', p.cpu_millis, 'memory_mb', p.memory_mb, 'runtime', rt.slug,
				'env_keys', (SELECT COALESCE(jsonb_agg(key ORDER BY key), '[]'::jsonb) FROM app_env WHERE app_id = d.app_id)),
			CASE WHEN d.commit_sha = '' THEN 'Deploy' ELSE 'Deploy ' || left(d.commit_sha, 7) END, d.created_by
		FROM deployments d JOIN applications a ON a.id = d.app_id
		JOIN plans p ON p.id = a.plan_id JOIN runtimes rt ON rt.id = a.runtime_id
		WHERE d.id = $1
		ON CONFLICT (operation_id) DO NOTHING`, deploymentID)
	return err
}

// CompleteRollback records release vN restored by operationID as the app's newest release and
// makes it current, atomically. Recording it twice is a no-op.
func (s *Store) CompleteRollback(ctx context.Context, appID, operationID string, version int, userID, instance, url string) error {
	return translate(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var creator *string
		if userID != "" {
			creator = &userID
		}
		if _, err := tx.Exec(ctx, `INSERT INTO releases (app_id, version, operation_id, kind, deployment_id, restored_version,
				commit_sha, commit_message, image, config, description, created_by)
			SELECT app_id, (SELECT max(version) FROM releases WHERE app_id = $1) + 1, $2, 'rollback', deployment_id, version,
				commit_sha, commit_message, image, config, 'Rollback to v' || version, $4
			FROM releases WHERE app_id = $1 AND version = $3
			ON CONFLICT (operation_id) DO NOTHING`, appID, operationID, version, creator); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE applications a SET current_release_id = r.id, current_deployment_id = r.deployment_id, running_plan_id = a.plan_id,
				current_instance = $3, url = $4, status = 'running', updated_at = now()
			FROM releases r WHERE r.operation_id = $2 AND a.id = $1`, appID, operationID, instance, url)
		if err != nil {
			return err
		}
		return syncUsage(ctx, tx, appID)
	}))
}

// PruneReleaseImages keeps the images of the app's newest keep distinct releases (and always
// the current one), marks the older ones removed, and returns them for the node to delete.
func (s *Store) PruneReleaseImages(ctx context.Context, appID string, keep int) ([]string, error) {
	var images []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `WITH ranked AS (
				SELECT image, max(version) AS newest FROM releases WHERE app_id = $1 AND NOT image_removed GROUP BY image),
			beyond AS (SELECT image FROM ranked ORDER BY newest DESC OFFSET $2)
			SELECT image FROM beyond
			WHERE image NOT IN (SELECT r.image FROM applications a JOIN releases r ON r.id = a.current_release_id WHERE a.id = $1)`, appID, keep)
		if err != nil {
			return err
		}
		images, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(images) == 0 {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE releases SET image_removed = true WHERE app_id = $1 AND image = ANY($2)`, appID, images)
		return err
	})
	return images, translate(err)
}
