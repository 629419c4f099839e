package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Kinds of node events. Each is written in the transaction that makes the change, so an event
// exists exactly when its change does.
const (
	NodeEventRegistered = "registered"
	NodeEventOnline     = "online"
	NodeEventOffline    = "offline"
	NodeEventCordoned   = "cordoned"
	NodeEventUncordoned = "uncordoned"
	NodeEventRevoked    = "revoked"
)

// NodeEvent is one thing that happened to a node.
type NodeEvent struct {
	ID     int64
	At     time.Time
	Kind   string
	Detail string
}

func recordNodeEvent(ctx context.Context, tx pgx.Tx, nodeID, kind, detail string) error {
	if _, err := tx.Exec(ctx, `INSERT INTO node_events (node_id, kind, detail) VALUES ($1, $2, $3)`, nodeID, kind, detail); err != nil {
		return fmt.Errorf("record %s event of node %s: %w", kind, nodeID, err)
	}
	return nil
}

// NodeEvents lists the node's events, newest first, at most limit. ErrNotFound for an unknown
// node (one without events answers an empty list).
func (s *Store) NodeEvents(ctx context.Context, nodeID string, limit int) ([]NodeEvent, error) {
	var events []NodeEvent
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := nodeExists(ctx, tx, nodeID); err != nil {
			return err
		}
		// Events of one node are written under its row lock, so id order is their order.
		rows, err := tx.Query(ctx, `SELECT id, at, kind, detail FROM node_events WHERE node_id = $1 ORDER BY id DESC LIMIT $2`, nodeID, limit)
		if err != nil {
			return err
		}
		events, err = collect(rows, func(row pgx.Row) (NodeEvent, error) {
			var e NodeEvent
			return e, row.Scan(&e.ID, &e.At, &e.Kind, &e.Detail)
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("events of node %s: %w", nodeID, translate(err))
	}
	return events, nil
}

// nodeExists is ErrNotFound unless the node exists.
func nodeExists(ctx context.Context, q pgx.Tx, nodeID string) error {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM nodes WHERE id = $1)`, nodeID).Scan(&exists); err != nil {
		return translate(err)
	}
	if !exists {
		return ErrNotFound
	}
	return nil
}
