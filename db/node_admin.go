package db

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// CordonNode marks an active node cordoned, recording who did it. A node in any other admin
// state is an InvalidStateError saying which.
func (s *Store) CordonNode(ctx context.Context, nodeID, byUserID string) (Node, error) {
	return s.changeAdminState(ctx, nodeID, byUserID, []string{NodeActive}, NodeCordoned, NodeEventCordoned,
		"only an active node can be cordoned")
}

// UncordonNode makes a cordoned node active again, or a drained one back in service (after
// its maintenance, say): new apps may be placed on it again.
func (s *Store) UncordonNode(ctx context.Context, nodeID, byUserID string) (Node, error) {
	return s.changeAdminState(ctx, nodeID, byUserID, []string{NodeCordoned, NodeDrained}, NodeActive, NodeEventUncordoned,
		"only a cordoned or drained node can be uncordoned")
}

// changeAdminState moves the node from one of the admin states from to another and records the
// event, in one transaction under the node's row lock.
func (s *Store) changeAdminState(ctx context.Context, nodeID, byUserID string, from []string, to, event, rule string) (Node, error) {
	var node Node
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var state string
		if err := tx.QueryRow(ctx, `SELECT admin_state FROM nodes WHERE id = $1 FOR UPDATE`, nodeID).Scan(&state); err != nil {
			return err
		}
		if !slices.Contains(from, state) {
			return &InvalidStateError{Reason: fmt.Sprintf("the node is %s: %s", state, rule)}
		}
		if _, err := tx.Exec(ctx, `UPDATE nodes SET admin_state = $2 WHERE id = $1`, nodeID, to); err != nil {
			return err
		}
		var by string
		if err := tx.QueryRow(ctx, `SELECT COALESCE((SELECT email FROM users WHERE id::text = $1), $1)`, byUserID).Scan(&by); err != nil {
			return err
		}
		if err := recordNodeEvent(ctx, tx, nodeID, event, "by "+by); err != nil {
			return err
		}
		var err error
		node, err = scanNode(tx.QueryRow(ctx, `SELECT `+nodeColumns+` FROM nodes n JOIN regions r ON r.id = n.region_id WHERE n.id = $1`, nodeID))
		return err
	})
	if err != nil {
		return Node{}, fmt.Errorf("%s node %s: %w", event, nodeID, translate(err))
	}
	return node, nil
}

// DeleteNode deletes a node that holds no application; its events, metrics and last report go
// with it. A node some application is placed on is an InvalidStateError naming how many.
func (s *Store) DeleteNode(ctx context.Context, nodeID string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The lock keeps placement from choosing the node between the count and the delete.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM nodes WHERE id = $1 FOR UPDATE`, nodeID); err != nil {
			return err
		}
		var apps int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM applications WHERE node_id = $1`, nodeID).Scan(&apps); err != nil {
			return err
		}
		if apps > 0 {
			return &InvalidStateError{Reason: fmt.Sprintf("the node still has %d %s placed on it: delete %s first",
				apps, plural(apps, "application", "applications"), plural(apps, "it", "them"))}
		}
		tag, err := tx.Exec(ctx, `DELETE FROM nodes WHERE id = $1`, nodeID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete node %s: %w", nodeID, translate(err))
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
