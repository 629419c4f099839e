package workflows

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/skypanel/skypanel/activities/control/store"
	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/activities/node/nginx"
	sptemporal "github.com/skypanel/skypanel/temporal"
)

const (
	moveOp     = "70e1a0e1-0000-4000-8000-000000000000"
	moveDestID = "node-2-uuid"
	moveImage  = "127.0.0.1:5000/skypanel/app-x@sha256:0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
)

// stepLog records which activity ran on which node's queue, in order.
type stepLog struct {
	mu    sync.Mutex
	steps []string
}

func (l *stepLog) add(name string) func(mock.Arguments) {
	return func(args mock.Arguments) {
		queue := activity.GetInfo(args.Get(0).(context.Context)).TaskQueue
		where := "old"
		switch queue {
		case sptemporal.NodeTaskQueue(moveDestID):
			where = "new"
		case sptemporal.ControlTaskQueue:
			where = "control"
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.steps = append(l.steps, name+"@"+where)
	}
}

func (l *stepLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.steps...)
}

// moveEnv is an app of 2 instances of rel-1 (a digest reference) on testNodeID, in status,
// whose move goes to moveDestID; the move's end is captured into *ended.
func moveEnv(status string, ended *store.ReleaseOperationInput) (*testsuite.TestWorkflowEnvironment, *stepLog) {
	env := newTestEnv()
	log := &stepLog{}
	t := testPlan.AppTarget
	t.Status, t.Image, t.ReleaseID, t.Instances = status, moveImage, "rel-1", 2
	env.OnActivity(storeActs.LoadAppTarget, mock.Anything, store.LoadAppTargetInput{AppID: testAppID}).Return(t, nil).Once()
	env.OnActivity(storeActs.ChooseMoveDestination, mock.Anything, store.ChooseMoveDestinationInput{AppID: testAppID, FromNodeID: testNodeID}).
		Return(store.MoveDestination{NodeID: moveDestID, NodeName: "worker-2", FromName: "worker-1"}, nil).Once()
	env.OnActivity(storeActs.ReleaseOperation, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		*ended = args.Get(1).(store.ReleaseOperationInput)
	}).Return(nil).Once()
	return env, log
}

func moveStartsOK(env *testsuite.TestWorkflowEnvironment, log *stepLog) {
	env.OnActivity(dockerActs.EnsureNetwork, mock.Anything, mock.Anything).Return(docker.EnsureNetworkResult{Network: "n"}, nil)
	for i, name := range instanceNames("hello", moveOp, 1, 2) {
		env.OnActivity(dockerActs.StartInstance, mock.Anything, mock.MatchedBy(func(in docker.StartInstanceInput) bool {
			return in.InstanceName == name && in.ReleaseID == "rel-1" && in.Image == moveImage
		})).Run(log.add("start")).Return(docker.StartInstanceResult{HostPort: 43001 + i}, nil).Once()
	}
	env.OnActivity(dockerActs.WaitReady, mock.Anything, mock.Anything).Return(nil).Times(2)
}

