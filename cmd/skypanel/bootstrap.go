package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/skypanel/skypanel/apiserver"
	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
)

// ensureAdminToken makes sure path holds a working admin token: the first start creates the
// admin; a later start keeps a valid file, and replaces a missing or stale one.
func ensureAdminToken(ctx context.Context, st *db.Store, path string) error {
	if raw, err := os.ReadFile(path); err == nil {
		p, err := st.PrincipalByTokenHash(ctx, apiserver.HashToken(strings.TrimSpace(string(raw))))
		if err == nil && p.Role == db.RoleAdmin {
			return nil
		}
		if err != nil && !errors.Is(err, db.ErrNotFound) {
			return fmt.Errorf("check admin token: %w", err)
		}
	}
	token, hash, err := apiserver.NewUserToken()
	if err != nil {
		return err
	}
	if _, err := st.EnsureAdmin(ctx, "admin@localhost", hash, true); err != nil {
		return fmt.Errorf("bootstrap admin: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if err := secrets.WriteFileAtomic(path, []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("write admin token: %w", err)
	}
	return nil
}
