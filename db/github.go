package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/skypanel/skypanel/secrets"
)

// GitHubConnection is a user's GitHub account, connected through OAuth. TokenSealed is the
// access token sealed under the platform keyring (secrets.GitHubToken(UserID)).
type GitHubConnection struct {
	UserID       string
	GitHubUserID int64
	Login        string
	TokenSealed  string
	Scopes       string
	ConnectedAt  time.Time
}

// ErrGitHubDisconnected: the user whose token an app clones with has no GitHub connection
// (disconnected, or never connected).
var ErrGitHubDisconnected = errors.New("GitHub is not connected")

// SaveGitHubState records the single-use nonce of an authorization started by userID, and
// forgets the expired ones of anybody.
func (s *Store) SaveGitHubState(ctx context.Context, nonce, userID string, expires time.Time) error {
	return translate(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM github_oauth_states WHERE expires_at < now()`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO github_oauth_states (nonce, user_id, expires_at) VALUES ($1, $2, $3)`, nonce, userID, expires)
		return err
	}))
}

// TakeGitHubState consumes the nonce of userID's authorization: true once, while it is
// unexpired; false for one used before, expired, unknown or another user's.
func (s *Store) TakeGitHubState(ctx context.Context, nonce, userID string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM github_oauth_states WHERE nonce = $1 AND user_id::text = $2 AND expires_at > now()`, nonce, userID)
	if err != nil {
		return false, translate(err)
	}
	return tag.RowsAffected() == 1, nil
}

// SaveGitHubConnection stores (or replaces) a user's connection.
func (s *Store) SaveGitHubConnection(ctx context.Context, c GitHubConnection) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO github_connections (user_id, github_user_id, github_login, token_sealed, scopes)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (user_id) DO UPDATE SET github_user_id = $2, github_login = $3, token_sealed = $4, scopes = $5, connected_at = now()`,
		c.UserID, c.GitHubUserID, c.Login, c.TokenSealed, c.Scopes)
	return translate(err)
}

// GitHubConnectionOf is userID's connection, or ErrNotFound.
func (s *Store) GitHubConnectionOf(ctx context.Context, userID string) (GitHubConnection, error) {
	var c GitHubConnection
	err := s.pool.QueryRow(ctx, `SELECT user_id::text, github_user_id, github_login, token_sealed, scopes, connected_at
		FROM github_connections WHERE user_id::text = $1`, userID).
		Scan(&c.UserID, &c.GitHubUserID, &c.Login, &c.TokenSealed, &c.Scopes, &c.ConnectedAt)
	return c, translate(err)
}

// DeleteGitHubConnection removes userID's connection (ErrNotFound when there is none).
func (s *Store) DeleteGitHubConnection(ctx context.Context, userID string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM github_connections WHERE user_id::text = $1`, userID)
	if err != nil {
		return translate(err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// RecordGitHubDelivery takes a webhook delivery: false when it was taken before (GitHub
// redelivers, and anyone may replay a captured one).
func (s *Store) RecordGitHubDelivery(ctx context.Context, deliveryID, event string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO github_deliveries (delivery_id, event) VALUES ($1, $2) ON CONFLICT DO NOTHING`, deliveryID, event)
	if err != nil {
		return false, translate(err)
	}
	return tag.RowsAffected() == 1, nil
}

