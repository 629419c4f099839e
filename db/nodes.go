package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Liveness: a node is offline once it missed MissedHeartbeats of its own heartbeat interval
// (DefaultHeartbeatInterval when it never reported one), and online again at its next one.
const (
	DefaultHeartbeatInterval = 10 * time.Second
	MissedHeartbeats         = 3
)

// NodeOfflineAfter is the silence that makes a node offline when it never reported its
// interval.
//
// Deprecated: each node's own window applies (nodeOnlineSQL); kept for code that predates it.
const NodeOfflineAfter = MissedHeartbeats * DefaultHeartbeatInterval

// nodeOnlineSQL is the liveness rule over a nodes row aliased n, the one definition placement,
// the offline sweep and the status shown all use.
var nodeOnlineSQL = fmt.Sprintf(`(n.registered_at IS NOT NULL AND n.last_heartbeat_at > now() - make_interval(secs => %d * COALESCE(n.heartbeat_interval_seconds, %d)))`,
	MissedHeartbeats, int(DefaultHeartbeatInterval/time.Second))

// Node admin states: what administrators decided about a node, apart from its liveness.
const (
	NodeActive   = "active"
	NodeCordoned = "cordoned"
	NodeDraining = "draining"
	NodeDrained  = "drained"
	NodeRevoked  = "revoked"
)

// Node is a worker machine running the agent.
type Node struct {
	ID     string
	Name   string
	Region string
	Host   string
	// Status is the liveness: pending (never registered), online, offline, judged now by the
	// node's own interval, so it does not wait for the control worker's sweep.
	Status          string
	AdminState      string
	RegisteredAt    *time.Time
	LastHeartbeatAt *time.Time
	// HeartbeatIntervalSeconds is the agent's reported interval, or the default when it never
	// reported one: the unit of the offline rule.
	HeartbeatIntervalSeconds int
	// LastReportAt is when the node last reported what runs on it (convergence).
	LastReportAt *time.Time
	CPUs         int
	MemoryMB     int64
	Containers   int
	// Usage is the latest heartbeat's figures.
	Usage        NodeUsage
	AgentVersion string
	CreatedAt    time.Time
}

// NodeUsage is the machine's load as a heartbeat reports it; nil where the agent could not read
// a figure (CPU at its first heartbeat, a missing /proc file, an unreadable disk).
type NodeUsage struct {
	CPUPercent    *float64
	MemoryUsedMB  *int64
	MemoryTotalMB *int64
	DiskUsedMB    *int64
	DiskTotalMB   *int64
	Load1         *float64
	Load5         *float64
	Load15        *float64
}

var nodeColumns = `n.id, n.name, r.slug, n.host,
	CASE WHEN n.liveness = 'pending' THEN 'pending' WHEN ` + nodeOnlineSQL + ` THEN 'online' ELSE 'offline' END,
	n.admin_state, n.registered_at, n.last_heartbeat_at, COALESCE(n.heartbeat_interval_seconds, ` + fmt.Sprint(int(DefaultHeartbeatInterval/time.Second)) + `),
	(SELECT nr.received_at FROM node_reports nr WHERE nr.node_id = n.id), n.cpus, n.memory_mb, n.containers,
	n.cpu_percent, n.memory_used_mb, n.memory_total_mb, n.disk_used_mb, n.disk_total_mb, n.load1, n.load5, n.load15,
	n.agent_version, n.created_at`

func scanNode(row pgx.Row) (Node, error) {
	var n Node
	u := &n.Usage
	err := row.Scan(&n.ID, &n.Name, &n.Region, &n.Host, &n.Status, &n.AdminState, &n.RegisteredAt, &n.LastHeartbeatAt,
		&n.HeartbeatIntervalSeconds, &n.LastReportAt, &n.CPUs, &n.MemoryMB, &n.Containers,
		&u.CPUPercent, &u.MemoryUsedMB, &u.MemoryTotalMB, &u.DiskUsedMB, &u.DiskTotalMB, &u.Load1, &u.Load5, &u.Load15,
		&n.AgentVersion, &n.CreatedAt)
	if err != nil {
		return n, translate(err)
	}
	return n, nil
}

// ListNodes lists every node with its derived status.
func (s *Store) ListNodes(ctx context.Context) ([]Node, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+nodeColumns+` FROM nodes n JOIN regions r ON r.id = n.region_id ORDER BY n.name`)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return collect(rows, scanNode)
}

// NodeByID finds a node by id; ErrNotFound for an unknown or malformed id.
func (s *Store) NodeByID(ctx context.Context, id string) (Node, error) {
	return scanNode(s.pool.QueryRow(ctx, `SELECT `+nodeColumns+` FROM nodes n JOIN regions r ON r.id = n.region_id WHERE n.id = $1`, id))
}

// CreateNode records a node that will register with registrationTokenHash until expiresAt.
func (s *Store) CreateNode(ctx context.Context, name, regionID, host string, registrationTokenHash []byte, expiresAt time.Time) (Node, error) {
	return scanNode(s.pool.QueryRow(ctx, `WITH n AS (
			INSERT INTO nodes (name, region_id, host, registration_token_hash, registration_token_expires_at)
			VALUES ($1, $2, $3, $4, $5) RETURNING *)
		SELECT `+nodeColumns+` FROM n JOIN regions r ON r.id = n.region_id`, name, regionID, host, registrationTokenHash, expiresAt))
}

