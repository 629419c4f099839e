package workflows

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/activities/contract"
	"github.com/skypanel/skypanel/activities/control/store"
	"github.com/skypanel/skypanel/activities/node/docker"
	sptemporal "github.com/skypanel/skypanel/temporal"
)

const testDatabaseID = "db000000-0000-4000-8000-000000000001"

var testDatabase = store.DatabaseTarget{
	DatabaseID: testDatabaseID, OrgID: "org-1", Name: "main", NodeID: "node-1", User: "app", DBName: "main",
	PasswordSealed: "v1:k1:sealed",
	Engine: contract.DatabaseEngine{Engine: "postgresql", Version: "15", Image: "postgres:15-bookworm", Port: 5432,
		DataDir: "/var/lib/postgresql/data", HealthCommand: []string{"pg_isready"}},
	CPUMillis: 500, MemoryMB: 256, StorageMB: 1024, Status: "provisioning",
}

// Provisioning places the database, starts it on its node with its sealed password and plan,
// waits for its health check, and only then records it available.
func TestProvisionDatabaseStartsItOnItsNodeThenMarksItAvailable(t *testing.T) {
	env := newTestEnv()
	env.OnActivity(storeActs.LoadDatabaseTarget, mock.Anything, store.LoadDatabaseTargetInput{DatabaseID: testDatabaseID, Place: true}).
		Return(testDatabase, nil).Once()
	env.OnActivity(dockerActs.StartDatabase, mock.Anything, docker.StartDatabaseInput{
		DatabaseID: testDatabaseID, OrgID: "org-1", Engine: testDatabase.Engine, User: "app", Database: "main",
		PasswordSealed: "v1:k1:sealed", CPUMillis: 500, MemoryMB: 256, StorageMB: 1024,
	}).Return(docker.StartDatabaseResult{ContainerID: "c1", Host: "skypanel-db-" + testDatabaseID}, nil).Once()
	healthy := false
	env.OnActivity(dockerActs.WaitDatabaseHealthy, mock.Anything, mock.Anything).Return(func(_ context.Context, _ docker.WaitDatabaseHealthyInput) error {
		healthy = true
		return nil
	}).Once()
	env.OnActivity(storeActs.SetDatabaseStatus, mock.Anything, store.SetDatabaseStatusInput{DatabaseID: testDatabaseID, Status: store.DatabaseAvailable}).
		Return(func(_ context.Context, _ store.SetDatabaseStatusInput) error {
			if !healthy {
				t.Error("the database was marked available before its health check passed")
			}
			return nil
		}).Once()
	env.OnActivity(storeActs.EnsureBackupSchedule, mock.Anything, store.DatabaseRef{DatabaseID: testDatabaseID}).Return(nil).Once()
	env.OnActivity(storeActs.ReleaseDatabaseOperation, mock.Anything, mock.MatchedBy(func(in store.ReleaseDatabaseOperationInput) bool {
		return in.DatabaseID == testDatabaseID && in.Status == store.OperationSucceeded
	})).Return(nil).Once()
	forbidActivities(t, env, dockerActs.RemoveDatabase)

	env.ExecuteWorkflow(ProvisionDatabase, DatabaseOperationInput{DatabaseID: testDatabaseID, OperationID: "op-1"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}

// A database that never becomes healthy is removed from its node, volume included, and left
// failed with the reason; its turn is handed on.
func TestProvisionDatabaseThatNeverGetsHealthyIsRemovedAndFailed(t *testing.T) {
	env := newTestEnv()
	env.OnActivity(storeActs.LoadDatabaseTarget, mock.Anything, mock.Anything).Return(testDatabase, nil).Once()
	env.OnActivity(dockerActs.StartDatabase, mock.Anything, mock.Anything).Return(docker.StartDatabaseResult{ContainerID: "c1"}, nil).Once()
	env.OnActivity(dockerActs.WaitDatabaseHealthy, mock.Anything, mock.Anything).
		Return(temporal.NewNonRetryableApplicationError("the database did not become healthy: initdb: out of disk", "DatabaseNotHealthy", nil)).Once()
	env.OnActivity(dockerActs.RemoveDatabase, mock.Anything, docker.RemoveDatabaseInput{DatabaseID: testDatabaseID, OrgID: "org-1", DropVolume: true}).
		Return(nil).Once()
	env.OnActivity(storeActs.SetDatabaseStatus, mock.Anything, mock.MatchedBy(func(in store.SetDatabaseStatusInput) bool {
		return in.Status == store.DatabaseFailed && in.Reason == "the database did not become healthy: initdb: out of disk"
	})).Return(nil).Once()
	env.OnActivity(storeActs.ReleaseDatabaseOperation, mock.Anything, mock.MatchedBy(func(in store.ReleaseDatabaseOperationInput) bool {
		return in.Status == store.OperationFailed
	})).Return(nil).Once()

	env.ExecuteWorkflow(ProvisionDatabase, DatabaseOperationInput{DatabaseID: testDatabaseID, OperationID: "op-2"})
	require.True(t, env.IsWorkflowCompleted())
	require.Error(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}

// Deleting removes the container and the volume from the node, then records the database
// deleted.
func TestDeleteDatabaseRemovesItsContainerAndVolume(t *testing.T) {
	env := newTestEnv()
	target := testDatabase
	target.Status = "deleting"
	env.OnActivity(storeActs.LoadDatabaseTarget, mock.Anything, store.LoadDatabaseTargetInput{DatabaseID: testDatabaseID}).Return(target, nil).Once()
	env.OnActivity(storeActs.DeleteBackupSchedule, mock.Anything, store.DatabaseRef{DatabaseID: testDatabaseID}).Return(nil).Once()
	env.OnActivity(dockerActs.RemoveDatabase, mock.Anything, docker.RemoveDatabaseInput{DatabaseID: testDatabaseID, OrgID: "org-1", DropVolume: true}).
		Return(nil).Once()
	env.OnActivity(storeActs.SetDatabaseStatus, mock.Anything, store.SetDatabaseStatusInput{DatabaseID: testDatabaseID, Status: store.DatabaseDeleted}).
		Return(nil).Once()
	env.OnActivity(storeActs.ReleaseDatabaseOperation, mock.Anything, mock.Anything).Return(nil).Once()
	forbidActivities(t, env, dockerActs.StartDatabase)

	env.ExecuteWorkflow(DeleteDatabase, DatabaseOperationInput{DatabaseID: testDatabaseID, OperationID: "op-3"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}

func availableDatabase() store.DatabaseTarget {
	t := testDatabase
	t.Status = store.DatabaseAvailable
	return t
}

// A backup counts only once the control plane has found, in the store, the size and checksum
// the node computed while it streamed the dump; a mismatch fails the backup and records why.
func TestBackupDatabaseCompletesOnlyWhenTheStoredObjectMatches(t *testing.T) {
	for _, c := range []struct {
		name     string
		verified error
	}{
		{"matches", nil},
		{"corrupted in the store", temporal.NewNonRetryableApplicationError("the stored backup does not match what the node sent", store.ErrTypeBackupCorrupt, nil)},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := newTestEnv()
			ref := store.BackupRef{DatabaseID: testDatabaseID, BackupID: "b1"}
			env.OnActivity(storeActs.LoadDatabaseTarget, mock.Anything, mock.Anything).Return(availableDatabase(), nil).Once()
			env.OnActivity(storeActs.StartBackup, mock.Anything, ref).Return(nil).Once()
			env.OnActivity(dockerActs.BackupDatabase, mock.Anything, docker.BackupDatabaseInput{DatabaseID: testDatabaseID, BackupID: "b1", Engine: testDatabase.Engine}).
				Return(docker.BackupDatabaseResult{SizeBytes: 2048, SHA256: "abc"}, nil).Once()
			env.OnActivity(storeActs.VerifyBackup, mock.Anything, store.VerifyBackupInput{DatabaseID: testDatabaseID, BackupID: "b1", SizeBytes: 2048, SHA256: "abc"}).
				Return(c.verified).Once()
			if c.verified != nil {
				env.OnActivity(storeActs.FailBackup, mock.Anything, mock.MatchedBy(func(in store.FailBackupInput) bool {
					return in.BackupID == "b1" && in.Reason == "the stored backup does not match what the node sent"
				})).Return(nil).Once()
			} else {
				env.OnActivity(storeActs.PruneBackups, mock.Anything, ref).Return(0, nil).Once()
				forbidActivities(t, env, storeActs.FailBackup)
			}
			env.OnActivity(storeActs.ReleaseDatabaseOperation, mock.Anything, mock.MatchedBy(func(in store.ReleaseDatabaseOperationInput) bool {
				return (c.verified == nil) == (in.Status == store.OperationSucceeded)
			})).Return(nil).Once()

			env.ExecuteWorkflow(BackupDatabase, DatabaseOperationInput{DatabaseID: testDatabaseID, OperationID: "op-4", BackupID: "b1"})
			require.True(t, env.IsWorkflowCompleted())
			if c.verified == nil {
				require.NoError(t, env.GetWorkflowError())
			} else {
				require.Error(t, env.GetWorkflowError())
			}
			env.AssertExpectations(t)
		})
	}
}

// A restore whose stored backup no longer matches its checksum is refused before the node is
// asked anything: the database is never touched.
func TestRestoreDatabaseOfACorruptedBackupTouchesNothing(t *testing.T) {
	env := newTestEnv()
	env.OnActivity(storeActs.LoadDatabaseTarget, mock.Anything, mock.Anything).Return(availableDatabase(), nil).Once()
	env.OnActivity(storeActs.PrepareRestore, mock.Anything, store.BackupRef{DatabaseID: testDatabaseID, BackupID: "b2"}).
		Return(store.RestoreSource{}, temporal.NewNonRetryableApplicationError("the backup's stored object does not match its checksum", store.ErrTypeBackupCorrupt, nil)).Once()
	env.OnActivity(storeActs.ReleaseDatabaseOperation, mock.Anything, mock.MatchedBy(func(in store.ReleaseDatabaseOperationInput) bool {
		return in.Status == store.OperationFailed && in.Reason == "the backup's stored object does not match its checksum"
	})).Return(nil).Once()
	forbidActivities(t, env, dockerActs.RestoreDatabase)

	env.ExecuteWorkflow(RestoreDatabase, DatabaseOperationInput{DatabaseID: testDatabaseID, OperationID: "op-5", BackupID: "b2"})
	require.True(t, env.IsWorkflowCompleted())
	require.Error(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}

// A restore passes the verified size and checksum to the node and reports what the database
// holds afterwards.
func TestRestoreDatabaseReportsTheRowsRestored(t *testing.T) {
	env := newTestEnv()
	env.OnActivity(storeActs.LoadDatabaseTarget, mock.Anything, mock.Anything).Return(availableDatabase(), nil).Once()
	env.OnActivity(storeActs.PrepareRestore, mock.Anything, mock.Anything).Return(store.RestoreSource{SizeBytes: 10, SHA256: "def"}, nil).Once()
	env.OnActivity(dockerActs.RestoreDatabase, mock.Anything, docker.RestoreDatabaseInput{DatabaseID: testDatabaseID, BackupID: "b3",
		Engine: testDatabase.Engine, SizeBytes: 10, SHA256: "def"}).Return(docker.RestoreDatabaseResult{Restored: 3}, nil).Once()
	env.OnActivity(storeActs.ReleaseDatabaseOperation, mock.Anything, mock.MatchedBy(func(in store.ReleaseDatabaseOperationInput) bool {
		return in.Status == store.OperationSucceeded && in.Reason == "restored backup b3: the database holds 3 rows"
	})).Return(nil).Once()

	env.ExecuteWorkflow(RestoreDatabase, DatabaseOperationInput{DatabaseID: testDatabaseID, OperationID: "op-6", BackupID: "b3"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}

// The backup schedules start the workflow by the name the worker registers it under.
func TestTheBackupScheduleNamesTheScheduledBackupWorkflow(t *testing.T) {
	if got := recordFuncName(ScheduledDatabaseBackup); got != sptemporal.ScheduledDatabaseBackupWorkflow {
		t.Errorf("the schedule starts %q, the worker registers %q", sptemporal.ScheduledDatabaseBackupWorkflow, got)
	}
}

// A delete takes its final backup first; one that fails stops the delete and leaves the
// database available, saying why, with nothing removed from the node.
func TestDeleteDatabaseStopsWhenItsFinalBackupFails(t *testing.T) {
	env := newTestEnv()
	target := availableDatabase()
	env.OnActivity(storeActs.LoadDatabaseTarget, mock.Anything, mock.Anything).Return(target, nil).Once()
	env.OnActivity(storeActs.StartBackup, mock.Anything, store.BackupRef{DatabaseID: testDatabaseID, BackupID: "final-1"}).Return(nil).Once()
	env.OnActivity(dockerActs.BackupDatabase, mock.Anything, mock.Anything).
		Return(docker.BackupDatabaseResult{}, temporal.NewNonRetryableApplicationError("pg_dump: error: connection failed", "BackupFailed", nil)).Once()
	env.OnActivity(storeActs.FailBackup, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(storeActs.SetDatabaseStatus, mock.Anything, mock.MatchedBy(func(in store.SetDatabaseStatusInput) bool {
		return in.Status == store.DatabaseAvailable && strings.Contains(in.Reason, "final backup failed (pg_dump: error: connection failed)") &&
			strings.Contains(in.Reason, "final_backup=false")
	})).Return(nil).Once()
	env.OnActivity(storeActs.ReleaseDatabaseOperation, mock.Anything, mock.MatchedBy(func(in store.ReleaseDatabaseOperationInput) bool {
		return in.Status == store.OperationFailed
	})).Return(nil).Once()
	forbidActivities(t, env, dockerActs.RemoveDatabase, storeActs.DeleteBackupSchedule)

	env.ExecuteWorkflow(DeleteDatabase, DatabaseOperationInput{DatabaseID: testDatabaseID, OperationID: "op-7", BackupID: "final-1"})
	require.True(t, env.IsWorkflowCompleted())
	require.Error(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}
