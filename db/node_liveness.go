package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// NodeHeartbeat is the agent's periodic report.
type NodeHeartbeat struct {
	CPUs     int
	MemoryMB int64
	// Containers is nil when the agent could not ask Docker: the last count stays.
	Containers   *int
	AgentVersion string
	// IntervalSeconds is how often the agent reports; 0 from agents that do not say.
	IntervalSeconds int
	Usage           NodeUsage
}

// RecordHeartbeat stores a heartbeat: the node's latest figures, a metrics sample, and, when
// the node was pending or offline, its coming online as an event, all in one transaction.
func (s *Store) RecordHeartbeat(ctx context.Context, nodeID string, hb NodeHeartbeat) error {
	var interval *int
	if hb.IntervalSeconds > 0 {
		interval = &hb.IntervalSeconds
	}
	u := hb.Usage
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The row lock orders this against the offline sweep: whichever comes second sees the
		// other's liveness, so each transition is recorded once.
		var was string
		var silentFor *float64 // seconds since the previous heartbeat
		if err := tx.QueryRow(ctx, `SELECT liveness, extract(epoch FROM now() - last_heartbeat_at)::float8 FROM nodes WHERE id = $1 FOR UPDATE`,
			nodeID).Scan(&was, &silentFor); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE nodes SET last_heartbeat_at = now(), liveness = 'online',
				cpus = CASE WHEN $2 > 0 THEN $2 ELSE cpus END, memory_mb = CASE WHEN $3 > 0 THEN $3 ELSE memory_mb END, containers = COALESCE($4, containers), agent_version = $5,
				heartbeat_interval_seconds = COALESCE($6, heartbeat_interval_seconds),
				cpu_percent = $7, memory_used_mb = $8, memory_total_mb = $9, disk_used_mb = $10, disk_total_mb = $11,
				load1 = $12, load5 = $13, load15 = $14
			WHERE id = $1`, nodeID, hb.CPUs, hb.MemoryMB, hb.Containers, hb.AgentVersion, interval,
			u.CPUPercent, u.MemoryUsedMB, u.MemoryTotalMB, u.DiskUsedMB, u.DiskTotalMB, u.Load1, u.Load5, u.Load15); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO node_metrics (node_id, at, cpu_percent, memory_used_mb, memory_total_mb,
				disk_used_mb, disk_total_mb, load1, load5, load15, containers)
			VALUES ($1, now(), $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (node_id, at) DO NOTHING`,
			nodeID, u.CPUPercent, u.MemoryUsedMB, u.MemoryTotalMB, u.DiskUsedMB, u.DiskTotalMB, u.Load1, u.Load5, u.Load15, hb.Containers); err != nil {
			return err
		}
		if was == "online" {
			return nil
		}
		return recordNodeEvent(ctx, tx, nodeID, NodeEventOnline, onlineDetail(was, silentFor))
	})
	if err != nil {
		return fmt.Errorf("record heartbeat of node %s: %w", nodeID, translate(err))
	}
	return nil
}

func onlineDetail(was string, silentFor *float64) string {
	if was == "pending" || silentFor == nil {
		return "first heartbeat"
	}
	return fmt.Sprintf("heartbeat after %s of silence", time.Duration(*silentFor*float64(time.Second)).Round(time.Second))
}

// MarkSilentNodesOffline marks offline every online node silent for MissedHeartbeats of its
// interval, records each transition as an event and returns those nodes. Safe to run from
// several control workers at once: a node another sweep (or a heartbeat) changed meanwhile no
// longer matches, so each transition is returned and recorded once.
func (s *Store) MarkSilentNodesOffline(ctx context.Context) ([]Node, error) {
	rows, err := s.pool.Query(ctx, `WITH gone AS (
			UPDATE nodes n SET liveness = 'offline'
			WHERE n.liveness = 'online' AND NOT `+nodeOnlineSQL+`
			RETURNING n.*
		), recorded AS (
			INSERT INTO node_events (node_id, kind, detail)
			SELECT id, 'offline', format('no heartbeat for %s s (%s missed heartbeats of %s s)',
				floor(extract(epoch FROM now() - last_heartbeat_at)), $1::int, COALESCE(heartbeat_interval_seconds, $2::int))
			FROM gone
		)
		SELECT `+nodeColumns+` FROM gone n JOIN regions r ON r.id = n.region_id ORDER BY n.name`,
		MissedHeartbeats, int(DefaultHeartbeatInterval/time.Second))
	if err != nil {
		return nil, fmt.Errorf("mark silent nodes offline: %w", err)
	}
	nodes, err := collect(rows, scanNode)
	if err != nil {
		return nil, fmt.Errorf("mark silent nodes offline: %w", err)
	}
	return nodes, nil
}
