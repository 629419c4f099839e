package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/skypanel/skypanel/secrets"
)

// NodeGatewayKeys is the node gateway's one row of secrets: the CA that issues the nodes'
// client certificates (its certificate in PEM, its private key sealed) and the sealed key of
// the gateway's task tokens. Sealed values are secrets envelopes; only the keyring opens them.
type NodeGatewayKeys struct {
	CACertificate  string
	SealedCAKey    string
	SealedTokenKey string
	CreatedAt      time.Time
}

// NodeGatewayKeys reads the gateway's secrets; ErrNotFound before they were made.
func (s *Store) NodeGatewayKeys(ctx context.Context) (NodeGatewayKeys, error) {
	var k NodeGatewayKeys
	err := s.pool.QueryRow(ctx, `SELECT ca_certificate, sealed_ca_key, sealed_token_key, created_at FROM node_gateway_keys`).
		Scan(&k.CACertificate, &k.SealedCAKey, &k.SealedTokenKey, &k.CreatedAt)
	return k, translate(err)
}

// CreateNodeGatewayKeys stores the gateway's secrets unless some are stored already, and returns
// the ones stored: two API replicas starting at once both end up with the same CA.
func (s *Store) CreateNodeGatewayKeys(ctx context.Context, k NodeGatewayKeys) (NodeGatewayKeys, error) {
	if _, err := s.pool.Exec(ctx, `INSERT INTO node_gateway_keys (ca_certificate, sealed_ca_key, sealed_token_key)
		VALUES ($1, $2, $3) ON CONFLICT (singleton) DO NOTHING`, k.CACertificate, k.SealedCAKey, k.SealedTokenKey); err != nil {
		return NodeGatewayKeys{}, fmt.Errorf("store the node gateway's keys: %w", translate(err))
	}
	return s.NodeGatewayKeys(ctx)
}

// reencryptNodeGatewayKeys re-seals the gateway's keys under the keyring's primary key, when
// they exist and are not under it already; it counts the values it saw and moved.
func (s *Store) reencryptNodeGatewayKeys(ctx context.Context, ring *secrets.Keyring) (stored, moved int, err error) {
	k, err := s.NodeGatewayKeys(ctx)
	if errors.Is(err, ErrNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	if !ring.NeedsReencrypt(k.SealedCAKey) && !ring.NeedsReencrypt(k.SealedTokenKey) {
		return 2, 0, nil
	}
	caKey, err := ring.Reencrypt(k.SealedCAKey, secrets.NodeCAKey())
	if err != nil {
		return 2, 0, fmt.Errorf("re-encrypt the node gateway's CA key: %s: %w", secrets.Explain(err), err)
	}
	tokenKey, err := ring.Reencrypt(k.SealedTokenKey, secrets.NodeTaskTokenKey())
	if err != nil {
		return 2, 0, fmt.Errorf("re-encrypt the node gateway's task-token key: %s: %w", secrets.Explain(err), err)
	}
	// Only the row as it was read is replaced: the keys never change otherwise, so a miss means
	// another pass re-sealed them meanwhile.
	tag, err := s.pool.Exec(ctx, `UPDATE node_gateway_keys SET sealed_ca_key = $1, sealed_token_key = $2
		WHERE sealed_ca_key = $3 AND sealed_token_key = $4`, caKey, tokenKey, k.SealedCAKey, k.SealedTokenKey)
	if err != nil {
		return 2, 0, fmt.Errorf("store the re-sealed node gateway keys: %w", err)
	}
	return 2, 2 * int(tag.RowsAffected()), nil
}

// RecordNodeCertificate records the client certificate just issued to the node as its current
// one: the one it had is superseded from now (the gateway still accepts it for a short grace),
// and the node's expired ones are deleted. A revoked node gets none (InvalidStateError).
func (s *Store) RecordNodeCertificate(ctx context.Context, nodeID, serial string, notAfter time.Time) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var state string
		if err := tx.QueryRow(ctx, `SELECT admin_state FROM nodes WHERE id = $1 FOR UPDATE`, nodeID).Scan(&state); err != nil {
			return err
		}
		if state == NodeRevoked {
			return &InvalidStateError{Reason: "the node is revoked: it gets no certificate"}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM node_certificates WHERE node_id = $1 AND not_after < now()`, nodeID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE node_certificates SET superseded_at = now() WHERE node_id = $1 AND superseded_at IS NULL`, nodeID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO node_certificates (serial, node_id, not_after) VALUES ($1, $2, $3)`, serial, nodeID, notAfter)
		return err
	})
	if err != nil {
		return fmt.Errorf("record the certificate of node %s: %w", nodeID, translate(err))
	}
	return nil
}

// NodeStanding is what the node gateway needs to know of a caller: the node, whether an
// administrator revoked it, and the certificate it presented as the control plane recorded it.
type NodeStanding struct {
	Name    string
	Revoked bool
	// CertificateKnown: the serial is one issued to this node (and not yet deleted as expired).
	CertificateKnown bool
	// SupersededAt is when a newer certificate replaced this one; nil while it is current.
	SupersededAt *time.Time
}

// NodeStanding reads the node's standing with the certificate of serial. ErrNotFound for a
// node that does not exist (any more).
func (s *Store) NodeStanding(ctx context.Context, nodeID, serial string) (NodeStanding, error) {
	var st NodeStanding
	err := s.pool.QueryRow(ctx, `SELECT n.name, n.admin_state = 'revoked', c.serial IS NOT NULL, c.superseded_at
		FROM nodes n LEFT JOIN node_certificates c ON c.node_id = n.id AND c.serial = $2
		WHERE n.id = $1`, nodeID, serial).Scan(&st.Name, &st.Revoked, &st.CertificateKnown, &st.SupersededAt)
	return st, translate(err)
}

// RevokedNodesAmong lists which of the given nodes are revoked, or gone (no name, no time):
// the gateway asks every few seconds about the nodes it holds calls of, to cut those another
// API replica revoked.
func (s *Store) RevokedNodesAmong(ctx context.Context, nodeIDs []string) ([]RevokedNode, error) {
	if len(nodeIDs) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT u.id, COALESCE(n.name, ''), COALESCE(n.revoked_at, now())
		FROM unnest($1::text[]) AS u (id) LEFT JOIN nodes n ON n.id::text = u.id
		WHERE n.id IS NULL OR n.admin_state = 'revoked'`, nodeIDs)
	if err != nil {
		return nil, fmt.Errorf("revoked nodes: %w", err)
	}
	return collect(rows, scanRevokedNode)
}

