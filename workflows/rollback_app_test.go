package workflows

import (
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/skypanel/skypanel/activities/control/store"
	"github.com/skypanel/skypanel/activities/node/docker"
)

func TestRollbackStartsTheKeptImageWithItsOwnConfigAndBuildsNothing(t *testing.T) {
	env := newTestEnv()

	const opID = "5b0c0000-0000-4000-8000-000000000009"
	instance := instanceName("hello", opID)
	target := testPlan.AppTarget
	target.Image = "skypanel/app-x:v2"
	env.OnActivity(storeActs.PrepareRollback, mock.Anything, store.PrepareRollbackInput{AppID: testAppID, Version: 1}).
		Return(store.RollbackPlan{AppTarget: target, Image: "skypanel/app-x:v1", CPUMillis: 500, MemoryMB: 512}, nil)
	env.OnActivity(dockerActs.EnsureNetwork, mock.Anything, mock.Anything).Return(docker.EnsureNetworkResult{Network: "n"}, nil)
	env.OnActivity(dockerActs.StartInstance, mock.Anything, mock.MatchedBy(func(in docker.StartInstanceInput) bool {
		return in.Image == "skypanel/app-x:v1" && in.CPUMillis == 500 && in.MemoryMB == 512 && in.InstanceName == instance && in.ReleaseID == opID
	})).Return(docker.StartInstanceResult{InstanceName: instance, HostPort: 40000}, nil).Once()
	env.OnActivity(dockerActs.WaitReady, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(nginxActs.PublishRoute, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(dockerActs.RemoveInstances, mock.Anything, docker.RemoveInstancesInput{AppID: testAppID, Keep: []string{instance}, GracePeriod: testDrain}).
		Return(docker.RemoveInstancesResult{}, nil).Once()
	env.OnActivity(storeActs.CompleteRollback, mock.Anything, store.CompleteRollbackInput{
		AppID: testAppID, OperationID: opID, Version: 1, UserID: "user-1", Instance: instance, URL: testPlan.URL,
	}).Return(nil).Once()
	env.OnActivity(storeActs.ReleaseOperation, mock.Anything, mock.Anything).Return(nil).Once()
	forbidActivities(t, env, gitActs.CloneRepository, dockerActs.BuildImage)

	env.ExecuteWorkflow(RollbackApp, RollbackAppInput{AppID: testAppID, OperationID: opID, Version: 1, UserID: "user-1"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}