// ForgetGitHubDelivery un-takes a delivery whose work could not be queued, so GitHub's
// redelivery of it is taken.
func (s *Store) ForgetGitHubDelivery(ctx context.Context, deliveryID string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM github_deliveries WHERE delivery_id = $1`, deliveryID)
	return translate(err)
}

// PushTarget is an app a push to its repository and branch deploys.
type PushTarget struct {
	AppID, OrgID, Name, UserID string
	// LiveCommit is the commit the app's current release was built from ("" before one).
	LiveCommit string
}

// AppsToDeployOnPush lists the apps connected to repository (owner/repo, any case) on branch
// with auto-deploy on.
func (s *Store) AppsToDeployOnPush(ctx context.Context, repository, branch string) ([]PushTarget, error) {
	rows, err := s.pool.Query(ctx, `SELECT a.id::text, a.org_id::text, a.name, COALESCE(a.github_user_id::text, ''), COALESCE(d.commit_sha, '')
		FROM applications a LEFT JOIN deployments d ON d.id = a.current_deployment_id
		WHERE lower(a.github_repository) = lower($1) AND a.github_repository <> '' AND a.git_branch = $2 AND a.auto_deploy AND a.status <> 'deleting'
		ORDER BY a.created_at`, repository, branch)
	if err != nil {
		return nil, fmt.Errorf("apps of %s: %w", repository, err)
	}
	return collect(rows, func(row pgx.Row) (PushTarget, error) {
		var t PushTarget
		err := row.Scan(&t.AppID, &t.OrgID, &t.Name, &t.UserID, &t.LiveCommit)
		return t, err
	})
}

// AppConnectedToGitHub says whether the app clones from GitHub with its user's token.
func (s *Store) AppConnectedToGitHub(ctx context.Context, appID string) (bool, error) {
	var connected bool
	err := s.pool.QueryRow(ctx, `SELECT github_repository <> '' FROM applications WHERE id::text = $1`, appID).Scan(&connected)
	if err != nil {
		return false, fmt.Errorf("read the source of app %s: %w", appID, translate(err))
	}
	return connected, nil
}

// ErrNotYourClone: the node asked for the token of a clone that is not running on it.
var ErrNotYourClone = errors.New("no operation of this app runs on this node with this id")

// CloneToken is the sealed token the running operation operationID of appID clones with, for
// node nodeID: the app must be placed on (or moving to) that node and operationID must be its
// running operation (a deploy's id is its deployment's). ErrNotYourClone otherwise;
// ErrGitHubDisconnected when the app's user has no connection now (with the login it had).
func (s *Store) CloneToken(ctx context.Context, nodeID, appID, operationID string) (sealed, userID, repository string, err error) {
	var user *string
	var running bool
	err = s.pool.QueryRow(ctx, `SELECT a.github_user_id::text, a.github_repository, EXISTS (SELECT 1 FROM app_operations o
			WHERE o.app_id = a.id AND o.status = 'running' AND o.id::text = $3)
		FROM applications a WHERE a.id::text = $1 AND (a.node_id::text = $2 OR a.moving_to::text = $2)`,
		appID, nodeID, operationID).Scan(&user, &repository, &running)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && !running) {
		return "", "", "", ErrNotYourClone
	}
	if err != nil {
		return "", "", "", fmt.Errorf("read the clone of app %s: %w", appID, err)
	}
	if user == nil || repository == "" {
		return "", "", repository, ErrGitHubDisconnected
	}
	err = s.pool.QueryRow(ctx, `SELECT token_sealed FROM github_connections WHERE user_id::text = $1`, *user).Scan(&sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", *user, repository, ErrGitHubDisconnected
	}
	if err != nil {
		return "", "", "", fmt.Errorf("read the GitHub connection of app %s: %w", appID, err)
	}
	return sealed, *user, repository, nil
}

// reencryptGitHubTokens re-seals the users' GitHub tokens not under the keyring's primary key
// (secrets reencrypt).
func (s *Store) reencryptGitHubTokens(ctx context.Context, ring *secrets.Keyring) (stored, moved int, err error) {
	rows, err := s.pool.Query(ctx, `SELECT user_id::text, token_sealed FROM github_connections`)
	if err != nil {
		return 0, 0, fmt.Errorf("read GitHub tokens: %w", err)
	}
	type row struct{ userID, sealed string }
	all, err := collect(rows, func(r pgx.Row) (row, error) {
		var v row
		err := r.Scan(&v.userID, &v.sealed)
		return v, err
	})
	if err != nil {
		return 0, 0, err
	}
	for _, v := range all {
		if !ring.NeedsReencrypt(v.sealed) {
			continue
		}
		resealed, err := ring.Reencrypt(v.sealed, secrets.GitHubToken(v.userID))
		if err != nil {
			return len(all), moved, fmt.Errorf("re-encrypt the GitHub token of user %s: %s: %w", v.userID, secrets.Explain(err), err)
		}
		tag, err := s.pool.Exec(ctx, `UPDATE github_connections SET token_sealed = $3 WHERE user_id::text = $1 AND token_sealed = $2`, v.userID, v.sealed, resealed)
		if err != nil {
			return len(all), moved, fmt.Errorf("store the re-sealed GitHub token of user %s: %w", v.userID, err)
		}
		moved += int(tag.RowsAffected())
	}
	return len(all), moved, nil
}
