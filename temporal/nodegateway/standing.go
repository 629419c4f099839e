package nodegateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/skypanel/skypanel/db"
)

// Standings is what the gateway asks the control plane's store about its callers (db.Store).
type Standings interface {
	NodeStanding(ctx context.Context, nodeID, serial string) (db.NodeStanding, error)
	RevokedNodesAmong(ctx context.Context, nodeIDs []string) ([]db.RevokedNode, error)
	NodesRevokedSince(ctx context.Context, since time.Time) ([]db.RevokedNode, error)
}

// verdict is the store's word on a caller: refusal is "" when it may call.
type verdict struct {
	refusal string
	revoked bool
	name    string
}

// standingCache checks each call's node and certificate against the store, remembering the
// answer for ttl: a node polling and heartbeating costs the database one query every few
// seconds, and a revoke made by another API replica is honoured within ttl.
type standingCache struct {
	store Standings
	ttl   time.Duration
	// grace is how long a certificate a renewal replaced is still accepted: connections the node
	// opened with it are closed by the agent right after the renewal.
	grace time.Duration
	now   func() time.Time

	mu      sync.Mutex
	entries map[standingKey]cachedVerdict
}

type standingKey struct{ nodeID, serial string }

type cachedVerdict struct {
	verdict
	until time.Time
}

// maxCachedStandings bounds the cache: past it, expired entries are swept at the next insert.
const maxCachedStandings = 4096

func (c *standingCache) check(ctx context.Context, nodeID, serial string) (verdict, error) {
	key := standingKey{nodeID, serial}
	now := c.now()
	c.mu.Lock()
	cached, ok := c.entries[key]
	c.mu.Unlock()
	if ok && now.Before(cached.until) {
		return cached.verdict, nil
	}
	st, err := c.store.NodeStanding(ctx, nodeID, serial)
	var v verdict
	switch {
	case errors.Is(err, db.ErrNotFound):
		v = verdict{refusal: "the node does not exist (any more)"}
	case err != nil:
		return verdict{}, fmt.Errorf("check the standing of node %s: %w", nodeID, err)
	case st.Revoked:
		v = verdict{refusal: "the node is revoked", revoked: true, name: st.Name}
	case !st.CertificateKnown:
		v = verdict{refusal: "the certificate was not issued to this node, or has expired", name: st.Name}
	case st.SupersededAt != nil && now.Sub(*st.SupersededAt) > c.grace:
		v = verdict{refusal: "the certificate was superseded by a newer one", name: st.Name}
	default:
		v = verdict{name: st.Name}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCachedStandings {
		for k, e := range c.entries {
			if !now.Before(e.until) {
				delete(c.entries, k)
			}
		}
	}
	c.entries[key] = cachedVerdict{verdict: v, until: now.Add(c.ttl)}
	return v, nil
}
