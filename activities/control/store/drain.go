package store

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/db"
)

// App statuses a move tells apart (db's, so workflows need not import db).
const (
	AppStopped = db.AppStopped
	OpMove     = db.OpMove
)

// ChooseMoveDestinationInput names the app a move takes off FromNodeID.
type ChooseMoveDestinationInput struct {
	AppID      string
	FromNodeID string
}

// MoveDestination is where a move takes the app, and the name of the node it leaves.
type MoveDestination struct {
	NodeID   string
	NodeName string
	FromName string
}

// ChooseMoveDestination picks an active, online node of the app's region other than
// FromNodeID with room for it (db.ChooseMoveDestination). No room is not retried: the move
// fails with the refusal's words.
func (a *Activities) ChooseMoveDestination(ctx context.Context, in ChooseMoveDestinationInput) (MoveDestination, error) {
	dest, err := a.Store.ChooseMoveDestination(ctx, in.AppID, in.FromNodeID)
	if err != nil {
		return MoveDestination{}, notRetryable(err)
	}
	return MoveDestination{NodeID: dest.NodeID, NodeName: dest.NodeName, FromName: dest.FromName}, nil
}

// SwitchAppNodeInput moves the app's placement From → To; Instance (when set) is the instance
// that now serves it.
type SwitchAppNodeInput struct {
	AppID    string
	From     string
	To       string
	Instance string
}

// SwitchAppNode places the app on To if it is still on From, and says whether it is on To now.
func (a *Activities) SwitchAppNode(ctx context.Context, in SwitchAppNodeInput) (bool, error) {
	return a.Store.SwitchApplicationNode(ctx, in.AppID, in.From, in.To, in.Instance)
}

// BeginNodeDrainInput names the node a drain (or an evacuation) empties, and who asked.
type BeginNodeDrainInput struct {
	NodeID      string
	Evacuate    bool
	RequestedBy string
}

// BeginNodeDrain marks the node draining (db.BeginNodeDrain); a node in a state that cannot be
// drained fails the drain at once.
func (a *Activities) BeginNodeDrain(ctx context.Context, in BeginNodeDrainInput) error {
	err := a.Store.BeginNodeDrain(ctx, in.NodeID, in.Evacuate, in.RequestedBy)
	var invalid *db.InvalidStateError
	switch {
	case errors.As(err, &invalid):
		return temporal.NewNonRetryableApplicationError(invalid.Reason, ErrTypeNodeNotDrainable, nil)
	case errors.Is(err, db.ErrNotFound):
		return temporal.NewNonRetryableApplicationError("the node no longer exists", ErrTypeNodeNotDrainable, nil)
	}
	return err
}

// ErrTypeNodeNotDrainable: the node is in no state to be drained (drained, revoked, gone).
const ErrTypeNodeNotDrainable = "NodeNotDrainable"

// ListNodeAppsInput names a node.
type ListNodeAppsInput struct {
	NodeID string
}

// NodeApp is an app placed on a node.
type NodeApp struct {
	OrgID string
	AppID string
	Name  string
}

// ListNodeApps lists the apps placed on the node (but those being deleted).
func (a *Activities) ListNodeApps(ctx context.Context, in ListNodeAppsInput) ([]NodeApp, error) {
	apps, err := a.Store.NodeApps(ctx, in.NodeID)
	if err != nil {
		return nil, err
	}
	out := make([]NodeApp, len(apps))
	for i, app := range apps {
		out[i] = NodeApp{OrgID: app.OrgID, AppID: app.AppID, Name: app.Name}
	}
	return out, nil
}

// QueueMoveInput is a move a drain asks for.
type QueueMoveInput struct {
	OrgID      string
	AppID      string
	FromNodeID string
	Evacuate   bool
	Via        string // "drain"
}

// QueuedMove is the queued move's id, or why the app refused it.
type QueuedMove struct {
	OperationID string
	Refused     string `json:",omitempty"`
	// Gone: the app no longer exists.
	Gone bool `json:",omitempty"`
}

// QueueMove queues a move in the app's turn through the operations owner. An app that refuses
// it (being deleted, gone) is answered, not failed: the drain records it and goes on.
func (a *Activities) QueueMove(ctx context.Context, in QueueMoveInput) (QueuedMove, error) {
	if a.Operations == nil {
		return QueuedMove{}, errors.New("store activities: Operations is not set")
	}
	id, err := a.Operations.EnqueueMove(ctx, in.OrgID, in.AppID, in.FromNodeID, in.Evacuate, in.Via)
	var invalid *db.InvalidStateError
	var full *db.QueueFullError
	switch {
	case err == nil:
		return QueuedMove{OperationID: id}, nil
	case errors.Is(err, db.ErrNotFound):
		return QueuedMove{Gone: true, Refused: "the application no longer exists"}, nil
	case errors.As(err, &invalid):
		activity.GetLogger(ctx).Info("app refused the move", "app_id", in.AppID, "reason", invalid.Reason)
		return QueuedMove{Refused: invalid.Reason}, nil
	case errors.As(err, &full):
		return QueuedMove{Refused: full.Error()}, nil
	}
	return QueuedMove{}, fmt.Errorf("queue a move of app %s: %w", in.AppID, err)
}

// OperationStateInput names an operation.
type OperationStateInput struct {
	OperationID string
}

// OperationState is where an operation stands.
type OperationState struct {
	Status string
	Reason string
}

// Active says whether the operation still waits or runs.
func (s OperationState) Active() bool {
	return s.Status == db.OperationQueued || s.Status == db.OperationRunning
}

// ReadOperationState reads an operation's status and reason. An operation that is gone (its
// app was deleted, and its rows with it) reads as cancelled.
func (a *Activities) ReadOperationState(ctx context.Context, in OperationStateInput) (OperationState, error) {
	st, err := a.Store.OperationStateByID(ctx, in.OperationID)
	if errors.Is(err, db.ErrNotFound) {
		return OperationState{Status: db.OperationCancelled, Reason: "the application was deleted"}, nil
	}
	if err != nil {
		return OperationState{}, err
	}
	return OperationState{Status: st.Status, Reason: st.Reason}, nil
}

// FinishNodeDrainInput is how a drain ended: every app moved (Drained), or not, with the
// event's detail.
type FinishNodeDrainInput struct {
	NodeID  string
	Drained bool
	Detail  string
}

// FinishNodeDrain marks the node drained, or cordoned again with the apps that did not move.
func (a *Activities) FinishNodeDrain(ctx context.Context, in FinishNodeDrainInput) error {
	return a.Store.FinishNodeDrain(ctx, in.NodeID, in.Drained, in.Detail)
}
