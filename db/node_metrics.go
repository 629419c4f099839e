package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Node metrics: every heartbeat is a sample, kept NodeMetricsRetention; readers get them
// averaged into at most NodeMetricsMaxPoints time buckets.
const (
	NodeMetricsRetention = 24 * time.Hour
	NodeMetricsMaxPoints = 300
	// nodeMetricsPruneBatch bounds one delete, so pruning after a long stop never holds
	// locks on a day's worth of rows at once.
	nodeMetricsPruneBatch = 5000
)

// NodeMetricSeries is a node's samples over [From, To], averaged per bucket of BucketSeconds.
type NodeMetricSeries struct {
	From, To      time.Time
	BucketSeconds float64
	Points        []NodeMetricPoint
}

// NodeMetricPoint is the average of the samples of one bucket; buckets without samples have
// no point, and a figure no sample of the bucket carried is nil.
type NodeMetricPoint struct {
	// At is the bucket's start.
	At         time.Time
	Samples    int
	Usage      NodeUsage
	Containers *float64
}

// NodeMetrics returns the node's samples of the last window, averaged in SQL into at most
// maxPoints buckets of equal width (window/maxPoints), oldest first. ErrNotFound for an
// unknown node.
func (s *Store) NodeMetrics(ctx context.Context, nodeID string, window time.Duration, maxPoints int) (NodeMetricSeries, error) {
	if window <= 0 || maxPoints < 1 {
		return NodeMetricSeries{}, fmt.Errorf("metrics of node %s: window %s and %d points make no series", nodeID, window, maxPoints)
	}
	series := NodeMetricSeries{BucketSeconds: window.Seconds() / float64(maxPoints), Points: []NodeMetricPoint{}}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := nodeExists(ctx, tx, nodeID); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&series.To); err != nil {
			return err
		}
		series.From = series.To.Add(-window)
		// Buckets are half-open on the left, (From + i·w, From + (i+1)·w], so the window's
		// samples fall in buckets 0 … maxPoints-1 (clamped against rounding).
		rows, err := tx.Query(ctx, `SELECT b, count(*)::int,
				round(avg(cpu_percent)::numeric, 2)::float8, round(avg(memory_used_mb))::bigint, round(avg(memory_total_mb))::bigint,
				round(avg(disk_used_mb))::bigint, round(avg(disk_total_mb))::bigint,
				round(avg(load1)::numeric, 2)::float8, round(avg(load5)::numeric, 2)::float8, round(avg(load15)::numeric, 2)::float8,
				round(avg(containers), 2)::float8
			FROM (SELECT least(greatest(ceil(extract(epoch FROM at - $2::timestamptz) / $4) - 1, 0), $5 - 1)::int AS b, *
				FROM node_metrics WHERE node_id = $1 AND at > $2 AND at <= $3) m
			GROUP BY b ORDER BY b`, nodeID, series.From, series.To, series.BucketSeconds, maxPoints)
		if err != nil {
			return err
		}
		series.Points, err = collect(rows, func(row pgx.Row) (NodeMetricPoint, error) {
			var p NodeMetricPoint
			var bucket int
			u := &p.Usage
			err := row.Scan(&bucket, &p.Samples, &u.CPUPercent, &u.MemoryUsedMB, &u.MemoryTotalMB, &u.DiskUsedMB, &u.DiskTotalMB,
				&u.Load1, &u.Load5, &u.Load15, &p.Containers)
			p.At = series.From.Add(time.Duration(float64(bucket) * series.BucketSeconds * float64(time.Second)))
			return p, err
		})
		return err
	})
	if err != nil {
		return NodeMetricSeries{}, fmt.Errorf("metrics of node %s: %w", nodeID, translate(err))
	}
	return series, nil
}

// PruneNodeMetrics deletes the samples older than NodeMetricsRetention, in batches, and says
// how many went. Concurrent pruners skip each other's rows.
func (s *Store) PruneNodeMetrics(ctx context.Context) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, `DELETE FROM node_metrics WHERE (node_id, at) IN (
				SELECT node_id, at FROM node_metrics WHERE at < now() - make_interval(secs => $1)
				LIMIT $2 FOR UPDATE SKIP LOCKED)`, NodeMetricsRetention.Seconds(), nodeMetricsPruneBatch)
		if err != nil {
			return total, fmt.Errorf("prune node metrics: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < nodeMetricsPruneBatch {
			return total, nil
		}
	}
}
