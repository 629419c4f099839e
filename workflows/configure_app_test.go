package workflows

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/skypanel/skypanel/activities/control/store"
	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/activities/node/nginx"
)

func configureEnv(t *testing.T) (*testsuite.TestWorkflowEnvironment, store.AppTarget) {
	t.Helper()
	env := newTestEnv()
	target := testPlan.AppTarget
	target.Image, target.ReleaseID, target.Instances = "skypanel/app-x:v3", "rel-v3", 2
	target.Env = []docker.SealedVar{{Key: "CANARY", Sealed: "v1:k1:sealed-canary"}}
	env.OnActivity(storeActs.LoadAppTarget, mock.Anything, mock.Anything).Return(target, nil)
	env.OnActivity(dockerActs.EnsureNetwork, mock.Anything, mock.Anything).Return(docker.EnsureNetworkResult{Network: "n"}, nil)
	env.OnActivity(storeActs.ReleaseOperation, mock.Anything, mock.Anything).Return(nil).Once()
	return env, target
}

// A config change starts the current image with the stored (sealed) environment on every
// instance, switches, drains the old ones and records a config release: no clone, no build.
func TestConfigureAppRollsTheSameImageOutWithTheNewEnvironment(t *testing.T) {
	env, target := configureEnv(t)
	const opID = "c0f10000-0000-4000-8000-000000000011"
	names := instanceNames("hello", opID, 1, 2)
	env.OnActivity(dockerActs.StartInstance, mock.Anything, mock.MatchedBy(func(in docker.StartInstanceInput) bool {
		return in.Image == target.Image && in.ReleaseID == opID && len(in.Env) == 1 && in.Env[0] == target.Env[0]
	})).Return(func(_ context.Context, in docker.StartInstanceInput) (docker.StartInstanceResult, error) {
		return docker.StartInstanceResult{InstanceName: in.InstanceName, HostPort: 40000 + len(in.InstanceName)}, nil
	}).Twice()
	env.OnActivity(dockerActs.WaitReady, mock.Anything, mock.Anything).Return(nil).Twice()
	env.OnActivity(nginxActs.PublishRoute, mock.Anything, mock.MatchedBy(func(in nginx.PublishRouteInput) bool {
		return in.ReleaseID == opID && len(in.Upstreams) == 2
	})).Return(nil).Once()
	env.OnActivity(dockerActs.RemoveInstances, mock.Anything, docker.RemoveInstancesInput{AppID: testAppID, Keep: names, GracePeriod: testDrain}).
		Return(docker.RemoveInstancesResult{}, nil).Once()
	env.OnActivity(storeActs.CompleteConfigRelease, mock.Anything, store.CompleteConfigReleaseInput{
		AppID: testAppID, OperationID: opID, UserID: "user-1", Description: "Set CANARY", Instance: names[0], URL: testPlan.URL,
	}).Return(nil).Once()
	forbidActivities(t, env, gitActs.CloneRepository, dockerActs.BuildImage)

	env.ExecuteWorkflow(ConfigureApp, ConfigureAppInput{AppID: testAppID, OperationID: opID, UserID: "user-1", Description: "Set CANARY"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}

// An instance that does not come up with the new environment fails the change: the new
// instances go, the old ones keep serving, no release is recorded.
func TestConfigureAppThatFailsKeepsTheOldInstances(t *testing.T) {
	env, _ := configureEnv(t)
	const opID = "c0f10000-0000-4000-8000-000000000012"
	names := instanceNames("hello", opID, 1, 2)
	env.OnActivity(dockerActs.StartInstance, mock.Anything, mock.Anything).
		Return(func(_ context.Context, in docker.StartInstanceInput) (docker.StartInstanceResult, error) {
			return docker.StartInstanceResult{InstanceName: in.InstanceName, HostPort: 41000}, nil
		})
	env.OnActivity(dockerActs.WaitReady, mock.Anything, mock.Anything).Return(errors.New("the app exited: DATABASE_URL is not set"))
	env.OnActivity(dockerActs.RemoveInstances, mock.Anything, docker.RemoveInstancesInput{AppID: testAppID, Names: names}).
		Return(docker.RemoveInstancesResult{}, nil).Once()
	// Any other RemoveInstances (a drain keeping the new ones) would take the old instances.
	forbidActivities(t, env, nginxActs.PublishRoute, dockerActs.RemoveInstances, storeActs.CompleteConfigRelease)

	env.ExecuteWorkflow(ConfigureApp, ConfigureAppInput{AppID: testAppID, OperationID: opID, UserID: "user-1", Description: "Unset DATABASE_URL"})
	require.True(t, env.IsWorkflowCompleted())
	require.Error(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}
