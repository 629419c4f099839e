package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Placement by memory. A node offers its memory minus a system share (a tenth, at least
// 512 MiB, for the OS, Docker and nginx); every app placed on it reserves its plan's memory
// times its instance count, whether it runs or is stopped or suspended (it comes back on the
// same node), and every managed database its plan's memory. A new app goes to the online, active (not cordoned, draining, …) node of its
// region with room for it whose share already reserved is the smallest.

// nodeRoomColumns are a node's id, name, allocatable and reserved memory (MiB), for
// FROM nodes n. An app being moved to the node (moving_to) counts there already.
const nodeRoomColumns = `n.id::text, n.name, greatest(n.memory_mb - greatest(n.memory_mb / 10, 512), 0),
	COALESCE((SELECT sum(p.memory_mb::bigint * greatest(a.instances, 1)) FROM applications a JOIN plans p ON p.id = a.plan_id
		WHERE (a.node_id = n.id OR a.moving_to = n.id) AND a.status <> 'deleting'), 0)
	+ COALESCE((SELECT sum(dp.memory_mb::bigint) FROM databases d JOIN database_plans dp ON dp.id = d.plan_id
		WHERE d.node_id = n.id AND d.status NOT IN ('deleting', 'deleted')), 0)`

// nodeRoom is a node's memory as placement sees it.
type nodeRoom struct {
	ID, Name              string
	Allocatable, Reserved int64
}

func (r nodeRoom) free() int64 { return r.Allocatable - r.Reserved }

// NoRoomError refuses a placement or a scale no node can hold.
type NoRoomError struct {
	Region string
	Node   string // set for a scale on the app's own node
	NeedMB int64
	// FreeMB is the most unreserved memory among the region's online nodes (or the node's).
	FreeMB int64
	Nodes  int // online nodes looked at
	// Except names the node a move leaves: it was not looked at.
	Except string
}

func (e *NoRoomError) Error() string {
	if e.Node != "" {
		return fmt.Sprintf("node %s has %d MiB of memory unreserved and this needs %d MiB more; scale down another application there, or pick a smaller plan",
			e.Node, e.FreeMB, e.NeedMB)
	}
	if e.Except != "" {
		if e.Nodes == 0 {
			return fmt.Sprintf("region %s has no other active, online node than %s to move the application to: add a node to it", e.Region, e.Except)
		}
		return fmt.Sprintf("no other node of region %s than %s has %d MiB of memory unreserved for this application (the most on one of its %d other active, online nodes is %d MiB): add a node",
			e.Region, e.Except, e.NeedMB, e.Nodes, e.FreeMB)
	}
	if e.Nodes == 0 {
		return fmt.Sprintf("region %s has no online node: add a node to it, or pick another region", e.Region)
	}
	return fmt.Sprintf("no node of region %s has %d MiB of memory unreserved for this application (the most on one of its %d online nodes is %d MiB): add a node, or pick a smaller plan",
		e.Region, e.NeedMB, e.Nodes, e.FreeMB)
}

// ErrNoNode: no online node in the app's region (kept for callers that only need that).
var ErrNoNode = errors.New("no online node in the application's region")

// Is lets errors.Is(err, ErrNoNode) match a region without any online node.
func (e *NoRoomError) Is(target error) bool {
	return target == ErrNoNode && e.Nodes == 0 && e.Node == ""
}

// regionRooms reads the region's online nodes with their memory, locking them so that two
// placements in the region do not both take the last room.
func regionRooms(ctx context.Context, tx pgx.Tx, regionID string) ([]nodeRoom, error) {
	return regionRoomsExcept(ctx, tx, regionID, "")
}

// regionRoomsExcept is regionRooms without the node exceptNodeID (a move's origin).
func regionRoomsExcept(ctx context.Context, tx pgx.Tx, regionID, exceptNodeID string) ([]nodeRoom, error) {
	rows, err := tx.Query(ctx, `SELECT `+nodeRoomColumns+` FROM nodes n
		WHERE n.region_id = $1 AND n.admin_state = 'active' AND `+nodeOnlineSQL+` AND n.id::text <> $2
		ORDER BY n.name FOR UPDATE`, regionID, exceptNodeID)
	if err != nil {
		return nil, fmt.Errorf("read the nodes of region %s: %w", regionID, err)
	}
	return collect(rows, func(row pgx.Row) (nodeRoom, error) {
		var r nodeRoom
		err := row.Scan(&r.ID, &r.Name, &r.Allocatable, &r.Reserved)
		return r, err
	})
}

// chooseNode picks the node with room for need whose reserved share is the smallest (ties:
// the first by name), or a *NoRoomError.
func chooseNode(region string, rooms []nodeRoom, need int64) (nodeRoom, error) {
	best, found := nodeRoom{}, false
	refusal := &NoRoomError{Region: region, NeedMB: need, Nodes: len(rooms)}
	for _, r := range rooms {
		refusal.FreeMB = max(refusal.FreeMB, r.free())
		if r.free() < need {
			continue
		}
		if !found || r.Reserved*best.Allocatable < best.Reserved*r.Allocatable {
			best, found = r, true
		}
	}
	if !found {
		return nodeRoom{}, refusal
	}
	return best, nil
}

// chooseNodeInRegion picks the node of the region (whose rows it locks) for something that
// needs need MiB: chooseNode over regionRooms.
func chooseNodeInRegion(ctx context.Context, tx pgx.Tx, regionID, region string, need int64) (string, error) {
	rooms, err := regionRooms(ctx, tx, regionID)
	if err != nil {
		return "", err
	}
	chosen, err := chooseNode(region, rooms, need)
	return chosen.ID, err
}

// PlaceApplication returns the app's node, choosing one the first time (see above): a
// *NoRoomError when no online node of its region has room for its plan × instances.
func (s *Store) PlaceApplication(ctx context.Context, appID string) (string, error) {
	var nodeID string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var current *string
		var regionID, region string
		var need int64
		if err := tx.QueryRow(ctx, `SELECT a.node_id::text, a.region_id::text, rg.slug, p.memory_mb::bigint * greatest(a.instances, 1)
			FROM applications a JOIN plans p ON p.id = a.plan_id JOIN regions rg ON rg.id = a.region_id
			WHERE a.id::text = $1 FOR UPDATE OF a`, appID).Scan(&current, &regionID, &region, &need); err != nil {
			return translate(err)
		}
		if current != nil {
			nodeID = *current
			return nil
		}
		var err error
		if nodeID, err = chooseNodeInRegion(ctx, tx, regionID, region, need); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE applications SET node_id = $2 WHERE id::text = $1`, appID, nodeID)
		return err
	})
	return nodeID, err
}

// CheckRoomInRegion says whether a new app of planID (one instance) would find a node in
// regionID: nil, or a *NoRoomError. Nothing is reserved; the first deploy places the app.
func (s *Store) CheckRoomInRegion(ctx context.Context, regionID, planID string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var region string
		var need int64
		if err := tx.QueryRow(ctx, `SELECT rg.slug, p.memory_mb FROM regions rg, plans p WHERE rg.id::text = $1 AND p.id::text = $2`,
			regionID, planID).Scan(&region, &need); err != nil {
			return translate(err)
		}
		rooms, err := regionRooms(ctx, tx, regionID)
		if err != nil {
			return err
		}
		_, err = chooseNode(region, rooms, need)
		return err
	})
}

// CheckRoomToScale says whether the app of orgID can run instances instances on its node:
// nil (also for an app not placed yet: its first deploy places it with its count), or a
// *NoRoomError naming the node.
func (s *Store) CheckRoomToScale(ctx context.Context, orgID, appID string, instances int) error {
	var nodeID *string
	var current int
	var perInstance int64
	err := s.pool.QueryRow(ctx, `SELECT a.node_id::text, greatest(a.instances, 1), p.memory_mb FROM applications a JOIN plans p ON p.id = a.plan_id
		WHERE a.id::text = $1 AND a.org_id = $2`, appID, orgID).Scan(&nodeID, &current, &perInstance)
	if err != nil {
		return translate(err)
	}
	if nodeID == nil || instances <= current {
		return nil
	}
	var room nodeRoom
	if err := s.pool.QueryRow(ctx, `SELECT `+nodeRoomColumns+` FROM nodes n WHERE n.id::text = $1`, *nodeID).
		Scan(&room.ID, &room.Name, &room.Allocatable, &room.Reserved); err != nil {
		return translate(err)
	}
	if need := perInstance * int64(instances-current); room.free() < need {
		return &NoRoomError{Node: room.Name, NeedMB: need, FreeMB: room.free()}
	}
	return nil
}

// NodeOnline names a node, says whether it counts as online (the liveness rule placement uses)
// and, when not, how long it may stay silent before it does not (3 of its intervals).
func (s *Store) NodeOnline(ctx context.Context, nodeID string) (name string, online bool, silentAfter time.Duration, err error) {
	var seconds int
	err = s.pool.QueryRow(ctx, `SELECT n.name, `+nodeOnlineSQL+`, $2 * COALESCE(n.heartbeat_interval_seconds, $3)
		FROM nodes n WHERE n.id::text = $1`, nodeID, MissedHeartbeats, int(DefaultHeartbeatInterval/time.Second)).Scan(&name, &online, &seconds)
	return name, online, time.Duration(seconds) * time.Second, translate(err)
}
