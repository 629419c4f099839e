package workflows

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/skypanel/skypanel/activities/control/store"
	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/activities/node/nginx"
)

func scaleEnv(t *testing.T, running int) (*testsuite.TestWorkflowEnvironment, store.AppTarget) {
	env := newTestEnv()
	target := testPlan.AppTarget
	target.Image, target.ReleaseID = "skypanel/app-x:v1", "rel-1"
	env.OnActivity(storeActs.LoadAppTarget, mock.Anything, mock.Anything).Return(target, nil)
	var list docker.ListInstancesResult
	for i := range running {
		list.Instances = append(list.Instances, docker.Instance{Name: "sp-hello-old-" + strconv.Itoa(i+1), ReleaseID: "rel-1", State: "running", HostPort: 41000 + i})
	}
	list.Instances = append(list.Instances, docker.Instance{Name: "sp-hello-older", ReleaseID: "rel-0", State: "exited"})
	env.OnActivity(dockerActs.ListInstances, mock.Anything, mock.Anything).Return(list, nil)
	env.OnActivity(storeActs.ReleaseOperation, mock.Anything, mock.Anything).Return(nil).Once()
	return env, target
}

func TestScaleUpStartsOnlyTheMissingInstancesAndRoutesAllOfThem(t *testing.T) {
	env, _ := scaleEnv(t, 1)
	const op = "0p0p0p0p-0000-4000-8000-000000000000"
	names := instanceNames("hello", op, 2, 2)
	require.Equal(t, []string{instanceName("hello", op) + "-2", instanceName("hello", op) + "-3"}, names)
	env.OnActivity(dockerActs.EnsureNetwork, mock.Anything, mock.Anything).Return(docker.EnsureNetworkResult{Network: "n"}, nil)
	env.OnActivity(dockerActs.StartInstance, mock.Anything, mock.MatchedBy(func(in docker.StartInstanceInput) bool {
		return in.InstanceName == names[0] && in.ReleaseID == "rel-1" && in.Image == "skypanel/app-x:v1"
	})).Return(docker.StartInstanceResult{HostPort: 42001}, nil).Once()
	env.OnActivity(dockerActs.StartInstance, mock.Anything, mock.MatchedBy(func(in docker.StartInstanceInput) bool {
		return in.InstanceName == names[1]
	})).Return(docker.StartInstanceResult{HostPort: 42002}, nil).Once()
	env.OnActivity(dockerActs.WaitReady, mock.Anything, mock.Anything).Return(nil).Twice()
	env.OnActivity(nginxActs.PublishRoute, mock.Anything, mock.MatchedBy(func(in nginx.PublishRouteInput) bool {
		return len(in.Upstreams) == 3 && in.Upstreams[0] == "127.0.0.1:41000" && in.Upstreams[2] == "127.0.0.1:42002"
	})).Return(nil).Once()
	env.OnActivity(storeActs.SetInstanceCount, mock.Anything, store.SetInstanceCountInput{AppID: testAppID, Instances: 3}).Return(nil).Once()
	// Scaling up removes nothing: neither the instances that served already nor the new ones.
	forbidActivities(t, env, dockerActs.RemoveInstances)

	env.ExecuteWorkflow(ScaleApp, ScaleAppInput{AppID: testAppID, OperationID: op, Instances: 3})
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}

func TestScaleDownUnroutesBeforeRemoving(t *testing.T) {
	env, _ := scaleEnv(t, 3)
	var order []string
	env.OnActivity(nginxActs.PublishRoute, mock.Anything, mock.MatchedBy(func(in nginx.PublishRouteInput) bool {
		return len(in.Upstreams) == 1 && in.Upstreams[0] == "127.0.0.1:41000"
	})).Run(func(mock.Arguments) { order = append(order, "route") }).Return(nil).Once()
	env.OnActivity(dockerActs.RemoveInstances, mock.Anything, docker.RemoveInstancesInput{AppID: testAppID, Keep: []string{"sp-hello-old-1"}, GracePeriod: testDrain}).
		Run(func(mock.Arguments) { order = append(order, "remove") }).Return(docker.RemoveInstancesResult{}, nil).Once()
	env.OnActivity(storeActs.SetInstanceCount, mock.Anything, store.SetInstanceCountInput{AppID: testAppID, Instances: 1}).Return(nil).Once()
	forbidActivities(t, env, dockerActs.StartInstance)

	env.ExecuteWorkflow(ScaleApp, ScaleAppInput{AppID: testAppID, OperationID: "op", Instances: 1})
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
	require.Equal(t, []string{"route", "remove"}, order)
}