// A running app: started on the destination from its release's digest, routed there, then
// placed there, and only then its old route and instances go.
func TestMoveStartsOnTheDestinationRoutesSwitchesThenDrainsTheOld(t *testing.T) {
	var ended store.ReleaseOperationInput
	env, log := moveEnv(store.AppRunning, &ended)
	moveStartsOK(env, log)
	env.OnActivity(nginxActs.PublishRoute, mock.Anything, mock.MatchedBy(func(in nginx.PublishRouteInput) bool {
		return in.ReleaseID == "rel-1" && len(in.Upstreams) == 2 && in.Upstreams[0] == "127.0.0.1:43001"
	})).Run(log.add("route")).Return(nil).Once()
	env.OnActivity(storeActs.SwitchAppNode, mock.Anything, store.SwitchAppNodeInput{
		AppID: testAppID, From: testNodeID, To: moveDestID, Instance: instanceNames("hello", moveOp, 1, 1)[0],
	}).Run(log.add("switch")).Return(true, nil).Once()
	env.OnActivity(nginxActs.RemoveRoute, mock.Anything, nginx.RemoveRouteInput{AppID: testAppID, Drain: testDrain}).
		Run(log.add("unroute")).Return(nil).Once()
	env.OnActivity(dockerActs.RemoveInstances, mock.Anything, docker.RemoveInstancesInput{AppID: testAppID, GracePeriod: testDrain}).
		Run(log.add("drain")).Return(docker.RemoveInstancesResult{}, nil).Once()

	env.ExecuteWorkflow(MoveApp, MoveAppInput{AppID: testAppID, OperationID: moveOp, FromNodeID: testNodeID})
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
	require.Equal(t, []string{"start@new", "start@new", "route@new", "switch@control", "unroute@old", "drain@old"}, log.list())
	require.Equal(t, store.OperationSucceeded, ended.Status)
	require.Equal(t, "moved from node worker-1 to node worker-2 (2 instances of release rel-1, pulled by digest)", ended.Reason)
}

// An instance that never answers on the destination: what the move started there goes, the
// app stays placed where it was and its old node is not touched.
func TestAFailedStartOnTheDestinationRemovesItAndLeavesTheApp(t *testing.T) {
	var ended store.ReleaseOperationInput
	env, log := moveEnv(store.AppRunning, &ended)
	env.OnActivity(dockerActs.EnsureNetwork, mock.Anything, mock.Anything).Return(docker.EnsureNetworkResult{Network: "n"}, nil)
	env.OnActivity(dockerActs.StartInstance, mock.Anything, mock.Anything).Run(log.add("start")).Return(docker.StartInstanceResult{HostPort: 43001}, nil).Times(2)
	env.OnActivity(dockerActs.WaitReady, mock.Anything, mock.Anything).
		Return(temporal.NewNonRetryableApplicationError("the instance did not answer within 60s", "NotReady", nil)).Times(2)
	env.OnActivity(nginxActs.RemoveRoute, mock.Anything, nginx.RemoveRouteInput{AppID: testAppID}).Run(log.add("unroute")).Return(nil).Once()
	env.OnActivity(dockerActs.RemoveInstances, mock.Anything, docker.RemoveInstancesInput{AppID: testAppID, Names: instanceNames("hello", moveOp, 1, 2)}).
		Run(log.add("remove")).Return(docker.RemoveInstancesResult{}, nil).Once()
	forbidActivities(t, env, storeActs.SwitchAppNode, nginxActs.PublishRoute)

	env.ExecuteWorkflow(MoveApp, MoveAppInput{AppID: testAppID, OperationID: moveOp, FromNodeID: testNodeID})
	require.Error(t, env.GetWorkflowError())
	env.AssertExpectations(t)
	require.Equal(t, []string{"start@new", "start@new", "unroute@new", "remove@new"}, log.list())
	require.Equal(t, store.OperationFailed, ended.Status)
	require.Equal(t, "moving from node worker-1 to node worker-2 failed: the instance did not answer within 60s; the application stays on node worker-1", ended.Reason)
}

// An evacuation never asks the old node anything: it may be dead.
func TestAnEvacuationNeverTouchesTheOldNode(t *testing.T) {
	var ended store.ReleaseOperationInput
	env, log := moveEnv(store.AppRunning, &ended)
	moveStartsOK(env, log)
	env.OnActivity(nginxActs.PublishRoute, mock.Anything, mock.Anything).Run(log.add("route")).Return(nil).Once()
	env.OnActivity(storeActs.SwitchAppNode, mock.Anything, mock.Anything).Run(log.add("switch")).Return(true, nil).Once()
	forbidActivities(t, env, nginxActs.RemoveRoute, dockerActs.RemoveInstances)

	env.ExecuteWorkflow(MoveApp, MoveAppInput{AppID: testAppID, OperationID: moveOp, FromNodeID: testNodeID, Evacuate: true})
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
	require.Equal(t, []string{"start@new", "start@new", "route@new", "switch@control"}, log.list())
	require.Contains(t, ended.Reason, "the old node was left alone (evacuated)")
}