// NodeByName finds a node by name.
func (s *Store) NodeByName(ctx context.Context, name string) (Node, error) {
	return scanNode(s.pool.QueryRow(ctx, `SELECT `+nodeColumns+` FROM nodes n JOIN regions r ON r.id = n.region_id WHERE n.name = $1`, name))
}

// SetRegistrationToken gives an existing node a new one-time registration token valid until
// expiresAt, voiding the one it had: for a node whose token expired or was lost, one to be
// registered again (its current credential keeps working until it does), and `skypanel dev`'s
// local node. A revoked node gets none (InvalidStateError).
func (s *Store) SetRegistrationToken(ctx context.Context, nodeID string, hash []byte, expiresAt time.Time) (Node, error) {
	var node Node
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var state string
		if err := tx.QueryRow(ctx, `SELECT admin_state FROM nodes WHERE id = $1 FOR UPDATE`, nodeID).Scan(&state); err != nil {
			return err
		}
		if state == NodeRevoked {
			return &InvalidStateError{Reason: "the node is revoked: it gets no registration token"}
		}
		if _, err := tx.Exec(ctx, `UPDATE nodes SET registration_token_hash = $2, registration_token_expires_at = $3 WHERE id = $1`,
			nodeID, hash, expiresAt); err != nil {
			return err
		}
		var err error
		node, err = scanNode(tx.QueryRow(ctx, `SELECT `+nodeColumns+` FROM nodes n JOIN regions r ON r.id = n.region_id WHERE n.id = $1`, nodeID))
		return err
	})
	if err != nil {
		return Node{}, fmt.Errorf("set registration token of node %s: %w", nodeID, translate(err))
	}
	return node, nil
}

// NodeRegistration is what an agent reports when it registers.
type NodeRegistration struct {
	Host     string
	CPUs     int
	MemoryMB int64
}

// RegisterNode consumes a one-time registration token and sets the node's credential, replacing
// any it had. The registration counts as the node's first sign of life: it is online from here,
// and the registration (and the coming online, unless it already was) are recorded as events.
// An unknown or used token is ErrNotFound; an expired one a *RegistrationTokenExpiredError,
// and it is not consumed.
func (s *Store) RegisterNode(ctx context.Context, registrationTokenHash, nodeTokenHash []byte, reg NodeRegistration) (Node, error) {
	var node Node
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var id, was string
		var expiresAt time.Time
		var expired bool
		if err := tx.QueryRow(ctx, `SELECT id, liveness, registration_token_expires_at, registration_token_expires_at <= now()
			FROM nodes WHERE registration_token_hash = $1 FOR UPDATE`, registrationTokenHash).Scan(&id, &was, &expiresAt, &expired); err != nil {
			return err
		}
		if expired {
			return &RegistrationTokenExpiredError{NodeID: id, ExpiredAt: expiresAt}
		}
		if _, err := tx.Exec(ctx, `UPDATE nodes SET registration_token_hash = NULL, registration_token_expires_at = NULL,
				node_token_hash = $2, registered_at = now(),
				last_heartbeat_at = now(), liveness = 'online', host = CASE WHEN host = '' THEN $3 ELSE host END, cpus = $4, memory_mb = $5
			WHERE id = $1`, id, nodeTokenHash, reg.Host, reg.CPUs, reg.MemoryMB); err != nil {
			return err
		}
		if err := recordNodeEvent(ctx, tx, id, NodeEventRegistered, registrationDetail(reg)); err != nil {
			return err
		}
		if was != "online" {
			if err := recordNodeEvent(ctx, tx, id, NodeEventOnline, "registered"); err != nil {
				return err
			}
		}
		var err error
		node, err = scanNode(tx.QueryRow(ctx, `SELECT `+nodeColumns+` FROM nodes n JOIN regions r ON r.id = n.region_id WHERE n.id = $1`, id))
		return err
	})
	return node, translate(err)
}

func registrationDetail(reg NodeRegistration) string {
	if reg.Host == "" {
		return fmt.Sprintf("%d CPUs, %d MiB", reg.CPUs, reg.MemoryMB)
	}
	return fmt.Sprintf("host %s, %d CPUs, %d MiB", reg.Host, reg.CPUs, reg.MemoryMB)
}

// ErrNodeRevoked: the node's credential is valid but an administrator revoked the node.
var ErrNodeRevoked = errors.New("the node is revoked")

// NodeIDByTokenHash authenticates an agent: ErrNotFound for an unknown token, ErrNodeRevoked
// for the token of a revoked node.
func (s *Store) NodeIDByTokenHash(ctx context.Context, hash []byte) (string, error) {
	var id string
	var revoked bool
	err := s.pool.QueryRow(ctx, `SELECT id, admin_state = 'revoked' FROM nodes WHERE node_token_hash = $1`, hash).Scan(&id, &revoked)
	if err != nil {
		return "", translate(err)
	}
	if revoked {
		return "", ErrNodeRevoked
	}
	return id, nil
}
