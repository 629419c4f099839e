package apiserver

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/db"
)

type contextKey int

const (
	principalKey contextKey = iota
	nodeKey
)

func bearerToken(ctx huma.Context) string {
	h := ctx.Header("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// authenticate resolves the caller's token; admins pass requireAdmin too.
func (s *Server) authenticate(requireAdmin bool) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		token := bearerToken(ctx)
		if token == "" {
			huma.WriteErr(s.api, ctx, http.StatusUnauthorized, "missing bearer token: send 'Authorization: Bearer <token>'") //nolint:errcheck
			return
		}
		p, err := s.store.PrincipalByTokenHash(ctx.Context(), HashToken(token))
		if errors.Is(err, db.ErrNotFound) {
			huma.WriteErr(s.api, ctx, http.StatusUnauthorized, "invalid or revoked token") //nolint:errcheck
			return
		}
		if err != nil {
			s.log.Error("authenticate", "error", err)
			huma.WriteErr(s.api, ctx, http.StatusInternalServerError, "internal error") //nolint:errcheck
			return
		}
		if ok, wait := s.limits.allow(p.TokenID, time.Now()); !ok {
			s.rateLimited(ctx, wait)
			return
		}
		if requireAdmin && p.Role != db.RoleAdmin {
			huma.WriteErr(s.api, ctx, http.StatusForbidden, "this endpoint is for administrators") //nolint:errcheck
			return
		}
		next(huma.WithValue(ctx, principalKey, p))
	}
}

// authenticateNode resolves an agent's node token; a revoked node's token is refused.
func (s *Server) authenticateNode(ctx huma.Context, next func(huma.Context)) {
	token := bearerToken(ctx)
	if token == "" {
		huma.WriteErr(s.api, ctx, http.StatusUnauthorized, "missing node token") //nolint:errcheck
		return
	}
	nodeID, err := s.store.NodeIDByTokenHash(ctx.Context(), HashToken(token))
	if errors.Is(err, db.ErrNotFound) {
		huma.WriteErr(s.api, ctx, http.StatusUnauthorized, "invalid node token") //nolint:errcheck
		return
	}
	if errors.Is(err, db.ErrNodeRevoked) {
		huma.WriteErr(s.api, ctx, http.StatusUnauthorized, "this node is revoked: an administrator cut it off the platform") //nolint:errcheck
		return
	}
	if err != nil {
		s.log.Error("authenticate node", "error", err)
		huma.WriteErr(s.api, ctx, http.StatusInternalServerError, "internal error") //nolint:errcheck
		return
	}
	next(huma.WithValue(ctx, nodeKey, nodeID))
}