// A stopped app starts nothing: its stopped page goes up on the destination, it is placed
// there, and its old route goes.
func TestAStoppedAppOnlyChangesNodeWithItsPage(t *testing.T) {
	var ended store.ReleaseOperationInput
	env, log := moveEnv(store.AppStopped, &ended)
	env.OnActivity(nginxActs.PublishRoute, mock.Anything, mock.MatchedBy(func(in nginx.PublishRouteInput) bool {
		return in.Mode == nginx.RouteStopped && in.ReleaseID == moveOp
	})).Run(log.add("page")).Return(nil).Once()
	env.OnActivity(storeActs.SwitchAppNode, mock.Anything, store.SwitchAppNodeInput{AppID: testAppID, From: testNodeID, To: moveDestID}).
		Run(log.add("switch")).Return(true, nil).Once()
	env.OnActivity(nginxActs.RemoveRoute, mock.Anything, mock.Anything).Run(log.add("unroute")).Return(nil).Once()
	env.OnActivity(dockerActs.RemoveInstances, mock.Anything, mock.Anything).Run(log.add("drain")).Return(docker.RemoveInstancesResult{}, nil).Once()
	forbidActivities(t, env, dockerActs.StartInstance)

	env.ExecuteWorkflow(MoveApp, MoveAppInput{AppID: testAppID, OperationID: moveOp, FromNodeID: testNodeID})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []string{"page@new", "switch@control", "unroute@old", "drain@old"}, log.list())
	require.Contains(t, ended.Reason, "it is stopped: its page is served there")
}

// The app left the node meanwhile (a move queued twice): nothing changes.
func TestAMoveOfAnAppNoLongerOnTheNodeChangesNothing(t *testing.T) {
	var ended store.ReleaseOperationInput
	env := newTestEnv()
	t2 := testPlan.AppTarget
	t2.NodeID, t2.Status = moveDestID, store.AppRunning
	env.OnActivity(storeActs.LoadAppTarget, mock.Anything, mock.Anything).Return(t2, nil).Once()
	env.OnActivity(storeActs.ReleaseOperation, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		ended = args.Get(1).(store.ReleaseOperationInput)
	}).Return(nil).Once()
	forbidActivities(t, env, storeActs.ChooseMoveDestination, storeActs.SwitchAppNode, dockerActs.StartInstance)

	env.ExecuteWorkflow(MoveApp, MoveAppInput{AppID: testAppID, OperationID: moveOp, FromNodeID: testNodeID})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, store.OperationSucceeded, ended.Status)
	require.Contains(t, ended.Reason, "already moved")
}

// No node has room: the move fails with the refusal's words, and starts nothing.
func TestAMoveWithoutRoomFailsWithWhy(t *testing.T) {
	var ended store.ReleaseOperationInput
	env := newTestEnv()
	t2 := testPlan.AppTarget
	t2.Status = store.AppRunning
	env.OnActivity(storeActs.LoadAppTarget, mock.Anything, mock.Anything).Return(t2, nil).Once()
	env.OnActivity(storeActs.ChooseMoveDestination, mock.Anything, mock.Anything).Return(store.MoveDestination{},
		temporal.NewNonRetryableApplicationError("region eu has no other active, online node than worker-1 to move the application to: add a node to it", store.ErrTypeNoNode, errors.New("no room"))).Once()
	env.OnActivity(storeActs.ReleaseOperation, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		ended = args.Get(1).(store.ReleaseOperationInput)
	}).Return(nil).Once()
	forbidActivities(t, env, dockerActs.StartInstance, storeActs.SwitchAppNode)

	env.ExecuteWorkflow(MoveApp, MoveAppInput{AppID: testAppID, OperationID: moveOp, FromNodeID: testNodeID})
	require.Error(t, env.GetWorkflowError())
	require.Equal(t, store.OperationFailed, ended.Status)
	require.Contains(t, ended.Reason, "no other active, online node than worker-1")
}
