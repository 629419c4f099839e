package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Roles.
const (
	RoleAdmin    = "admin"
	RoleCustomer = "customer"
)

// User is a person who calls the API.
type User struct {
	ID        string
	Email     string
	Name      string
	Role      string
	OrgID     string
	CreatedAt time.Time
}

// Principal is who a bearer token belongs to.
type Principal struct {
	UserID  string
	Role    string
	OrgID   string
	TokenID string // the token the caller authenticated with
	// TokenExpiresAt is when that token stops working; nil: never.
	TokenExpiresAt *time.Time
}

// PrincipalByTokenHash resolves an API token to its user and organization.
func (s *Store) PrincipalByTokenHash(ctx context.Context, hash []byte) (Principal, error) {
	var p Principal
	err := s.pool.QueryRow(ctx, `
		UPDATE api_tokens t SET last_used_at = now()
		FROM users u
		JOIN memberships m ON m.user_id = u.id
		WHERE t.token_hash = $1 AND u.id = t.user_id AND (t.expires_at IS NULL OR t.expires_at > now())
		RETURNING u.id, u.role, m.org_id, t.id, t.expires_at`, hash).Scan(&p.UserID, &p.Role, &p.OrgID, &p.TokenID, &p.TokenExpiresAt)
	return p, translate(err)
}

// CreateUser creates a user with its own organization and first API token, atomically.
func (s *Store) CreateUser(ctx context.Context, email, name, role string, tokenHash []byte) (User, error) {
	var u User
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO organizations (name) VALUES ($1) RETURNING id`, name).Scan(&u.OrgID); err != nil {
			return err
		}
		if err := ensureWallet(ctx, tx, u.OrgID, s.Currency); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `INSERT INTO users (email, name, role) VALUES ($1, $2, $3)
			RETURNING id, email, name, role, created_at`, email, name, role).
			Scan(&u.ID, &u.Email, &u.Name, &u.Role, &u.CreatedAt); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO memberships (user_id, org_id) VALUES ($1, $2)`, u.ID, u.OrgID); err != nil {
			return err
		}
		// An admin's first token expires like every admin token; a customer's does not.
		var expires *time.Time
		if role == RoleAdmin {
			at := time.Now().Add(AdminTokenLifetime)
			expires = &at
		}
		_, err := tx.Exec(ctx, `INSERT INTO api_tokens (user_id, token_hash, name, expires_at) VALUES ($1, $2, 'initial', $3)`, u.ID, tokenHash, expires)
		return err
	})
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", translate(err))
	}
	return u, nil
}

// EnsureAdmin makes sure an admin exists. When none does it creates one with tokenHash as its
// token; when one does and replaceToken is set, tokenHash becomes an additional token of that
// admin (its old tokens keep working). It reports whether tokenHash is now valid.
func (s *Store) EnsureAdmin(ctx context.Context, email string, tokenHash []byte, replaceToken bool) (bool, error) {
	var adminID string
	err := s.pool.QueryRow(ctx, `SELECT id FROM users WHERE role = 'admin' ORDER BY created_at LIMIT 1`).Scan(&adminID)
	if err == pgx.ErrNoRows {
		_, err := s.CreateUser(ctx, email, "Administrator", RoleAdmin, tokenHash)
		return err == nil, err
	}
	if err != nil {
		return false, fmt.Errorf("find admin: %w", err)
	}
	if !replaceToken {
		return false, nil
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO api_tokens (user_id, token_hash, name, expires_at) VALUES ($1, $2, 'bootstrap', $3)`,
		adminID, tokenHash, time.Now().Add(AdminTokenLifetime))
	if err != nil {
		return false, fmt.Errorf("add admin token: %w", translate(err))
	}
	return true, nil
}

// UserEmail returns a user's e-mail address.
func (s *Store) UserEmail(ctx context.Context, userID string) (string, error) {
	var email string
	err := s.pool.QueryRow(ctx, `SELECT email FROM users WHERE id::text = $1`, userID).Scan(&email)
	return email, translate(err)
}
