package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/skypanel/skypanel/secrets"
)

// EnvVar is one of an app's environment variables as stored: the value sealed (a secrets
// envelope bound to the app and the key), never plaintext.
type EnvVar struct {
	Key       string
	Sealed    string
	BuildTime bool
	UpdatedAt time.Time
}

// EnvChange sets (Sealed, BuildTime) or, with Unset, removes one variable.
type EnvChange struct {
	Key       string
	Sealed    string
	BuildTime bool
	Unset     bool
}

// EnvKeyNotFoundError: a variable to remove does not exist.
type EnvKeyNotFoundError struct{ Key string }

func (e *EnvKeyNotFoundError) Error() string { return "no environment variable " + e.Key }

// EnvChangeResult says what ChangeEnv did.
type EnvChangeResult struct {
	// Rollout: the app runs a release (or has operations that may leave it running), so the
	// change is rolled out: Enqueued is the rollout queued in the same transaction. Otherwise
	// the change applies at the next deploy or start.
	Rollout  bool
	Enqueued Enqueued
	// Created lists the keys that did not exist before.
	Created []string
	// previous holds each changed key's former row (nil: it did not exist), for UndoEnvChange.
	previous map[string]*EnvVar
	changes  []EnvChange
}

// ListEnv returns an app's variables sorted by key. Callers scope by organization first.
func (s *Store) ListEnv(ctx context.Context, appID string) ([]EnvVar, error) {
	rows, err := s.pool.Query(ctx, `SELECT key, value_sealed, build_time, updated_at FROM app_env WHERE app_id = $1 ORDER BY key`, appID)
	if err != nil {
		return nil, fmt.Errorf("list environment of %s: %w", appID, err)
	}
	return collect(rows, func(row pgx.Row) (EnvVar, error) {
		var v EnvVar
		err := row.Scan(&v.Key, &v.Sealed, &v.BuildTime, &v.UpdatedAt)
		return v, err
	})
}

