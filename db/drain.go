package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Node events of a drain or an evacuation (see DrainNode in workflows).
const (
	NodeEventDraining        = "draining"
	NodeEventEvacuating      = "evacuating"
	NodeEventDrained         = "drained"
	NodeEventDrainIncomplete = "drain_incomplete"
)

// MoveDestination is the node a move takes an app to, and the one it leaves.
type MoveDestination struct {
	NodeID   string
	NodeName string
	FromName string
}

// ChooseMoveDestination picks the node an app moves to from fromNodeID, by placement's rule:
// an active, online node of the app's region other than fromNodeID with room for the app's plan
// × instances, the one whose reserved share is the smallest. The app's own reservation is on
// fromNodeID, which is not looked at. The chosen node's room is reserved for the move at once
// (moving_to), until SwitchApplicationNode or the end of the move's operation; a *NoRoomError
// (Except set) when no node fits.
func (s *Store) ChooseMoveDestination(ctx context.Context, appID, fromNodeID string) (MoveDestination, error) {
	var dest MoveDestination
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var regionID, region string
		var need int64
		if err := tx.QueryRow(ctx, `SELECT a.region_id::text, rg.slug, p.memory_mb::bigint * greatest(a.instances, 1)
			FROM applications a JOIN plans p ON p.id = a.plan_id JOIN regions rg ON rg.id = a.region_id
			WHERE a.id::text = $1`, appID).Scan(&regionID, &region, &need); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT name FROM nodes WHERE id::text = $1`, fromNodeID).Scan(&dest.FromName); err != nil {
			return err
		}
		// A retried choice first drops the reservation it made, so it does not count twice.
		if _, err := tx.Exec(ctx, `UPDATE applications SET moving_to = NULL WHERE id::text = $1`, appID); err != nil {
			return err
		}
		rooms, err := regionRoomsExcept(ctx, tx, regionID, fromNodeID)
		if err != nil {
			return err
		}
		chosen, err := chooseNode(region, rooms, need)
		var noRoom *NoRoomError
		if errors.As(err, &noRoom) {
			noRoom.Except = dest.FromName
		}
		if err != nil {
			return err
		}
		dest.NodeID, dest.NodeName = chosen.ID, chosen.Name
		// The room is the move's from now: another move choosing under the same node locks
		// sees it taken. The switch, or the end of the move's operation, releases it.
		_, err = tx.Exec(ctx, `UPDATE applications SET moving_to = $2::text::uuid WHERE id::text = $1`, appID, chosen.ID)
		return err
	})
	if err != nil {
		return MoveDestination{}, translate(err)
	}
	return dest, nil
}

// SwitchApplicationNode places the app on toNodeID if it is still on fromNodeID, and records
// instance (when set) as the instance serving it. It reports whether it switched; a retry after
// a switch finds the app on toNodeID and reports true.
func (s *Store) SwitchApplicationNode(ctx context.Context, appID, fromNodeID, toNodeID, instance string) (bool, error) {
	var switched bool
	err := s.pool.QueryRow(ctx, `WITH moved AS (
			UPDATE applications SET node_id = $3::text::uuid, moving_to = NULL,
				current_instance = CASE WHEN $4 = '' THEN current_instance ELSE $4 END, updated_at = now()
			WHERE id::text = $1 AND node_id::text = $2 RETURNING 1)
		SELECT EXISTS (SELECT 1 FROM moved) OR EXISTS (SELECT 1 FROM applications WHERE id::text = $1 AND node_id::text = $3::text)`,
		appID, fromNodeID, toNodeID, instance).Scan(&switched)
	return switched, translate(err)
}

// NodeApp is an app placed on a node.
type NodeApp struct {
	OrgID string
	AppID string
	Name  string
}

// NodeApps lists the apps placed on the node, but those being deleted, by name.
func (s *Store) NodeApps(ctx context.Context, nodeID string) ([]NodeApp, error) {
	rows, err := s.pool.Query(ctx, `SELECT org_id::text, id::text, name FROM applications
		WHERE node_id::text = $1 AND status <> 'deleting' ORDER BY name, id`, nodeID)
	if err != nil {
		return nil, fmt.Errorf("list the apps of node %s: %w", nodeID, err)
	}
	return collect(rows, func(row pgx.Row) (NodeApp, error) {
		var a NodeApp
		return a, row.Scan(&a.OrgID, &a.AppID, &a.Name)
	})
}

// BeginNodeDrain marks an active or cordoned node draining and records the event (evacuating
// when evacuate) with who asked. A node draining already is left as it is (a retried step). A
// revoked node may be evacuated (nothing is asked of it) and stays revoked: only the event is
// recorded. Any other state is an InvalidStateError saying which.
func (s *Store) BeginNodeDrain(ctx context.Context, nodeID string, evacuate bool, byUserID string) error {
	event := NodeEventDraining
	if evacuate {
		event = NodeEventEvacuating
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var state string
		if err := tx.QueryRow(ctx, `SELECT admin_state FROM nodes WHERE id::text = $1 FOR UPDATE`, nodeID).Scan(&state); err != nil {
			return err
		}
		switch {
		case state == NodeDraining:
			return nil
		case state == NodeActive, state == NodeCordoned, state == NodeRevoked && evacuate:
		case state == NodeRevoked:
			return &InvalidStateError{Reason: "the node is revoked: it cannot hand its apps over; evacuate it instead"}
		default:
			return &InvalidStateError{Reason: fmt.Sprintf("the node is %s: only an active or cordoned node can be drained", state)}
		}
		if _, err := tx.Exec(ctx, `UPDATE nodes SET admin_state = 'draining' WHERE id::text = $1 AND admin_state <> 'revoked'`, nodeID); err != nil {
			return err
		}
		var by string
		if err := tx.QueryRow(ctx, `SELECT COALESCE((SELECT email FROM users WHERE id::text = $1), $1)`, byUserID).Scan(&by); err != nil {
			return err
		}
		detail := "by " + by
		if by == "" {
			detail = "by the platform"
		}
		return recordNodeEvent(ctx, tx, nodeID, event, detail)
	})
	if err != nil {
		return fmt.Errorf("begin the drain of node %s: %w", nodeID, translate(err))
	}
	return nil
}

// FinishNodeDrain ends a draining node's drain: drained when every app left it, cordoned again
// otherwise (nothing new is placed there, and it can be drained again), with the event
// (drained, or drain_incomplete) and its detail. A node no longer draining is left as it is (a
// retried step); a revoked node's evacuation records its event and the node stays revoked.
func (s *Store) FinishNodeDrain(ctx context.Context, nodeID string, drained bool, detail string) error {
	state, event := NodeCordoned, NodeEventDrainIncomplete
	if drained {
		state, event = NodeDrained, NodeEventDrained
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE nodes SET admin_state = CASE WHEN admin_state = 'revoked' THEN admin_state ELSE $2 END
			WHERE id::text = $1 AND admin_state IN ('draining', 'revoked')`, nodeID, state)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		return recordNodeEvent(ctx, tx, nodeID, event, detail)
	})
	if err != nil {
		return fmt.Errorf("finish the drain of node %s: %w", nodeID, translate(err))
	}
	return nil
}

