package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/db"
	sptemporal "github.com/skypanel/skypanel/temporal"
	"github.com/skypanel/skypanel/workflows"
)

// nodeDrainer starts a node's drain (or evacuation) workflow: an interface, so the handlers are
// tested without Temporal.
type nodeDrainer interface {
	// StartDrain starts DrainNode for the node and returns its workflow ID; errDrainRunning
	// when that workflow runs already.
	StartDrain(ctx context.Context, nodeID string, evacuate bool, byUserID string) (string, error)
}

// errDrainRunning: the node's drain (or evacuation) workflow runs already.
var errDrainRunning = errors.New("a drain of this node runs already")

// temporalDrains starts drains on the control queue.
type temporalDrains struct{ temporal client.Client }

// StartDrain starts drain/<node> (evacuate/<node>). A running one refuses a second start; a
// closed one does not (a drain that left the node cordoned can be asked for again).
func (d temporalDrains) StartDrain(ctx context.Context, nodeID string, evacuate bool, byUserID string) (string, error) {
	id, kind := workflows.DrainNodeWorkflowID(nodeID), "drain"
	if evacuate {
		id, kind = workflows.EvacuateNodeWorkflowID(nodeID), "evacuate"
	}
	_, err := d.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                sptemporal.ControlTaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			sptemporal.NodeIDKey.ValueSet(nodeID), sptemporal.OperationKey.ValueSet(kind)),
	}, workflows.DrainNode, workflows.DrainNodeInput{NodeID: nodeID, Evacuate: evacuate, RequestedBy: byUserID})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return id, errDrainRunning
	}
	return id, err
}

type evacuateInput struct {
	ID   string `path:"id" maxLength:"64" doc:"node id"`
	Body struct {
		Force bool `json:"force,omitempty" doc:"evacuate a node that is online (its apps are not removed from it; a drain would)"`
	}
}

type drainOutput struct {
	Status int
	Body   struct {
		WorkflowID string `json:"workflow_id" doc:"the DrainNode workflow: its result lists each app, moved or not and why"`
		Status     string `json:"status" enum:"draining,evacuating"`
	}
}

func (h nodeAdmin) registerDrain(api huma.API, op adminOp) {
	huma.Register(api, op("admin-drain-node", http.MethodPost, "/api/paas/admin/nodes/{id}/drain",
		"Move every app off an online node, one after the other, then mark it drained", http.StatusAccepted),
		func(ctx context.Context, in *nodeIDInput) (*drainOutput, error) {
			return h.drain(ctx, in.ID, false, false)
		})
	huma.Register(api, op("admin-evacuate-node", http.MethodPost, "/api/paas/admin/nodes/{id}/evacuate",
		"Move every app off a dead node without asking it anything", http.StatusAccepted),
		func(ctx context.Context, in *evacuateInput) (*drainOutput, error) {
			return h.drain(ctx, in.ID, true, in.Body.Force)
		})
}

// drain checks that the node can be drained (or evacuated) and starts its workflow. The
// workflow checks the node's state again when it begins: these checks answer the usual
// mistakes at once, with the field at fault.
func (h nodeAdmin) drain(ctx context.Context, nodeID string, evacuate, force bool) (*drainOutput, error) {
	node, err := h.store.NodeByID(ctx, nodeID)
	if err != nil {
		return nil, h.problem(ctx, "node", err)
	}
	// A revoked node is cut off: it can be evacuated (nothing is asked of it), never drained.
	revoked := node.AdminState == db.NodeRevoked
	switch {
	case node.AdminState == db.NodeActive, node.AdminState == db.NodeCordoned:
	case revoked && evacuate:
	case revoked:
		return nil, huma.Error409Conflict(fmt.Sprintf("node %s is revoked: it cannot hand its apps over; evacuate it instead", node.Name),
			&huma.ErrorDetail{Location: "path.id", Message: "the node is revoked", Value: nodeID})
	default:
		return nil, huma.Error409Conflict(fmt.Sprintf("node %s is %s: only an active or cordoned node can be drained or evacuated", node.Name, node.AdminState),
			&huma.ErrorDetail{Location: "path.id", Message: "the node is " + node.AdminState, Value: nodeID})
	}
	online := node.Status == "online"
	switch {
	case !evacuate && !online:
		return nil, huma.Error409Conflict(fmt.Sprintf("node %s is %s: it cannot hand its apps over; evacuate it instead", node.Name, node.Status),
			&huma.ErrorDetail{Location: "path.id", Message: "the node is " + node.Status, Value: nodeID})
	case evacuate && online && !force && !revoked:
		return nil, huma.Error409Conflict(fmt.Sprintf("node %s is online: drain it, or evacuate with force", node.Name),
			&huma.ErrorDetail{Location: "body.force", Message: "the node is online", Value: false})
	}
	others, err := h.store.OtherActiveOnlineNodes(ctx, nodeID)
	if err != nil {
		return nil, h.problem(ctx, "node", err)
	}
	if others == 0 {
		return nil, huma.Error409Conflict(fmt.Sprintf("node %s is the only active, online node of region %s: there is nothing to move its apps to", node.Name, node.Region),
			&huma.ErrorDetail{Location: "path.id", Message: "no other active, online node in the region", Value: nodeID})
	}
	workflowID, err := h.drains.StartDrain(ctx, nodeID, evacuate, principal(ctx).UserID)
	if errors.Is(err, errDrainRunning) {
		return nil, huma.Error409Conflict(fmt.Sprintf("a drain or evacuation of node %s runs already: %s", node.Name, workflowID),
			&huma.ErrorDetail{Location: "path.id", Message: "a drain runs already", Value: nodeID})
	}
	if err != nil {
		h.log.ErrorContext(ctx, "start the node's drain", "node_id", nodeID, "error", err)
		return nil, huma.Error503ServiceUnavailable("the workflow service is unavailable; try again")
	}
	out := &drainOutput{Status: http.StatusAccepted}
	out.Body.WorkflowID, out.Body.Status = workflowID, "draining"
	if evacuate {
		out.Body.Status = "evacuating"
	}
	h.log.InfoContext(ctx, "node drain started", "node_id", nodeID, "node", node.Name, "evacuate", evacuate, "workflow_id", workflowID,
		"user_id", principal(ctx).UserID)
	return out, nil
}
