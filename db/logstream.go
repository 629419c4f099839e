package db

import (
	"context"
	"fmt"
)

// LogChunk is one stored piece of a deployment's log. The log reads in ID order (as
// DeploymentLog concatenates it).
type LogChunk struct {
	ID   int64
	Body string
}

// LogStreamState is what a live log stream polls besides the chunks.
type LogStreamState struct {
	Status string
	// ResultChunkID is the ID of the chunk the control plane writes once the deployment has
	// ended ("==> Deployed" or "==> Deployment failed"), 0 while there is none. It is written
	// after the deployment's terminal status, so it is the log's last chunk.
	ResultChunkID int64
}

// DeploymentLogState returns the status of deploymentID (already authorized by the caller) and
// where its result chunk is.
func (s *Store) DeploymentLogState(ctx context.Context, deploymentID string) (LogStreamState, error) {
	var st LogStreamState
	err := s.pool.QueryRow(ctx, `SELECT d.status,
		COALESCE((SELECT max(c.id) FROM deployment_log_chunks c WHERE c.deployment_id = d.id AND c.source = 'control:' || $2), 0)
		FROM deployments d WHERE d.id = $1::uuid`, deploymentID, LogKeyResult).Scan(&st.Status, &st.ResultChunkID)
	return st, translate(err)
}

// DeploymentLogChunksAfter returns up to limit chunks of deploymentID (already authorized by the
// caller) whose ID is above afterID, in log order.
func (s *Store) DeploymentLogChunksAfter(ctx context.Context, deploymentID string, afterID int64, limit int) ([]LogChunk, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, body FROM deployment_log_chunks
		WHERE deployment_id = $1::uuid AND id > $2 ORDER BY id LIMIT $3`, deploymentID, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("log chunks: %w", err)
	}
	defer rows.Close()
	var out []LogChunk
	for rows.Next() {
		var c LogChunk
		if err := rows.Scan(&c.ID, &c.Body); err != nil {
			return nil, fmt.Errorf("log chunks: %w", err)
		}
		out = append(out, c)
	}
	return out, translate(rows.Err())
}
