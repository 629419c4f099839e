package workflows

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/activities/control/store"
	"github.com/skypanel/skypanel/activities/node/docker"
)

func databaseIn(status string) store.DatabaseTarget {
	t := testDatabase
	t.Status = status
	return t
}

// A suspension stops the database's container on its node (never removes it: the container,
// its volume and data stay), then records it suspended, in its own turn.
func TestSuspendDatabaseStopsItsContainerAndKeepsItsData(t *testing.T) {
	env := newTestEnv()
	var order []string
	env.OnActivity(storeActs.LoadDatabaseTarget, mock.Anything, store.LoadDatabaseTargetInput{DatabaseID: testDatabaseID}).
		Return(databaseIn(store.DatabaseAvailable), nil).Once()
	env.OnActivity(dockerActs.StopDatabase, mock.Anything, docker.StopDatabaseInput{DatabaseID: testDatabaseID, OrgID: "org-1"}).
		Return(func(context.Context, docker.StopDatabaseInput) error { order = append(order, "stop"); return nil }).Once()
	env.OnActivity(storeActs.SetDatabaseStatus, mock.Anything, store.SetDatabaseStatusInput{
		DatabaseID: testDatabaseID, Status: store.DatabaseSuspended, Reason: SuspendedDatabaseReason,
	}).Return(func(context.Context, store.SetDatabaseStatusInput) error {
		order = append(order, "suspended")
		return nil
	}).Once()
	env.OnActivity(storeActs.ReleaseDatabaseOperation, mock.Anything, mock.MatchedBy(func(in store.ReleaseDatabaseOperationInput) bool {
		return in.DatabaseID == testDatabaseID && in.Status == store.OperationSucceeded
	})).Return(nil).Once()
	forbidActivities(t, env, dockerActs.RemoveDatabase, dockerActs.StartDatabase)

	env.ExecuteWorkflow(SuspendDatabase, DatabaseOperationInput{DatabaseID: testDatabaseID, OperationID: "op-1"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []string{"stop", "suspended"}, order, "the database is recorded suspended (its billing ends) once it is stopped")
	env.AssertExpectations(t)
}

// A database that is no longer available when the suspension's turn comes (deleted, suspended
// already, failed) is left as it is.
func TestSuspendDatabaseLeavesADatabaseThatIsNotAvailable(t *testing.T) {
	for _, status := range []string{store.DatabaseSuspended, "deleting", store.DatabaseFailed} {
		env := newTestEnv()
		env.OnActivity(storeActs.LoadDatabaseTarget, mock.Anything, store.LoadDatabaseTargetInput{DatabaseID: testDatabaseID}).
			Return(databaseIn(status), nil).Once()
		env.OnActivity(storeActs.ReleaseDatabaseOperation, mock.Anything, mock.MatchedBy(func(in store.ReleaseDatabaseOperationInput) bool {
			return in.Status == store.OperationSucceeded && in.Reason == "nothing to suspend: the database is "+status
		})).Return(nil).Once()
		forbidActivities(t, env, dockerActs.StopDatabase, dockerActs.RemoveDatabase, storeActs.SetDatabaseStatus)
		env.ExecuteWorkflow(SuspendDatabase, DatabaseOperationInput{DatabaseID: testDatabaseID, OperationID: "op-1"})
		require.True(t, env.IsWorkflowCompleted())
		require.NoError(t, env.GetWorkflowError(), status)
		env.AssertExpectations(t)
	}
}

// A resumption starts the suspended database's own container again (its volume, its data),
// waits for its health check, and only then records it available, which reopens its usage.
func TestResumeDatabaseStartsItWaitsHealthyThenMarksItAvailable(t *testing.T) {
	env := newTestEnv()
	var order []string
	env.OnActivity(storeActs.LoadDatabaseTarget, mock.Anything, store.LoadDatabaseTargetInput{DatabaseID: testDatabaseID}).
		Return(databaseIn(store.DatabaseSuspended), nil).Once()
	env.OnActivity(dockerActs.StartDatabase, mock.Anything, docker.StartDatabaseInput{
		DatabaseID: testDatabaseID, OrgID: "org-1", Engine: testDatabase.Engine, User: "app", Database: "main",
		PasswordSealed: "v1:k1:sealed", CPUMillis: 500, MemoryMB: 256, StorageMB: 1024,
	}).Return(func(context.Context, docker.StartDatabaseInput) (docker.StartDatabaseResult, error) {
		order = append(order, "start")
		return docker.StartDatabaseResult{ContainerID: "c1"}, nil
	}).Once()
	env.OnActivity(dockerActs.WaitDatabaseHealthy, mock.Anything, mock.Anything).
		Return(func(context.Context, docker.WaitDatabaseHealthyInput) error {
			order = append(order, "healthy")
			return nil
		}).Once()
	env.OnActivity(storeActs.SetDatabaseStatus, mock.Anything, store.SetDatabaseStatusInput{DatabaseID: testDatabaseID, Status: store.DatabaseAvailable}).
		Return(func(context.Context, store.SetDatabaseStatusInput) error {
			order = append(order, "available")
			return nil
		}).Once()
	env.OnActivity(storeActs.ReleaseDatabaseOperation, mock.Anything, mock.MatchedBy(func(in store.ReleaseDatabaseOperationInput) bool {
		return in.DatabaseID == testDatabaseID && in.Status == store.OperationSucceeded
	})).Return(nil).Once()
	forbidActivities(t, env, dockerActs.RemoveDatabase, dockerActs.StopDatabase)

	env.ExecuteWorkflow(ResumeDatabase, DatabaseOperationInput{DatabaseID: testDatabaseID, OperationID: "op-1"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []string{"start", "healthy", "available"}, order)
	env.AssertExpectations(t)
}

// A resumed database that does not get healthy stays suspended (not billed), saying why, and
// nothing of it is removed: the next billing run tries again.
func TestResumeDatabaseThatDoesNotGetHealthyStaysSuspended(t *testing.T) {
	env := newTestEnv()
	env.OnActivity(storeActs.LoadDatabaseTarget, mock.Anything, mock.Anything).Return(databaseIn(store.DatabaseSuspended), nil).Once()
	env.OnActivity(dockerActs.StartDatabase, mock.Anything, mock.Anything).Return(docker.StartDatabaseResult{ContainerID: "c1"}, nil).Once()
	env.OnActivity(dockerActs.WaitDatabaseHealthy, mock.Anything, mock.Anything).
		Return(temporal.NewNonRetryableApplicationError("the database did not become healthy", docker.ErrTypeDatabaseNotHealthy, nil)).Once()
	env.OnActivity(storeActs.SetDatabaseStatus, mock.Anything, mock.MatchedBy(func(in store.SetDatabaseStatusInput) bool {
		return in.Status == store.DatabaseSuspended && in.Reason != ""
	})).Return(nil).Once()
	env.OnActivity(storeActs.ReleaseDatabaseOperation, mock.Anything, mock.MatchedBy(func(in store.ReleaseDatabaseOperationInput) bool {
		return in.Status == store.OperationFailed
	})).Return(nil).Once()
	forbidActivities(t, env, dockerActs.RemoveDatabase)

	env.ExecuteWorkflow(ResumeDatabase, DatabaseOperationInput{DatabaseID: testDatabaseID, OperationID: "op-1"})
	require.True(t, env.IsWorkflowCompleted())
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(env.GetWorkflowError(), &appErr))
	env.AssertExpectations(t)
}

// Deleting a suspended database with a final backup stops before anything is touched (its
// container is stopped, so no dump can be taken) and leaves it suspended, not available.
func TestDeleteOfASuspendedDatabaseWithAFinalBackupLeavesItSuspended(t *testing.T) {
	env := newTestEnv()
	env.OnActivity(storeActs.LoadDatabaseTarget, mock.Anything, mock.Anything).Return(databaseIn(store.DatabaseSuspended), nil).Once()
	env.OnActivity(storeActs.FailBackup, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(storeActs.SetDatabaseStatus, mock.Anything, mock.MatchedBy(func(in store.SetDatabaseStatusInput) bool {
		return in.Status == store.DatabaseSuspended
	})).Return(nil).Once()
	env.OnActivity(storeActs.ReleaseDatabaseOperation, mock.Anything, mock.Anything).Return(nil).Once()
	forbidActivities(t, env, dockerActs.RemoveDatabase, dockerActs.BackupDatabase, storeActs.StartBackup, storeActs.DeleteBackupSchedule)

	env.ExecuteWorkflow(DeleteDatabase, DatabaseOperationInput{DatabaseID: testDatabaseID, OperationID: "op-1", BackupID: "b-1"})
	require.True(t, env.IsWorkflowCompleted())
	require.Error(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}
