package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// AdminTokenLifetime is how long an admin's token lives when its creator names no expiry.
const AdminTokenLifetime = 90 * 24 * time.Hour

// APIToken is a user's API token as its owner sees it: never its value, which only its
// creator saw once, but a prefix that recognises it.
type APIToken struct {
	ID         string
	UserID     string
	Name       string
	Prefix     string
	CreatedAt  time.Time
	LastUsedAt *time.Time
	ExpiresAt  *time.Time
}

const apiTokenColumns = `id, user_id, name, prefix, created_at, last_used_at, expires_at`

func scanAPIToken(row pgx.Row) (APIToken, error) {
	var t APIToken
	err := row.Scan(&t.ID, &t.UserID, &t.Name, &t.Prefix, &t.CreatedAt, &t.LastUsedAt, &t.ExpiresAt)
	return t, err
}

// ListAPITokens lists the user's tokens, oldest first; expired ones included (they say so).
func (s *Store) ListAPITokens(ctx context.Context, userID string) ([]APIToken, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+apiTokenColumns+` FROM api_tokens WHERE user_id::text = $1 ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	tokens, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIToken, error) { return scanAPIToken(r) })
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", translate(err))
	}
	return tokens, nil
}

// CreateAPIToken stores a new token of the user by its hash.
func (s *Store) CreateAPIToken(ctx context.Context, userID, name, prefix string, hash []byte, expiresAt *time.Time) (APIToken, error) {
	t, err := scanAPIToken(s.pool.QueryRow(ctx, `
		INSERT INTO api_tokens (user_id, name, prefix, token_hash, expires_at) VALUES ($1, $2, $3, $4, $5)
		RETURNING `+apiTokenColumns, userID, name, prefix, hash, expiresAt))
	if err != nil {
		return APIToken{}, fmt.Errorf("create token: %w", translate(err))
	}
	return t, nil
}

// DeleteAPIToken revokes a token: of the user when userID is set (ErrNotFound when it is not
// theirs), any user's when it is empty (admins). Every later call with it answers 401, and an
// open log stream made with it ends at once (the delete notifies ChannelToken).
func (s *Store) DeleteAPIToken(ctx context.Context, userID, tokenID string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM api_tokens WHERE id::text = $1 AND ($2 = '' OR user_id::text = $2)`, tokenID, userID)
	if err != nil {
		return fmt.Errorf("delete token: %w", translate(err))
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// APITokenValid tells whether a token still authenticates (exists and has not expired), for a
// long-lived stream that checks again while it runs. It does not count as a use.
func (s *Store) APITokenValid(ctx context.Context, tokenID string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM api_tokens
		WHERE id::text = $1 AND (expires_at IS NULL OR expires_at > now()))`, tokenID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("check token: %w", err)
	}
	return ok, nil
}

// UserExists tells whether a user with this id exists.
func (s *Store) UserExists(ctx context.Context, userID string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id::text = $1)`, userID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("find user: %w", err)
	}
	return ok, nil
}

// CreateCodecSession stores a decode-only session of the user, signed in with the API token
// tokenID, by its hash. Expired sessions are removed on the way.
func (s *Store) CreateCodecSession(ctx context.Context, userID, tokenID string, hash []byte, expiresAt time.Time) error {
	_, err := s.pool.Exec(ctx, `WITH gone AS (DELETE FROM codec_sessions WHERE expires_at < now())
		INSERT INTO codec_sessions (session_hash, user_id, api_token_id, expires_at) VALUES ($1, $2, $3, $4)`,
		hash, userID, tokenID, expiresAt)
	if err != nil {
		return fmt.Errorf("create codec session: %w", translate(err))
	}
	return nil
}

// CodecSessionRole answers the role of the user of a live codec session (ErrNotFound when it
// does not exist, has expired, or its API token is gone or expired).
func (s *Store) CodecSessionRole(ctx context.Context, hash []byte) (string, error) {
	var role string
	err := s.pool.QueryRow(ctx, `SELECT u.role FROM codec_sessions c
		JOIN users u ON u.id = c.user_id
		JOIN api_tokens t ON t.id = c.api_token_id
		WHERE c.session_hash = $1 AND c.expires_at > now() AND (t.expires_at IS NULL OR t.expires_at > now())`, hash).Scan(&role)
	return role, translate(err)
}
