package db

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/skypanel/skypanel/secrets"
)

// NodeKey is one of a node's own keys as stored: its keyring entry ("id:base64"), sealed under
// the platform keyring.
type NodeKey struct {
	ID     string
	Sealed string
}

// NodeKeys lists the node's keys, newest first.
func (s *Store) NodeKeys(ctx context.Context, nodeID string) ([]NodeKey, error) {
	keys, err := nodeKeys(ctx, s.pool, nodeID)
	if err != nil {
		return nil, fmt.Errorf("keys of node %s: %w", nodeID, err)
	}
	return keys, nil
}

// nodeKeys reads the node's keys, newest first, through q (the pool or a transaction).
func nodeKeys(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, nodeID string) ([]NodeKey, error) {
	rows, err := q.Query(ctx, `SELECT key_id, sealed FROM node_keys WHERE node_id::text = $1 ORDER BY created_at DESC, key_id DESC`, nodeID)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row pgx.Row) (NodeKey, error) {
		var k NodeKey
		err := row.Scan(&k.ID, &k.Sealed)
		return k, err
	})
}

// EnsureNodeKeys returns the node's keys, newest first, after adding one made by newKey when
// the node has none or rotate is set (and dropping all but the keep newest). Under the node's
// row lock: two first calls at once make one key, not two.
func (s *Store) EnsureNodeKeys(ctx context.Context, nodeID string, rotate bool, keep int, newKey func() (NodeKey, error)) ([]NodeKey, error) {
	var keys []NodeKey
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM nodes WHERE id::text = $1 FOR UPDATE`, nodeID); err != nil {
			return err
		}
		var err error
		if keys, err = nodeKeys(ctx, tx, nodeID); err != nil || (len(keys) > 0 && !rotate) {
			return err
		}
		key, err := newKey()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO node_keys (node_id, key_id, sealed) VALUES ($1::text::uuid, $2, $3)`, nodeID, key.ID, key.Sealed); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM node_keys WHERE node_id::text = $1 AND key_id NOT IN (
			SELECT key_id FROM node_keys WHERE node_id::text = $1 ORDER BY created_at DESC, key_id DESC LIMIT $2)`, nodeID, keep); err != nil {
			return err
		}
		keys, err = nodeKeys(ctx, tx, nodeID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("keys of node %s: %w", nodeID, translate(err))
	}
	return keys, nil
}

// AppPlacedFor reports whether the app is placed on the node, or is being moved to it: the
// apps whose secrets the node may open.
func (s *Store) AppPlacedFor(ctx context.Context, appID, nodeID string) (bool, error) {
	var placed bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM applications
		WHERE id::text = $1 AND (node_id::text = $2 OR moving_to::text = $2))`, appID, nodeID).Scan(&placed)
	if err != nil {
		return false, fmt.Errorf("placement of app %s: %w", appID, err)
	}
	return placed, nil
}

// reencryptNodeKeys moves every node's keys onto the keyring's primary key (secrets
// reencrypt): stored, and how many moved.
func (s *Store) reencryptNodeKeys(ctx context.Context, ring *secrets.Keyring) (stored, moved int, err error) {
	rows, err := s.pool.Query(ctx, `SELECT node_id::text, key_id, sealed FROM node_keys`)
	if err != nil {
		return 0, 0, fmt.Errorf("read node keys: %w", err)
	}
	type storedKey struct{ nodeID, keyID, sealed string }
	all, err := collect(rows, func(row pgx.Row) (storedKey, error) {
		var k storedKey
		err := row.Scan(&k.nodeID, &k.keyID, &k.sealed)
		return k, err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("read node keys: %w", err)
	}
	for _, k := range all {
		if !ring.NeedsReencrypt(k.sealed) {
			continue
		}
		resealed, err := ring.Reencrypt(k.sealed, secrets.NodeKeyEntry(k.nodeID, k.keyID))
		if err != nil {
			return len(all), moved, fmt.Errorf("re-encrypt key %s of node %s: %s: %w", k.keyID, k.nodeID, secrets.Explain(err), err)
		}
		// Only the value as read is replaced: a key changed meanwhile was re-sealed by its writer.
		tag, err := s.pool.Exec(ctx, `UPDATE node_keys SET sealed = $4 WHERE node_id::text = $1 AND key_id = $2 AND sealed = $3`,
			k.nodeID, k.keyID, k.sealed, resealed)
		if err != nil {
			return len(all), moved, fmt.Errorf("store the re-sealed key %s of node %s: %w", k.keyID, k.nodeID, err)
		}
		moved += int(tag.RowsAffected())
	}
	return len(all), moved, nil
}
