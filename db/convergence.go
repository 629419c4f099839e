package db

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// OpHeal is the platform's own operation that brings a running app back to its instance count
// after its instances vanished or kept dying (see the convergence package).
const OpHeal = "heal"

// ReportedInstance is one container of an app as its node last saw it.
type ReportedInstance struct {
	Name      string `json:"name"`
	ReleaseID string `json:"release_id"`
	State     string `json:"state"` // Docker's: running, restarting, exited, …
}

// RecordNodeReport replaces the node's last report of what runs on it, by app id.
func (s *Store) RecordNodeReport(ctx context.Context, nodeID string, apps map[string][]ReportedInstance) error {
	if apps == nil {
		apps = map[string][]ReportedInstance{}
	}
	doc, err := json.Marshal(apps)
	if err != nil {
		return fmt.Errorf("encode the report of node %s: %w", nodeID, err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO node_reports (node_id, received_at, apps) VALUES ($1, now(), $2)
		ON CONFLICT (node_id) DO UPDATE SET received_at = now(), apps = EXCLUDED.apps`, nodeID, doc)
	if err != nil {
		return fmt.Errorf("record the report of node %s: %w", nodeID, err)
	}
	return nil
}

// NodeReportedAt is when the node's last report arrived (nil before its first).
func (s *Store) NodeReportedAt(ctx context.Context, nodeID string) (*time.Time, error) {
	var at *time.Time
	err := s.pool.QueryRow(ctx, `SELECT max(received_at) FROM node_reports WHERE node_id::text = $1`, nodeID).Scan(&at)
	if err != nil {
		return nil, fmt.Errorf("read the report of node %s: %w", nodeID, err)
	}
	return at, nil
}

// DesiredApp is a running app as the control plane wants it, beside what its node last
// reported of it.
type DesiredApp struct {
	AppID     string
	OrgID     string
	NodeID    string
	ReleaseID string // the current release: its instances carry this id
	Instances int
	// ChangedAt is when the app's last operation ended, or its running one started: a report
	// received before it may show the app as it was, not as it is meant to be now.
	ChangedAt  time.Time
	ReportedAt time.Time
	Reported   []ReportedInstance
}

// AppsToConverge lists the running, undegraded apps with a release on nodes that reported
// within fresh, with what the node reported of each. Apps whose queue holds a stop, a delete or
// a suspension are left out (they are on their way out, not short), and so are those with a
// heal waiting or running already.
func (s *Store) AppsToConverge(ctx context.Context, fresh time.Duration) ([]DesiredApp, error) {
	rows, err := s.pool.Query(ctx, `SELECT a.id::text, a.org_id::text, a.node_id::text, COALESCE(r.operation_id, d.id)::text, a.instances,
			COALESCE((SELECT max(greatest(o.finished_at, o.started_at, o.created_at)) FROM app_operations o
				WHERE o.app_id = a.id), 'epoch'::timestamptz),
			nr.received_at, COALESCE(nr.apps -> (a.id::text), '[]'::jsonb)
		FROM applications a
		JOIN node_reports nr ON nr.node_id = a.node_id
		JOIN deployments d ON d.id = a.current_deployment_id
		LEFT JOIN releases r ON r.id = a.current_release_id
		WHERE a.status = 'running' AND a.degraded_reason = '' AND nr.received_at > now() - make_interval(secs => $1)
			AND NOT EXISTS (SELECT 1 FROM app_operations o WHERE o.app_id = a.id AND o.status IN ('queued', 'running')
				AND o.kind IN ('stop', 'delete', 'suspend', 'heal'))
		ORDER BY a.id`, fresh.Seconds())
	if err != nil {
		return nil, fmt.Errorf("list apps to converge: %w", err)
	}
	defer rows.Close()
	var apps []DesiredApp
	for rows.Next() {
		var a DesiredApp
		var reported []byte
		if err := rows.Scan(&a.AppID, &a.OrgID, &a.NodeID, &a.ReleaseID, &a.Instances, &a.ChangedAt, &a.ReportedAt, &reported); err != nil {
			return nil, fmt.Errorf("list apps to converge: %w", err)
		}
		if err := json.Unmarshal(reported, &a.Reported); err != nil {
			return nil, fmt.Errorf("read the report of app %s: %w", a.AppID, err)
		}
		apps = append(apps, a)
	}
	return apps, translate(rows.Err())
}

// HealAttempts is how many heals of the app started within the window and after its last
// successful operation other than a heal (a deploy, a restart, … wipes the slate), with the
// reason the latest of them ended with.
func (s *Store) HealAttempts(ctx context.Context, appID string, window time.Duration) (int, string, error) {
	var n int
	var last string
	err := s.pool.QueryRow(ctx, `WITH counted AS (
			SELECT o.reason, o.seq FROM app_operations o
			WHERE o.app_id::text = $1 AND o.kind = 'heal' AND o.started_at IS NOT NULL
				AND o.started_at > now() - make_interval(secs => $2)
				AND o.started_at > COALESCE((SELECT max(p.finished_at) FROM app_operations p
					WHERE p.app_id = o.app_id AND p.kind <> 'heal' AND p.status = 'succeeded'), '-infinity'))
		SELECT count(*), COALESCE((SELECT reason FROM counted ORDER BY seq DESC LIMIT 1), '') FROM counted`,
		appID, window.Seconds()).Scan(&n, &last)
	if err != nil {
		return 0, "", fmt.Errorf("count heals of app %s: %w", appID, err)
	}
	return n, last, nil
}

// MarkAppDegraded stops the platform healing a running app, with the reason its owner reads.
// It reports whether it changed anything (an app no longer running, or degraded already, is
// left as it is).
func (s *Store) MarkAppDegraded(ctx context.Context, appID, reason string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE applications SET degraded_reason = $2, degraded_at = now(), updated_at = now()
		WHERE id::text = $1 AND status = 'running' AND degraded_reason = ''`, appID, reason)
	if err != nil {
		return false, fmt.Errorf("mark app %s degraded: %w", appID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseSource is where the app's current release was built from: what a heal rebuilds when
// its node lost the image. BuildLogID is the deployment whose log the rebuild appends to.
type ReleaseSource struct {
	AppStatus  string
	GitURL     string
	GitBranch  string
	CommitSHA  string
	BuildLogID string
}

// CurrentReleaseSource reads the source of the app's current release.
func (s *Store) CurrentReleaseSource(ctx context.Context, appID string) (ReleaseSource, error) {
	var src ReleaseSource
	err := s.pool.QueryRow(ctx, `SELECT a.status, COALESCE(rd.git_url, d.git_url), COALESCE(rd.git_branch, d.git_branch),
			COALESCE(NULLIF(r.commit_sha, ''), d.commit_sha), COALESCE(rd.id, d.id)::text
		FROM applications a
		JOIN deployments d ON d.id = a.current_deployment_id
		LEFT JOIN releases r ON r.id = a.current_release_id
		LEFT JOIN deployments rd ON rd.id = r.deployment_id
		WHERE a.id::text = $1`, appID).Scan(&src.AppStatus, &src.GitURL, &src.GitBranch, &src.CommitSHA, &src.BuildLogID)
	if err != nil {
		return src, translate(err)
	}
	return src, nil
}

// ReplaceReleaseImage points the app's releases and deployments that ran oldImage at newImage.
func (s *Store) ReplaceReleaseImage(ctx context.Context, appID, oldImage, newImage string) error {
	_, err := s.pool.Exec(ctx, `WITH r AS (UPDATE releases SET image = $3, image_removed = false WHERE app_id::text = $1 AND image = $2)
		UPDATE deployments SET image = $3 WHERE app_id::text = $1 AND image = $2`, appID, oldImage, newImage)
	if err != nil {
		return fmt.Errorf("replace image %s of app %s: %w", oldImage, appID, err)
	}
	return nil
}
