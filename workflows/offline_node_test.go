package workflows

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/skypanel/skypanel/activities/control/store"
)

const offlineReason = "node node-a is offline: it has not reported for more than 30s, so nothing can run there until it is back"

// offlineEnv is an app whose node does not report: every node activity is forbidden, and the
// operation's end is recorded in *ended.
func offlineEnv(t *testing.T, ended *store.ReleaseOperationInput) (*testsuite.TestWorkflowEnvironment, store.AppTarget) {
	env := newTestEnv()
	target := testPlan.AppTarget
	target.Image, target.ReleaseID, target.NodeOffline = "skypanel/app-x:v1", "rel-1", offlineReason
	env.OnActivity(storeActs.LoadAppTarget, mock.Anything, mock.Anything).Return(target, nil)
	env.OnActivity(storeActs.ReleaseOperation, mock.Anything, mock.Anything).
		Run(func(args mock.Arguments) { *ended = args.Get(1).(store.ReleaseOperationInput) }).Return(nil).Once()
	forbidActivities(t, env, dockerActs.EnsureNetwork, dockerActs.StartInstance, dockerActs.ListInstances, dockerActs.RemoveInstances,
		dockerActs.RemoveAppImages, nginxActs.PublishRoute, nginxActs.RemoveRoute)
	return env, target
}

// An operation that needs an offline node fails at once with the node's name and why, instead
// of waiting out the pickup timeout, and touches nothing.
func TestOperationsOnAnOfflineNodeFailAtOnceSayingSo(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(env *testsuite.TestWorkflowEnvironment)
	}{
		{"restart", func(env *testsuite.TestWorkflowEnvironment) {
			env.ExecuteWorkflow(RestartApp, AppOperationInput{AppID: testAppID, OperationID: "op"})
		}},
		{"stop", func(env *testsuite.TestWorkflowEnvironment) {
			env.ExecuteWorkflow(StopApp, AppOperationInput{AppID: testAppID, OperationID: "op"})
		}},
		{"scale", func(env *testsuite.TestWorkflowEnvironment) {
			env.ExecuteWorkflow(ScaleApp, ScaleAppInput{AppID: testAppID, OperationID: "op", Instances: 3})
		}},
		{"rollback", func(env *testsuite.TestWorkflowEnvironment) {
			target := testPlan.AppTarget
			target.NodeOffline = offlineReason
			env.OnActivity(storeActs.PrepareRollback, mock.Anything, mock.Anything).Return(store.RollbackPlan{AppTarget: target, Image: "skypanel/app-x:v0"}, nil)
			env.ExecuteWorkflow(RollbackApp, RollbackAppInput{AppID: testAppID, OperationID: "op", Version: 1})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ended store.ReleaseOperationInput
			env, _ := offlineEnv(t, &ended)
			forbidActivities(t, env, storeActs.MarkAppStopped, storeActs.SetInstanceCount, storeActs.CompleteRollback, storeActs.MarkAppRunning)
			tc.run(env)
			require.Error(t, env.GetWorkflowError())
			require.Equal(t, store.OperationFailed, ended.Status)
			require.True(t, strings.HasPrefix(ended.Reason, "node node-a is offline"), ended.Reason)
		})
	}
}

// Deleting an app whose node is offline does not wait for the node: the records go, and the
// node's agent removes what it still runs on its next report (the app is foreign to it then).
func TestDeleteOfAnAppOnAnOfflineNodeRemovesTheRecordsWithoutTheNode(t *testing.T) {
	var ended store.ReleaseOperationInput
	env, _ := offlineEnv(t, &ended)
	env.OnActivity(storeActs.DeleteApplicationRecord, mock.Anything, store.DeleteApplicationRecordInput{AppID: testAppID}).Return(nil).Once()
	env.OnActivity(billActs.SettleApp, mock.Anything, mock.Anything).Return(0, nil).Once()
	env.ExecuteWorkflow(DeleteApp, AppOperationInput{AppID: testAppID, OperationID: "op"})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, store.OperationSucceeded, ended.Status)
	env.AssertExpectations(t)
}