// ChangeEnv applies changes to an app of orgID in one transaction, all or nothing. When the app
// runs a release, or has operations waiting or running, the change needs a rollout: rollout is
// queued in the app's turn in the same transaction (a *QueueFullError then changes nothing).
// Removing a variable that does not exist is an *EnvKeyNotFoundError.
func (s *Store) ChangeEnv(ctx context.Context, orgID, appID string, changes []EnvChange, rollout NewOperation) (EnvChangeResult, error) {
	res := EnvChangeResult{previous: map[string]*EnvVar{}, changes: changes}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var status string
		var currentRelease *string
		err := tx.QueryRow(ctx, `SELECT status, current_release_id::text
			FROM applications WHERE id::text = $1 AND org_id = $2 FOR UPDATE`, appID, orgID).Scan(&status, &currentRelease)
		if err != nil {
			return translate(err)
		}
		queued, running, deleting, err := queueState(ctx, tx, appID)
		if err != nil {
			return err
		}
		active := queued + running
		if status == AppDeleting || deleting {
			return &InvalidStateError{Reason: "the application is being deleted"}
		}
		for _, c := range changes {
			var prev EnvVar
			err := tx.QueryRow(ctx, `SELECT key, value_sealed, build_time, updated_at FROM app_env WHERE app_id = $1 AND key = $2`, appID, c.Key).
				Scan(&prev.Key, &prev.Sealed, &prev.BuildTime, &prev.UpdatedAt)
			switch {
			case err == pgx.ErrNoRows:
				res.previous[c.Key] = nil
			case err != nil:
				return err
			default:
				res.previous[c.Key] = &prev
			}
			if c.Unset {
				if res.previous[c.Key] == nil {
					return &EnvKeyNotFoundError{Key: c.Key}
				}
				if _, err := tx.Exec(ctx, `DELETE FROM app_env WHERE app_id = $1 AND key = $2`, appID, c.Key); err != nil {
					return err
				}
				continue
			}
			if res.previous[c.Key] == nil {
				res.Created = append(res.Created, c.Key)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO app_env (app_id, key, value_sealed, build_time) VALUES ($1, $2, $3, $4)
				ON CONFLICT (app_id, key) DO UPDATE SET value_sealed = EXCLUDED.value_sealed, build_time = EXCLUDED.build_time, updated_at = now()`,
				appID, c.Key, c.Sealed, c.BuildTime); err != nil {
				return err
			}
		}
		res.Rollout = (status == AppRunning && currentRelease != nil) || active > 0
		if !res.Rollout {
			return nil
		}
		res.Enqueued, err = enqueueOperation(ctx, tx, orgID, appID, rollout)
		return err
	})
	return res, translate(err)
}

// UndoEnvChange puts back what ChangeEnv changed, when the rollout's workflow could not be
// started (its operation is abandoned apart): the request then changed nothing.
func (s *Store) UndoEnvChange(ctx context.Context, appID string, res EnvChangeResult) error {
	return translate(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, c := range res.changes {
			prev, known := res.previous[c.Key]
			if !known {
				continue
			}
			var err error
			if prev == nil {
				_, err = tx.Exec(ctx, `DELETE FROM app_env WHERE app_id = $1 AND key = $2`, appID, c.Key)
			} else {
				_, err = tx.Exec(ctx, `INSERT INTO app_env (app_id, key, value_sealed, build_time, updated_at) VALUES ($1, $2, $3, $4, $5)
					ON CONFLICT (app_id, key) DO UPDATE SET value_sealed = EXCLUDED.value_sealed, build_time = EXCLUDED.build_time, updated_at = EXCLUDED.updated_at`,
					appID, prev.Key, prev.Sealed, prev.BuildTime, prev.UpdatedAt)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}))
}

// SealedValues lists every sealed environment value on the platform, for re-encryption under a
// new primary key.
func (s *Store) SealedValues(ctx context.Context) ([]AppEnvRef, error) {
	rows, err := s.pool.Query(ctx, `SELECT app_id::text, key, value_sealed FROM app_env ORDER BY app_id, key`)
	if err != nil {
		return nil, fmt.Errorf("list sealed values: %w", err)
	}
	return collect(rows, func(row pgx.Row) (AppEnvRef, error) {
		var r AppEnvRef
		err := row.Scan(&r.AppID, &r.Key, &r.Sealed)
		return r, err
	})
}

// AppEnvRef locates one sealed value.
type AppEnvRef struct {
	AppID, Key, Sealed string
}

// ReplaceSealedValue swaps a sealed value for its re-encryption, only if nobody changed it
// meanwhile (then it is left for the next pass). It reports whether it replaced it.
func (s *Store) ReplaceSealedValue(ctx context.Context, ref AppEnvRef, resealed string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE app_env SET value_sealed = $4 WHERE app_id::text = $1 AND key = $2 AND value_sealed = $3`,
		ref.AppID, ref.Key, ref.Sealed, resealed)
	if err != nil {
		return false, translate(err)
	}
	return tag.RowsAffected() == 1, nil
}

// CompleteConfigRelease records a config change rolled out by operationID as the app's newest
// release (the current release's image and commit, with description) and makes it current,
// atomically. Recording it twice is a no-op.
func (s *Store) CompleteConfigRelease(ctx context.Context, appID, operationID, userID, description, instance, url string) error {
	return translate(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var creator *string
		if userID != "" {
			creator = &userID
		}
		if _, err := tx.Exec(ctx, `INSERT INTO releases (app_id, version, operation_id, kind, deployment_id,
				commit_sha, commit_message, image, config, description, created_by)
			SELECT r.app_id, (SELECT max(version) FROM releases WHERE app_id = $1) + 1, $2, 'config', r.deployment_id,
				r.commit_sha, r.commit_message, r.image, r.config || jsonb_build_object('env_keys', `+envKeysJSON+`), $3, $4
			FROM applications a JOIN releases r ON r.id = a.current_release_id WHERE a.id = $1
			ON CONFLICT (operation_id) DO NOTHING`, appID, operationID, description, creator); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE applications a SET current_release_id = r.id, current_instance = $3, url = $4, status = 'running', running_plan_id = a.plan_id, updated_at = now()
			FROM releases r WHERE r.operation_id = $2 AND a.id = $1`, appID, operationID, instance, url)
		if err != nil {
			return err
		}
		return syncUsage(ctx, tx, appID)
	}))
}

// envKeysJSON is the app's variable names (never values) as a JSON array, for a release's
// config snapshot; $1 is the app id.
const envKeysJSON = `(SELECT COALESCE(jsonb_agg(key ORDER BY key), '[]'::jsonb) FROM app_env WHERE app_id = $1)`

// ReencryptResult counts a re-encryption pass.
type ReencryptResult struct {
	Stored  int // sealed values on the platform
	Moved   int // re-sealed under the primary key by this pass
	Skipped int // changed while the pass ran (sealed under the primary by that change, or left for the next pass)
}

// ReencryptSecrets re-seals every stored secret that is not under the keyring's primary key,
// one row at a time and only if the row still holds what was read. It stops at the first value
// it cannot open: the key that sealed it must stay in the keyring until that is resolved.
func (s *Store) ReencryptSecrets(ctx context.Context, ring *secrets.Keyring) (ReencryptResult, error) {
	values, err := s.SealedValues(ctx)
	if err != nil {
		return ReencryptResult{}, err
	}
	res := ReencryptResult{Stored: len(values)}
	stored, moved, err := s.reencryptNodeGatewayKeys(ctx, ring)
	res.Stored, res.Moved = res.Stored+stored, moved
	if err != nil {
		return res, err
	}
	stored, moved, err = s.reencryptNodeKeys(ctx, ring)
	res.Stored, res.Moved = res.Stored+stored, res.Moved+moved
	if err != nil {
		return res, err
	}
	stored, moved, err = s.reencryptCertificateKeys(ctx, ring)
	res.Stored, res.Moved = res.Stored+stored, res.Moved+moved
	if err != nil {
		return res, err
	}
	stored, moved, err = s.reencryptGitHubTokens(ctx, ring)
	res.Stored, res.Moved = res.Stored+stored, res.Moved+moved
	if err != nil {
		return res, err
	}
	for _, v := range values {
		if !ring.NeedsReencrypt(v.Sealed) {
			continue
		}
		resealed, err := ring.Reencrypt(v.Sealed, secrets.AppEnvValue(v.AppID, v.Key))
		if err != nil {
			return res, fmt.Errorf("re-encrypt %s of app %s: %s: %w", v.Key, v.AppID, secrets.Explain(err), err)
		}
		replaced, err := s.ReplaceSealedValue(ctx, v, resealed)
		if err != nil {
			return res, err
		}
		if replaced {
			res.Moved++
		} else {
			res.Skipped++
		}
	}
	return res, nil
}
