package apiserver

// The caller's API tokens: list, create (shown once), revoke. Admins also list and revoke any
// user's. A token's value is never stored, only its SHA-256 and a prefix that recognises it.

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/db"
)

// Token lifetimes a creator may ask for.
const (
	maxAdminTokenLifetime    = 365 * 24 * time.Hour
	maxCustomerTokenLifetime = 5 * 365 * 24 * time.Hour
	// tokenPrefixLength is how much of a token's value is kept to recognise it: the kind
	// ("sp_") and 7 of its 43 random characters.
	tokenPrefixLength = 10
)

// APIToken is an API token as its owner sees it.
type APIToken struct {
	ID         string     `json:"id" format:"uuid"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix" doc:"The token's first characters, to recognise it; empty for tokens made before prefixes were kept"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	ExpiresAt  *time.Time `json:"expires_at" doc:"When the token stops working; null: never (customers only)"`
	Expired    bool       `json:"expired"`
	Current    bool       `json:"current" doc:"This is the token the request was made with"`
}

func apiTokenView(t db.APIToken, currentID string, now time.Time) APIToken {
	return APIToken{ID: t.ID, Name: t.Name, Prefix: t.Prefix, CreatedAt: t.CreatedAt, LastUsedAt: t.LastUsedAt,
		ExpiresAt: t.ExpiresAt, Expired: t.ExpiresAt != nil && !t.ExpiresAt.After(now), Current: t.ID == currentID}
}

type createTokenInput struct {
	Body struct {
		Name      string     `json:"name" minLength:"1" maxLength:"64" doc:"What the token is for, e.g. \"ci\""`
		ExpiresAt *time.Time `json:"expires_at,omitempty" doc:"When it stops working (RFC 3339). Customers may omit it (no expiry, at most 5 years); an admin's token expires in 90 days by default and at most a year."`
	}
}

type createTokenOutput struct {
	Body struct {
		Token  APIToken `json:"token"`
		Secret string   `json:"secret" doc:"The token itself. Shown once: only its hash is stored."`
	}
}

type tokenPath struct {
	ID string `path:"id" format:"uuid" doc:"The token's id"`
}

type userTokensPath struct {
	ID string `path:"id" format:"uuid" doc:"The user's id"`
}

func (s *Server) registerAPITokens() {
	huma.Register(s.api, s.op("list-tokens", http.MethodGet, "/api/paas/tokens", "List your API tokens", "tokens", 0, false),
		func(ctx context.Context, _ *struct{}) (*items[APIToken], error) {
			p := principal(ctx)
			return s.listTokens(ctx, p.UserID, p.TokenID)
		})
	huma.Register(s.api, s.op("create-token", http.MethodPost, "/api/paas/tokens", "Create an API token (its value is shown once)", "tokens", http.StatusCreated, false),
		func(ctx context.Context, in *createTokenInput) (*createTokenOutput, error) {
			p := principal(ctx)
			name := strings.TrimSpace(in.Body.Name)
			if name == "" {
				return nil, fieldError("body.name", "name must not be blank", in.Body.Name)
			}
			now := time.Now()
			expires := in.Body.ExpiresAt
			maxLife := maxCustomerTokenLifetime
			if p.Role == db.RoleAdmin {
				maxLife = maxAdminTokenLifetime
				if expires == nil {
					at := now.Add(db.AdminTokenLifetime)
					expires = &at
				}
			}
			if expires != nil && !expires.After(now) {
				return nil, fieldError("body.expires_at", "expires_at must be in the future", expires.Format(time.RFC3339))
			}
			if expires != nil && expires.Sub(now) > maxLife {
				return nil, fieldError("body.expires_at", "expires_at is too far ahead: at most "+lifetimeText(maxLife)+" for this account", expires.Format(time.RFC3339))
			}
			plain, hash, err := NewUserToken()
			if err != nil {
				return nil, s.problem(ctx, "token", err)
			}
			t, err := s.store.CreateAPIToken(ctx, p.UserID, name, plain[:tokenPrefixLength], hash, expires)
			if err != nil {
				return nil, s.problem(ctx, "token", err)
			}
			s.log.InfoContext(ctx, "token created", "user_id", p.UserID, "token_id", t.ID)
			out := &createTokenOutput{}
			out.Body.Token, out.Body.Secret = apiTokenView(t, p.TokenID, now), plain
			return out, nil
		})
	huma.Register(s.api, s.op("revoke-token", http.MethodDelete, "/api/paas/tokens/{id}", "Revoke one of your API tokens, at once", "tokens", http.StatusNoContent, false),
		func(ctx context.Context, in *tokenPath) (*struct{}, error) {
			p := principal(ctx)
			return nil, s.revokeToken(ctx, p.UserID, in.ID)
		})
	huma.Register(s.api, s.op("admin-list-user-tokens", http.MethodGet, "/api/paas/admin/users/{id}/tokens", "List a user's API tokens", "admin", 0, true),
		func(ctx context.Context, in *userTokensPath) (*items[APIToken], error) {
			exists, err := s.store.UserExists(ctx, in.ID)
			if err != nil {
				return nil, s.problem(ctx, "user", err)
			}
			if !exists {
				return nil, huma.Error404NotFound("user not found")
			}
			return s.listTokens(ctx, in.ID, principal(ctx).TokenID)
		})
	huma.Register(s.api, s.op("admin-revoke-token", http.MethodDelete, "/api/paas/admin/tokens/{id}", "Revoke any user's API token, at once", "admin", http.StatusNoContent, true),
		func(ctx context.Context, in *tokenPath) (*struct{}, error) {
			return nil, s.revokeToken(ctx, "", in.ID)
		})
}

func (s *Server) listTokens(ctx context.Context, userID, currentID string) (*items[APIToken], error) {
	tokens, err := s.store.ListAPITokens(ctx, userID)
	if err != nil {
		return nil, s.problem(ctx, "token", err)
	}
	now := time.Now()
	views := make([]APIToken, 0, len(tokens))
	for _, t := range tokens {
		views = append(views, apiTokenView(t, currentID, now))
	}
	return listOf(views), nil
}

// revokeToken deletes a token: the user's own (userID set) or any (admins, userID empty).
func (s *Server) revokeToken(ctx context.Context, userID, tokenID string) error {
	err := s.store.DeleteAPIToken(ctx, userID, tokenID)
	if errors.Is(err, db.ErrNotFound) {
		return huma.Error404NotFound("token not found")
	}
	if err != nil {
		return s.problem(ctx, "token", err)
	}
	s.log.InfoContext(ctx, "token revoked", "by_user_id", principal(ctx).UserID, "token_id", tokenID)
	return nil
}

func lifetimeText(d time.Duration) string {
	days := int(d / (24 * time.Hour))
	if days%365 == 0 {
		if days == 365 {
			return "a year"
		}
		return strconv.Itoa(days/365) + " years"
	}
	return strconv.Itoa(days) + " days"
}
