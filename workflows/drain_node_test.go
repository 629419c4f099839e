package workflows

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/skypanel/skypanel/activities/control/store"
)

// drainEnv is a node with apps a and b whose moves are queued as op-a and op-b; each move's
// operation reads running twice, then ends as ends says.
func drainEnv(t *testing.T, evacuate bool, ends map[string]store.OperationState) (*testsuite.TestWorkflowEnvironment, *[]string, *store.FinishNodeDrainInput) {
	env := newTestEnv()
	var steps []string
	var finished store.FinishNodeDrainInput
	env.OnActivity(storeActs.BeginNodeDrain, mock.Anything, store.BeginNodeDrainInput{NodeID: testNodeID, Evacuate: evacuate, RequestedBy: "admin-1"}).
		Run(func(mock.Arguments) { steps = append(steps, "begin") }).Return(nil).Once()
	env.OnActivity(storeActs.ListNodeApps, mock.Anything, store.ListNodeAppsInput{NodeID: testNodeID}).
		Return([]store.NodeApp{{OrgID: "org-1", AppID: "a", Name: "alpha"}, {OrgID: "org-2", AppID: "b", Name: "beta"}}, nil).Once()
	for _, app := range []string{"a", "b"} {
		env.OnActivity(storeActs.QueueMove, mock.Anything, mock.MatchedBy(func(in store.QueueMoveInput) bool {
			return in.AppID == app && in.FromNodeID == testNodeID && in.Evacuate == evacuate && in.Via == "drain"
		})).Run(func(mock.Arguments) { steps = append(steps, "queue "+app) }).Return(store.QueuedMove{OperationID: "op-" + app}, nil).Once()
		polls := 0
		env.OnActivity(storeActs.ReadOperationState, mock.Anything, store.OperationStateInput{OperationID: "op-" + app}).Return(
			func(context.Context, store.OperationStateInput) (store.OperationState, error) {
				polls++
				if polls < 3 {
					return store.OperationState{Status: "running"}, nil
				}
				steps = append(steps, "ended "+app)
				return ends[app], nil
			})
	}
	env.OnActivity(storeActs.FinishNodeDrain, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		finished = args.Get(1).(store.FinishNodeDrainInput)
		steps = append(steps, "finish")
	}).Return(nil).Once()
	return env, &steps, &finished
}

// Every app moved, one after the other (the second is queued only once the first ended): the
// node is drained, and the result lists each app's move.
func TestADrainMovesEveryAppInTurnThenMarksTheNodeDrained(t *testing.T) {
	env, steps, finished := drainEnv(t, false, map[string]store.OperationState{
		"a": {Status: store.OperationSucceeded, Reason: "moved from node worker-1 to node worker-2 (1 instance …)"},
		"b": {Status: store.OperationSucceeded, Reason: "moved from node worker-1 to node worker-3 (it is stopped …)"},
	})
	env.ExecuteWorkflow(DrainNode, DrainNodeInput{NodeID: testNodeID, RequestedBy: "admin-1"})
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
	require.Equal(t, []string{"begin", "queue a", "ended a", "queue b", "ended b", "finish"}, *steps)
	require.True(t, finished.Drained)
	require.Equal(t, "drained: 2 of 2 applications moved", finished.Detail)
	var result DrainNodeResult
	require.NoError(t, env.GetWorkflowResult(&result))
	require.Len(t, result.Apps, 2)
	require.Equal(t, DrainedApp{AppID: "a", Name: "alpha", OperationID: "op-a", Result: DrainMoved,
		Reason: "moved from node worker-1 to node worker-2 (1 instance …)"}, result.Apps[0])
}

// A move that fails leaves the node cordoned, its event naming the app and why; the other apps
// are still moved.
func TestAFailedMoveLeavesTheNodeCordonedWithWhy(t *testing.T) {
	env, steps, finished := drainEnv(t, true, map[string]store.OperationState{
		"a": {Status: store.OperationFailed, Reason: "no other node of region eu than worker-1 has 1024 MiB of memory unreserved"},
		"b": {Status: store.OperationSucceeded, Reason: "moved"},
	})
	env.ExecuteWorkflow(DrainNode, DrainNodeInput{NodeID: testNodeID, Evacuate: true, RequestedBy: "admin-1"})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []string{"begin", "queue a", "ended a", "queue b", "ended b", "finish"}, *steps)
	require.False(t, finished.Drained)
	require.True(t, strings.HasPrefix(finished.Detail, "1 of 2 applications did not move, the node is cordoned: alpha (a): no other node"), finished.Detail)
	var result DrainNodeResult
	require.NoError(t, env.GetWorkflowResult(&result))
	require.Equal(t, DrainFailed, result.Apps[0].Result)
	require.Equal(t, DrainMoved, result.Apps[1].Result)
}

// An app that refuses the move (being deleted) counts as not moved; one deleted meanwhile
// does not hold the drain.
func TestRefusedAndGoneAppsOfADrain(t *testing.T) {
	env := newTestEnv()
	var finished store.FinishNodeDrainInput
	env.OnActivity(storeActs.BeginNodeDrain, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(storeActs.ListNodeApps, mock.Anything, mock.Anything).
		Return([]store.NodeApp{{AppID: "a", Name: "alpha"}, {AppID: "b", Name: "beta"}}, nil).Once()
	env.OnActivity(storeActs.QueueMove, mock.Anything, mock.MatchedBy(func(in store.QueueMoveInput) bool { return in.AppID == "a" })).
		Return(store.QueuedMove{Gone: true, Refused: "the application no longer exists"}, nil).Once()
	env.OnActivity(storeActs.QueueMove, mock.Anything, mock.MatchedBy(func(in store.QueueMoveInput) bool { return in.AppID == "b" })).
		Return(store.QueuedMove{Refused: "the application is being deleted"}, nil).Once()
	env.OnActivity(storeActs.FinishNodeDrain, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		finished = args.Get(1).(store.FinishNodeDrainInput)
	}).Return(nil).Once()
	forbidActivities(t, env, storeActs.ReadOperationState)

	env.ExecuteWorkflow(DrainNode, DrainNodeInput{NodeID: testNodeID})
	require.NoError(t, env.GetWorkflowError())
	require.False(t, finished.Drained)
	require.Contains(t, finished.Detail, "beta (b): the move was refused: the application is being deleted")
	require.NotContains(t, finished.Detail, "alpha")
}
