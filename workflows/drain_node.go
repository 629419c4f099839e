package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/skypanel/skypanel/activities/control/store"
)

// DrainNodeInput names the node to empty. Evacuate: the node is dead (or must not be asked
// anything): its apps' moves never touch it.
type DrainNodeInput struct {
	NodeID      string
	Evacuate    bool
	RequestedBy string // user id
}

// Results of one app of a drain.
const (
	DrainMoved  = "moved"
	DrainFailed = "failed"
	DrainGone   = "gone" // deleted meanwhile: nothing left to move
)

// DrainedApp is what became of one app of the node.
type DrainedApp struct {
	AppID       string
	Name        string
	OperationID string `json:",omitempty"`
	Result      string // DrainMoved, DrainFailed or DrainGone
	Reason      string // the move's outcome, or why it failed
}

// DrainNodeResult lists every app the node held and what became of it.
type DrainNodeResult struct {
	Apps []DrainedApp
}

// Moves are awaited by polling their operation's state: first after moveCheckFirst, then
// less often up to moveCheckMax, so that a move of several minutes costs tens of history
// events, not hundreds.
const (
	moveCheckFirst = 2 * time.Second
	moveCheckMax   = 15 * time.Second
)

// DrainNode empties a node: it marks it draining (nothing new is placed there), then moves its
// apps one after the other, each through a `move` operation queued in the app's turn (so a
// move never runs beside another operation of the app), waiting for each to end. Every app
// moved: the node is drained. Some did not: it is cordoned again, with the apps that stayed and
// why in its drain_incomplete event, and can be drained again.
func DrainNode(ctx workflow.Context, in DrainNodeInput) (DrainNodeResult, error) {
	var result DrainNodeResult
	if err := workflow.ExecuteActivity(controlContext(ctx), storeActs.BeginNodeDrain, store.BeginNodeDrainInput{
		NodeID: in.NodeID, Evacuate: in.Evacuate, RequestedBy: in.RequestedBy,
	}).Get(ctx, nil); err != nil {
		return result, err
	}
	var apps []store.NodeApp
	if err := workflow.ExecuteActivity(controlContext(ctx), storeActs.ListNodeApps, store.ListNodeAppsInput{NodeID: in.NodeID}).Get(ctx, &apps); err != nil {
		return result, err
	}
	for _, app := range apps {
		moved, err := moveOff(ctx, in, app)
		if err != nil {
			return result, err
		}
		result.Apps = append(result.Apps, moved)
	}
	drained, detail := summarizeDrain(in, result.Apps)
	err := workflow.ExecuteActivity(controlContext(ctx), storeActs.FinishNodeDrain, store.FinishNodeDrainInput{
		NodeID: in.NodeID, Drained: drained, Detail: detail,
	}).Get(ctx, nil)
	return result, err
}

// moveOff queues the app's move and waits until it ends.
func moveOff(ctx workflow.Context, in DrainNodeInput, app store.NodeApp) (DrainedApp, error) {
	out := DrainedApp{AppID: app.AppID, Name: app.Name}
	var queued store.QueuedMove
	if err := workflow.ExecuteActivity(controlContext(ctx), storeActs.QueueMove, store.QueueMoveInput{
		OrgID: app.OrgID, AppID: app.AppID, FromNodeID: in.NodeID, Evacuate: in.Evacuate, Via: "drain",
	}).Get(ctx, &queued); err != nil {
		return out, err
	}
	switch {
	case queued.Gone:
		out.Result, out.Reason = DrainGone, queued.Refused
		return out, nil
	case queued.OperationID == "":
		out.Result, out.Reason = DrainFailed, "the move was refused: "+queued.Refused
		return out, nil
	}
	out.OperationID = queued.OperationID
	wait := moveCheckFirst
	for {
		if err := workflow.Sleep(ctx, wait); err != nil {
			return out, err
		}
		wait = min(wait*3/2, moveCheckMax)
		var state store.OperationState
		if err := workflow.ExecuteActivity(controlContext(ctx), storeActs.ReadOperationState, store.OperationStateInput{
			OperationID: queued.OperationID,
		}).Get(ctx, &state); err != nil {
			return out, err
		}
		if state.Active() {
			continue
		}
		out.Result, out.Reason = DrainFailed, state.Reason
		if state.Status == store.OperationSucceeded {
			out.Result = DrainMoved
		}
		return out, nil
	}
}

// summarizeDrain says whether every app left the node, and the event's detail.
func summarizeDrain(in DrainNodeInput, apps []DrainedApp) (bool, string) {
	var failed []string
	moved := 0
	for _, app := range apps {
		switch app.Result {
		case DrainMoved:
			moved++
		case DrainFailed:
			failed = append(failed, fmt.Sprintf("%s (%s): %s", app.Name, app.AppID, app.Reason))
		}
	}
	verb := "drained"
	if in.Evacuate {
		verb = "evacuated"
	}
	if len(failed) == 0 {
		return true, fmt.Sprintf("%s: %d of %d %s moved", verb, moved, len(apps), plural(len(apps), "application", "applications"))
	}
	return false, fmt.Sprintf("%d of %d %s did not move, the node is cordoned: %s",
		len(failed), len(apps), plural(len(apps), "application", "applications"), strings.Join(failed, "; "))
}