// OtherActiveOnlineNodes counts the active, online nodes of the node's region other than it:
// where a drain could move its apps. ErrNotFound for an unknown node.
func (s *Store) OtherActiveOnlineNodes(ctx context.Context, nodeID string) (int, error) {
	var count int
	err := s.pool.QueryRow(ctx, `SELECT count(n.id) FILTER (WHERE n.id <> me.id AND n.admin_state = 'active' AND `+nodeOnlineSQL+`)
		FROM nodes me LEFT JOIN nodes n ON n.region_id = me.region_id WHERE me.id::text = $1 GROUP BY me.id`, nodeID).Scan(&count)
	return count, translate(err)
}

// OperationState is where an operation stands: its status and reason.
type OperationState struct {
	Status string
	Reason string
}

// OperationStateByID reads an operation's status and reason; ErrNotFound when it is gone (its
// app was deleted).
func (s *Store) OperationStateByID(ctx context.Context, operationID string) (OperationState, error) {
	var st OperationState
	err := s.pool.QueryRow(ctx, `SELECT status, reason FROM app_operations WHERE id::text = $1`, operationID).Scan(&st.Status, &st.Reason)
	return st, translate(err)
}

// ForeignApps returns the app ids among reported (the apps a node holds containers of) that
// are not the node's: placed on another node, or gone, and with no operation queued or
// running. A move in progress starts the app on its destination before the app is placed
// there, so an app with an operation under way is never foreign.
func (s *Store) ForeignApps(ctx context.Context, nodeID string, reported []string) ([]string, error) {
	if len(reported) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT r.id FROM unnest($2::text[]) AS r(id)
		LEFT JOIN applications a ON a.id::text = r.id
		WHERE (a.id IS NULL OR a.node_id IS NULL OR a.node_id::text <> $1)
		  AND NOT EXISTS (SELECT 1 FROM app_operations o WHERE o.app_id = a.id AND o.status IN ('queued', 'running'))
		ORDER BY r.id`, nodeID, reported)
	if err != nil {
		return nil, fmt.Errorf("foreign apps of node %s: %w", nodeID, err)
	}
	return collect(rows, func(row pgx.Row) (string, error) {
		var id string
		return id, row.Scan(&id)
	})
}
