// Package nodekeys holds each node's own keys: what a node must read reaches it sealed under
// its key, never the platform's. The keys are stored sealed under the platform keyring (bound
// to their node and id) in Postgres. The API serves a node its keys and re-seals app values
// for it; the node gateway re-seals Temporal payloads with them.
package nodekeys

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
)

// Kept is how many of a node's keys stay: the newest seals, the one before it still opens what
// was sealed just before a rotation.
const Kept = 2

// cacheFor is how long a node's keyring is reused before it is read again: rotations made by
// another process are seen within it.
const cacheFor = 5 * time.Second

// Store is where the keys live (db.Store).
type Store interface {
	EnsureNodeKeys(ctx context.Context, nodeID string, rotate bool, keep int, newKey func() (db.NodeKey, error)) ([]db.NodeKey, error)
}

// Keys opens nodes' keyrings, making a node's first key when it has none.
type Keys struct {
	store    Store
	platform *secrets.Keyring

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	ring *secrets.Keyring
	at   time.Time
}

// New opens node keys stored in store under the platform keyring.
func New(store Store, platform *secrets.Keyring) *Keys {
	return &Keys{store: store, platform: platform, cache: map[string]cached{}}
}

// Keyring is the node's keyring, newest key first (its first key made now if it has none).
func (k *Keys) Keyring(ctx context.Context, nodeID string) (*secrets.Keyring, error) {
	k.mu.Lock()
	c, ok := k.cache[nodeID]
	k.mu.Unlock()
	if ok && time.Since(c.at) < cacheFor {
		return c.ring, nil
	}
	return k.load(ctx, nodeID, false)
}

// Rotate gives the node a new key, the one values are sealed with from now on.
func (k *Keys) Rotate(ctx context.Context, nodeID string) (*secrets.Keyring, error) {
	return k.load(ctx, nodeID, true)
}

// Forget drops the node's cached keyring (a revoked or deleted node).
func (k *Keys) Forget(nodeID string) {
	k.mu.Lock()
	delete(k.cache, nodeID)
	k.mu.Unlock()
}

func (k *Keys) load(ctx context.Context, nodeID string, rotate bool) (*secrets.Keyring, error) {
	if k.platform == nil {
		return nil, errors.New("node keys: no platform keyring to seal them with")
	}
	keys, err := k.store.EnsureNodeKeys(ctx, nodeID, rotate, Kept, func() (db.NodeKey, error) {
		id, err := newKeyID()
		if err != nil {
			return db.NodeKey{}, err
		}
		entry, err := secrets.NewKeyEntry(id)
		if err != nil {
			return db.NodeKey{}, err
		}
		sealed, err := k.platform.Encrypt([]byte(entry), secrets.NodeKeyEntry(nodeID, id))
		return db.NodeKey{ID: id, Sealed: sealed}, err
	})
	if err != nil {
		return nil, err
	}
	entries := make([]string, len(keys))
	for i, key := range keys {
		entry, err := k.platform.Decrypt(key.Sealed, secrets.NodeKeyEntry(nodeID, key.ID))
		if err != nil {
			return nil, fmt.Errorf("open key %s of node %s: %s", key.ID, nodeID, secrets.Explain(err))
		}
		entries[i] = string(entry)
	}
	ring, err := secrets.ParseKeyring(strings.Join(entries, ","))
	if err != nil {
		return nil, fmt.Errorf("keys of node %s: %w", nodeID, err)
	}
	k.mu.Lock()
	k.cache[nodeID] = cached{ring: ring, at: time.Now()}
	k.mu.Unlock()
	return ring, nil
}

// newKeyID names a node key "n" + 12 random hex digits: never a platform key's id, so an
// envelope's key id says whose key sealed it.
func newKeyID() (string, error) {
	var raw [6]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("node key id: %w", err)
	}
	return "n" + hex.EncodeToString(raw[:]), nil
}
