package apiserver

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/db"
)

// nodeAdminStore is what the admin node routes need of the store: an interface, so their
// handlers are tested without Postgres.
type nodeAdminStore interface {
	NodeByID(ctx context.Context, id string) (db.Node, error)
	NodeMetrics(ctx context.Context, nodeID string, window time.Duration, maxPoints int) (db.NodeMetricSeries, error)
	NodeEvents(ctx context.Context, nodeID string, limit int) ([]db.NodeEvent, error)
	CordonNode(ctx context.Context, nodeID, byUserID string) (db.Node, error)
	UncordonNode(ctx context.Context, nodeID, byUserID string) (db.Node, error)
	DeleteNode(ctx context.Context, nodeID string) error
	OtherActiveOnlineNodes(ctx context.Context, nodeID string) (int, error)
	RevokeNode(ctx context.Context, nodeID, byUserID string) (db.Node, bool, error)
}

var _ nodeAdminStore = (*db.Store)(nil)

// nodeAdmin serves one node's admin routes: its health, its events, cordon, drain, evacuate,
// revoke and delete.
type nodeAdmin struct {
	store  nodeAdminStore
	drains nodeDrainer
	// gateway is the node gateway of this process (nil when it runs in none).
	gateway NodeCutter
	problem func(ctx context.Context, what string, err error) error
	log     *slog.Logger
}

// adminOp builds an operation only administrators may call.
type adminOp func(id, method, path, summary string, status int) huma.Operation

type nodeIDInput struct {
	ID string `path:"id" maxLength:"64" doc:"node id"`
}

type nodeEventsInput struct {
	ID    string `path:"id" maxLength:"64" doc:"node id"`
	Limit int    `query:"limit" minimum:"1" maximum:"500" default:"50" doc:"at most this many events, newest first"`
}

type nodeDetailOutput struct {
	Body struct {
		Node    Node        `json:"node"`
		Metrics NodeMetrics `json:"metrics" doc:"the last 24 h of heartbeats, averaged into at most 300 points"`
	}
}

type nodeOutput struct {
	Body Node
}

func (h nodeAdmin) register(api huma.API, op adminOp) {
	huma.Register(api, op("admin-get-node", http.MethodGet, "/api/paas/admin/nodes/{id}",
		"A node with its last 24 hours of metrics", 0),
		func(ctx context.Context, in *nodeIDInput) (*nodeDetailOutput, error) {
			node, err := h.store.NodeByID(ctx, in.ID)
			if err != nil {
				return nil, h.problem(ctx, "node", err)
			}
			series, err := h.store.NodeMetrics(ctx, in.ID, db.NodeMetricsRetention, db.NodeMetricsMaxPoints)
			if err != nil {
				return nil, h.problem(ctx, "node", err)
			}
			out := &nodeDetailOutput{}
			out.Body.Node, out.Body.Metrics = nodeView(node), nodeMetricsView(series)
			return out, nil
		})
	huma.Register(api, op("admin-list-node-events", http.MethodGet, "/api/paas/admin/nodes/{id}/events",
		"A node's events (online, offline, cordoned, …), newest first", 0),
		func(ctx context.Context, in *nodeEventsInput) (*items[NodeEvent], error) {
			events, err := h.store.NodeEvents(ctx, in.ID, in.Limit)
			if err != nil {
				return nil, h.problem(ctx, "node", err)
			}
			return listOf(viewsOf(events, nodeEventView)), nil
		})
	huma.Register(api, op("admin-cordon-node", http.MethodPost, "/api/paas/admin/nodes/{id}/cordon",
		"Cordon an active node", 0),
		func(ctx context.Context, in *nodeIDInput) (*nodeOutput, error) {
			node, err := h.store.CordonNode(ctx, in.ID, principal(ctx).UserID)
			if err != nil {
				return nil, h.problem(ctx, "node", err)
			}
			h.log.InfoContext(ctx, "node cordoned", "node_id", node.ID, "node", node.Name, "user_id", principal(ctx).UserID)
			return &nodeOutput{Body: nodeView(node)}, nil
		})
	huma.Register(api, op("admin-uncordon-node", http.MethodPost, "/api/paas/admin/nodes/{id}/uncordon",
		"Make a cordoned node active again, or put a drained node back in service", 0),
		func(ctx context.Context, in *nodeIDInput) (*nodeOutput, error) {
			node, err := h.store.UncordonNode(ctx, in.ID, principal(ctx).UserID)
			if err != nil {
				return nil, h.problem(ctx, "node", err)
			}
			h.log.InfoContext(ctx, "node uncordoned", "node_id", node.ID, "node", node.Name, "user_id", principal(ctx).UserID)
			return &nodeOutput{Body: nodeView(node)}, nil
		})
	h.registerDrain(api, op)
	huma.Register(api, op("admin-revoke-node", http.MethodPost, "/api/paas/admin/nodes/{id}/revoke",
		"Revoke a node for good: its token and certificates stop working, the node gateway cuts it off at once, and the work it held fails as revoked", 0),
		func(ctx context.Context, in *nodeIDInput) (*nodeOutput, error) {
			node, changed, err := h.store.RevokeNode(ctx, in.ID, principal(ctx).UserID)
			if err != nil {
				return nil, h.problem(ctx, "node", err)
			}
			// Again on a second revoke: a gateway that was down at the first cuts it now.
			if h.gateway != nil {
				h.gateway.Revoke(node.ID, node.Name)
			}
			if changed {
				h.log.WarnContext(ctx, "node revoked", "node_id", node.ID, "node", node.Name, "user_id", principal(ctx).UserID)
			}
			return &nodeOutput{Body: nodeView(node)}, nil
		})
	huma.Register(api, op("admin-delete-node", http.MethodDelete, "/api/paas/admin/nodes/{id}",
		"Delete a node no application is placed on, with its events and metrics", http.StatusNoContent),
		func(ctx context.Context, in *nodeIDInput) (*struct{}, error) {
			if err := h.store.DeleteNode(ctx, in.ID); err != nil {
				return nil, h.problem(ctx, "node", err)
			}
			h.log.InfoContext(ctx, "node deleted", "node_id", in.ID, "user_id", principal(ctx).UserID)
			return &struct{}{}, nil
		})
}