// RevokedNode is a node an administrator revoked, and when.
type RevokedNode struct {
	ID, Name  string
	RevokedAt time.Time
}

// NodesRevokedSince lists the nodes revoked at or after since.
func (s *Store) NodesRevokedSince(ctx context.Context, since time.Time) ([]RevokedNode, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, name, revoked_at FROM nodes WHERE admin_state = 'revoked' AND revoked_at >= $1 ORDER BY revoked_at`, since)
	if err != nil {
		return nil, fmt.Errorf("nodes revoked since %s: %w", since.Format(time.RFC3339), err)
	}
	return collect(rows, scanRevokedNode)
}

func scanRevokedNode(row pgx.Row) (RevokedNode, error) {
	var n RevokedNode
	return n, row.Scan(&n.ID, &n.Name, &n.RevokedAt)
}

// RevokeNode revokes the node for good, whatever its admin state, recording the event with who
// did it: its node token stops working and the node gateway refuses it. changed is false for a
// node revoked already (nothing is recorded again).
func (s *Store) RevokeNode(ctx context.Context, nodeID, byUserID string) (node Node, changed bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var state string
		if err := tx.QueryRow(ctx, `SELECT admin_state FROM nodes WHERE id = $1 FOR UPDATE`, nodeID).Scan(&state); err != nil {
			return err
		}
		if state != NodeRevoked {
			changed = true
			// A registration token left unused must not bring the node back either.
			if _, err := tx.Exec(ctx, `UPDATE nodes SET admin_state = 'revoked', revoked_at = now(),
				registration_token_hash = NULL, registration_token_expires_at = NULL WHERE id = $1`, nodeID); err != nil {
				return err
			}
			var by string
			if err := tx.QueryRow(ctx, `SELECT COALESCE((SELECT email FROM users WHERE id::text = $1), $1)`, byUserID).Scan(&by); err != nil {
				return err
			}
			if err := recordNodeEvent(ctx, tx, nodeID, NodeEventRevoked, "by "+by+", was "+state); err != nil {
				return err
			}
		}
		var err error
		node, err = scanNode(tx.QueryRow(ctx, `SELECT `+nodeColumns+` FROM nodes n JOIN regions r ON r.id = n.region_id WHERE n.id = $1`, nodeID))
		return err
	})
	if err != nil {
		return Node{}, false, fmt.Errorf("revoke node %s: %w", nodeID, translate(err))
	}
	return node, changed, nil
}
