package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// NodeOfflineAfter is how long a node may stay silent before it counts as offline: three missed
// heartbeats at the agent's default 10 s interval.
const NodeOfflineAfter = 30 * time.Second

// Node is a worker machine running the agent.
type Node struct {
	ID              string
	Name            string
	Region          string
	Host            string
	Status          string // pending, online, offline
	RegisteredAt    *time.Time
	LastHeartbeatAt *time.Time
	// LastReportAt is when the node last reported what runs on it (convergence).
	LastReportAt *time.Time
	CPUs         int
	MemoryMB     int64
	Containers   int
	AgentVersion string
	CreatedAt    time.Time
}

const nodeColumns = `n.id, n.name, r.slug, n.host, n.registered_at, n.last_heartbeat_at,
	(SELECT nr.received_at FROM node_reports nr WHERE nr.node_id = n.id), n.cpus, n.memory_mb, n.containers, n.agent_version, n.created_at`

func scanNode(row pgx.Row) (Node, error) {
	var n Node
	err := row.Scan(&n.ID, &n.Name, &n.Region, &n.Host, &n.RegisteredAt, &n.LastHeartbeatAt, &n.LastReportAt, &n.CPUs, &n.MemoryMB, &n.Containers, &n.AgentVersion, &n.CreatedAt)
	if err != nil {
		return n, translate(err)
	}
	n.Status = nodeStatus(n, time.Now())
	return n, nil
}

func nodeStatus(n Node, now time.Time) string {
	switch {
	case n.RegisteredAt == nil:
		return "pending"
	case n.LastHeartbeatAt != nil && now.Sub(*n.LastHeartbeatAt) <= NodeOfflineAfter:
		return "online"
	default:
		return "offline"
	}
}

// ListNodes lists every node with its derived status.
func (s *Store) ListNodes(ctx context.Context) ([]Node, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+nodeColumns+` FROM nodes n JOIN regions r ON r.id = n.region_id ORDER BY n.name`)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return collect(rows, scanNode)
}

// CreateNode records a node that will register with registrationTokenHash.
func (s *Store) CreateNode(ctx context.Context, name, regionID, host string, registrationTokenHash []byte) (Node, error) {
	return scanNode(s.pool.QueryRow(ctx, `WITH n AS (
			INSERT INTO nodes (name, region_id, host, registration_token_hash) VALUES ($1, $2, $3, $4) RETURNING *)
		SELECT `+nodeColumns+` FROM n JOIN regions r ON r.id = n.region_id`, name, regionID, host, registrationTokenHash))
}

// NodeByName finds a node by name.
func (s *Store) NodeByName(ctx context.Context, name string) (Node, error) {
	return scanNode(s.pool.QueryRow(ctx, `SELECT `+nodeColumns+` FROM nodes n JOIN regions r ON r.id = n.region_id WHERE n.name = $1`, name))
}

// SetRegistrationToken gives an existing node a new one-time registration token (for an agent
// that lost its credentials, and for `skypanel dev`'s local node).
func (s *Store) SetRegistrationToken(ctx context.Context, nodeID string, hash []byte) error {
	tag, err := s.pool.Exec(ctx, `UPDATE nodes SET registration_token_hash = $2 WHERE id = $1`, nodeID, hash)
	if err != nil {
		return translate(err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// NodeRegistration is what an agent reports when it registers.
type NodeRegistration struct {
	Host     string
	CPUs     int
	MemoryMB int64
}

// RegisterNode consumes a one-time registration token and sets the node's credential.
func (s *Store) RegisterNode(ctx context.Context, registrationTokenHash, nodeTokenHash []byte, reg NodeRegistration) (Node, error) {
	return scanNode(s.pool.QueryRow(ctx, `WITH n AS (
			UPDATE nodes SET registration_token_hash = NULL, node_token_hash = $2, registered_at = now(),
				last_heartbeat_at = now(), host = CASE WHEN host = '' THEN $3 ELSE host END, cpus = $4, memory_mb = $5
			WHERE registration_token_hash = $1 RETURNING *)
		SELECT `+nodeColumns+` FROM n JOIN regions r ON r.id = n.region_id`,
		registrationTokenHash, nodeTokenHash, reg.Host, reg.CPUs, reg.MemoryMB))
}

// NodeIDByTokenHash authenticates an agent.
func (s *Store) NodeIDByTokenHash(ctx context.Context, hash []byte) (string, error) {
	var id string
	err := s.pool.QueryRow(ctx, `SELECT id FROM nodes WHERE node_token_hash = $1`, hash).Scan(&id)
	return id, translate(err)
}

// NodeHeartbeat is the agent's periodic report.
type NodeHeartbeat struct {
	CPUs         int
	MemoryMB     int64
	Containers   int
	AgentVersion string
}

// RecordHeartbeat stores a heartbeat.
func (s *Store) RecordHeartbeat(ctx context.Context, nodeID string, hb NodeHeartbeat) error {
	_, err := s.pool.Exec(ctx, `UPDATE nodes SET last_heartbeat_at = now(), cpus = $2, memory_mb = $3, containers = $4, agent_version = $5
		WHERE id = $1`, nodeID, hb.CPUs, hb.MemoryMB, hb.Containers, hb.AgentVersion)
	return translate(err)
}
