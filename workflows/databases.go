package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/skypanel/skypanel/activities/control/store"
	"github.com/skypanel/skypanel/activities/node/docker"
	sptemporal "github.com/skypanel/skypanel/temporal"
)

// DatabaseOperationInput names an operation on a managed database; the database's queue gave
// this workflow its turn.
type DatabaseOperationInput struct {
	DatabaseID  string
	OperationID string
	// BackupID is the backup a backup operation takes, or a restore restores.
	BackupID string `json:",omitempty"`
}

// DatabaseOperationWorkflowID is the workflow ID of a database's operation:
// database-<kind>/<databaseID>/<operationID>.
func DatabaseOperationWorkflowID(kind, databaseID, operationID string) string {
	return "database-" + kind + "/" + databaseID + "/" + operationID
}

// DatabaseHealthyTimeout is how long a new database has to pass its health check: its first
// start initializes its files (initdb, mariadb-install-db).
const DatabaseHealthyTimeout = 3 * time.Minute

// loadDatabase reads the database for the workflow that holds its turn, and tags the workflow
// with its node.
func loadDatabase(ctx workflow.Context, in store.LoadDatabaseTargetInput) (store.DatabaseTarget, error) {
	var t store.DatabaseTarget
	if err := workflow.ExecuteActivity(controlContext(ctx), storeActs.LoadDatabaseTarget, in).Get(ctx, &t); err != nil {
		return t, err
	}
	if t.NodeID != "" {
		if err := workflow.UpsertTypedSearchAttributes(ctx, sptemporal.NodeIDKey.ValueSet(t.NodeID)); err != nil {
			workflow.GetLogger(ctx).Warn("upsert node search attribute", "error", err)
		}
	}
	return t, nil
}

func setDatabaseStatus(ctx workflow.Context, databaseID, status, reason string) error {
	return workflow.ExecuteActivity(controlContext(ctx), storeActs.SetDatabaseStatus, store.SetDatabaseStatusInput{
		DatabaseID: databaseID, Status: status, Reason: reason,
	}).Get(ctx, nil)
}

// ProvisionDatabase places a new database (its region's node with room for its plan), starts
// its hardened container on the organization's network with a named volume and its sealed
// password, and waits for its health check: provisioning → available. A failure removes what
// it made on the node and leaves the database failed, saying why.
func ProvisionDatabase(ctx workflow.Context, in DatabaseOperationInput) (err error) {
	defer endDatabaseOperation(ctx, in.DatabaseID, &err)
	t, err := loadDatabase(ctx, store.LoadDatabaseTargetInput{DatabaseID: in.DatabaseID, Place: true})
	if err != nil {
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.Type() == store.ErrTypeNoNode {
			_ = setDatabaseStatus(ctx, in.DatabaseID, store.DatabaseFailed, failureReason(err))
		}
		return err
	}
	if t.NodeOffline != "" {
		err = temporal.NewNonRetryableApplicationError(t.NodeOffline, store.ErrTypeNodeOffline, nil)
		_ = setDatabaseStatus(ctx, in.DatabaseID, store.DatabaseFailed, t.NodeOffline)
		return err
	}
	if err := startDatabaseOnNode(ctx, t); err != nil {
		cleanup := nodeContext(ctx, t.NodeID, 2*time.Minute, 0, 3)
		if rmErr := workflow.ExecuteActivity(cleanup, dockerActs.RemoveDatabase, docker.RemoveDatabaseInput{
			DatabaseID: t.DatabaseID, OrgID: t.OrgID, DropVolume: true,
		}).Get(ctx, nil); rmErr != nil {
			workflow.GetLogger(ctx).Error("remove the database that failed to start", "database_id", t.DatabaseID, "error", rmErr)
		}
		_ = setDatabaseStatus(ctx, in.DatabaseID, store.DatabaseFailed, failureReason(err))
		return err
	}
	if err := setDatabaseStatus(ctx, in.DatabaseID, store.DatabaseAvailable, ""); err != nil {
		return err
	}
	// Its backups from now on: the schedule's interval is the database's (daily by default).
	return workflow.ExecuteActivity(controlContext(ctx), storeActs.EnsureBackupSchedule, store.DatabaseRef{DatabaseID: in.DatabaseID}).Get(ctx, nil)
}

// ScheduledBackupInput names the database a backup schedule backs up.
type ScheduledBackupInput struct {
	DatabaseID string
}

// ScheduledDatabaseBackup is what a database's backup schedule (database-backups/<id>) starts:
// it queues a scheduled backup in the database's queue, where BackupDatabase takes it in turn
// and applies the retention once it completes.
func ScheduledDatabaseBackup(ctx workflow.Context, in ScheduledBackupInput) error {
	var operationID string
	if err := workflow.ExecuteActivity(controlContext(ctx), storeActs.QueueScheduledBackup, store.DatabaseRef{DatabaseID: in.DatabaseID}).Get(ctx, &operationID); err != nil {
		return err
	}
	workflow.GetLogger(ctx).Info("scheduled backup queued", "database_id", in.DatabaseID, "operation_id", operationID)
	return nil
}

// startDatabaseOnNode creates (or finds) the database's container and waits until it is
// healthy.
func startDatabaseOnNode(ctx workflow.Context, t store.DatabaseTarget) error {
	// The first start may load the engine's image into the node's engine.
	startCtx := nodeContext(ctx, t.NodeID, 5*time.Minute, 0, 3)
	var started docker.StartDatabaseResult
	if err := workflow.ExecuteActivity(startCtx, dockerActs.StartDatabase, docker.StartDatabaseInput{
		DatabaseID: t.DatabaseID, OrgID: t.OrgID, Engine: t.Engine, User: t.User, Database: t.DBName,
		PasswordSealed: t.PasswordSealed, CPUMillis: t.CPUMillis, MemoryMB: t.MemoryMB, StorageMB: t.StorageMB,
	}).Get(ctx, &started); err != nil {
		return err
	}
	healthyCtx := nodeContext(ctx, t.NodeID, DatabaseHealthyTimeout, 30*time.Second, 1)
	return workflow.ExecuteActivity(healthyCtx, dockerActs.WaitDatabaseHealthy, docker.WaitDatabaseHealthyInput{
		DatabaseID: t.DatabaseID, Engine: t.Engine,
	}).Get(ctx, nil)
}

// DeleteDatabase takes the database's final backup (unless its owner said final_backup=false:
// in.BackupID is empty then), removes its backup schedule, its container and volume from its
// node, then marks it deleted (its name is free again). A final backup that fails stops the
// delete and leaves the database available, saying why. The API refuses a delete while apps
// are linked. An offline node is not waited for: the database is foreign to it afterwards.
func DeleteDatabase(ctx workflow.Context, in DatabaseOperationInput) (err error) {
	defer endDatabaseOperation(ctx, in.DatabaseID, &err)
	t, err := loadDatabase(ctx, store.LoadDatabaseTargetInput{DatabaseID: in.DatabaseID})
	if err != nil {
		return err
	}
	if in.BackupID != "" {
		if err := finalBackup(ctx, t, in.BackupID); err != nil {
			// The database stays as it was: deleting it without its final backup is the
			// owner's call (final_backup=false).
			reason := "the delete stopped: its final backup failed (" + failureReason(err) + "); delete with final_backup=false to delete it without one"
			// A suspended database stays suspended (stopped, not billed).
			back := store.DatabaseAvailable
			if t.Status == store.DatabaseSuspended {
				back = store.DatabaseSuspended
			}
			_ = setDatabaseStatus(ctx, in.DatabaseID, back, reason)
			return temporal.NewNonRetryableApplicationError(reason, "FinalBackupFailed", err)
		}
	}
	if err := workflow.ExecuteActivity(controlContext(ctx), storeActs.DeleteBackupSchedule, store.DatabaseRef{DatabaseID: in.DatabaseID}).Get(ctx, nil); err != nil {
		return err
	}
	if t.NodeID != "" && t.NodeOffline == "" {
		nodeCtx := nodeContext(ctx, t.NodeID, 2*time.Minute, 0, 5)
		if err := workflow.ExecuteActivity(nodeCtx, dockerActs.RemoveDatabase, docker.RemoveDatabaseInput{
			DatabaseID: t.DatabaseID, OrgID: t.OrgID, DropVolume: true,
		}).Get(ctx, nil); err != nil {
			return err
		}
	}
	return setDatabaseStatus(ctx, in.DatabaseID, store.DatabaseDeleted, "")
}

// BackupDatabase dumps the database with its engine's consistent dump, streams it from the
// node to the backup store with heartbeats, and completes the backup only once the control
// plane has read the stored object back and found the size and SHA-256 the node computed.
func BackupDatabase(ctx workflow.Context, in DatabaseOperationInput) (err error) {
	var outcome string
	defer endDatabaseOperationWithOutcome(ctx, in.DatabaseID, &err, &outcome)
	ref := store.BackupRef{DatabaseID: in.DatabaseID, BackupID: in.BackupID}
	defer failBackupOnError(ctx, ref, &err)
	t, err := loadAvailableDatabase(ctx, in.DatabaseID)
	if err != nil {
		return err
	}
	if err := workflow.ExecuteActivity(controlContext(ctx), storeActs.StartBackup, ref).Get(ctx, nil); err != nil {
		return err
	}
	var sent docker.BackupDatabaseResult
	if err := workflow.ExecuteActivity(nodeContext(ctx, t.NodeID, DatabaseTransferTimeout, time.Minute, 3), dockerActs.BackupDatabase,
		docker.BackupDatabaseInput{DatabaseID: t.DatabaseID, BackupID: in.BackupID, Engine: t.Engine}).Get(ctx, &sent); err != nil {
		return err
	}
	if err := workflow.ExecuteActivity(verifyContext(ctx), storeActs.VerifyBackup, store.VerifyBackupInput{
		DatabaseID: t.DatabaseID, BackupID: in.BackupID, SizeBytes: sent.SizeBytes, SHA256: sent.SHA256,
	}).Get(ctx, nil); err != nil {
		return err
	}
	outcome = fmt.Sprintf("backup %s completed: %d bytes, sha256 %s, verified in the store", in.BackupID, sent.SizeBytes, sent.SHA256)
	var pruned int
	if err := workflow.ExecuteActivity(controlContext(ctx), storeActs.PruneBackups, ref).Get(ctx, &pruned); err != nil {
		return err
	}
	if pruned > 0 {
		outcome += fmt.Sprintf("; retention removed the %d oldest scheduled backups", pruned)
	}
	return nil
}

// RestoreDatabase restores a completed backup into exactly this database: the stored object is
// checked against its recorded checksum before anything is touched (a corrupted one is refused
// and the data stays as it is), the node checks it again as it downloads, then the engine's
// restore runs in the database's own container. Linked apps keep serving throughout (see
// docs/databases.md); the operation reports the rows or keys the database holds afterwards.
func RestoreDatabase(ctx workflow.Context, in DatabaseOperationInput) (err error) {
	var outcome string
	defer endDatabaseOperationWithOutcome(ctx, in.DatabaseID, &err, &outcome)
	t, err := loadAvailableDatabase(ctx, in.DatabaseID)
	if err != nil {
		return err
	}
	var src store.RestoreSource
	if err := workflow.ExecuteActivity(verifyContext(ctx), storeActs.PrepareRestore,
		store.BackupRef{DatabaseID: in.DatabaseID, BackupID: in.BackupID}).Get(ctx, &src); err != nil {
		return err
	}
	var res docker.RestoreDatabaseResult
	if err := workflow.ExecuteActivity(nodeContext(ctx, t.NodeID, DatabaseTransferTimeout, time.Minute, 1), dockerActs.RestoreDatabase,
		docker.RestoreDatabaseInput{DatabaseID: t.DatabaseID, BackupID: in.BackupID, Engine: t.Engine, SizeBytes: src.SizeBytes, SHA256: src.SHA256}).Get(ctx, &res); err != nil {
		return err
	}
	unit := "rows"
	switch t.Engine.Engine {
	case "redis":
		unit = "keys"
	case "mongodb":
		unit = "documents"
	}
	outcome = fmt.Sprintf("restored backup %s: the database holds %d %s", in.BackupID, res.Restored, unit)
	return nil
}

// DatabaseTransferTimeout bounds one dump or restore on the node (its heartbeats say it is
// alive meanwhile).
const DatabaseTransferTimeout = 4 * time.Hour

// verifyContext is for control activities that read a whole stored backup.
func verifyContext(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           sptemporal.ControlTaskQueue,
		StartToCloseTimeout: time.Hour,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second, MaximumAttempts: 5},
	})
}

// loadAvailableDatabase loads a database that must be available, on a node that reports.
func loadAvailableDatabase(ctx workflow.Context, databaseID string) (store.DatabaseTarget, error) {
	t, err := loadDatabase(ctx, store.LoadDatabaseTargetInput{DatabaseID: databaseID})
	if err != nil {
		return t, err
	}
	if t.Status != store.DatabaseAvailable || t.NodeID == "" {
		return t, temporal.NewNonRetryableApplicationError("the database is "+t.Status+": only an available database is backed up or restored", "DatabaseNotAvailable", nil)
	}
	if t.NodeOffline != "" {
		return t, temporal.NewNonRetryableApplicationError(t.NodeOffline, store.ErrTypeNodeOffline, nil)
	}
	return t, nil
}

// finalBackup takes a deleted database's last backup (kind final), verified in the store like
// any other, before anything is removed.
func finalBackup(ctx workflow.Context, t store.DatabaseTarget, backupID string) (err error) {
	ref := store.BackupRef{DatabaseID: t.DatabaseID, BackupID: backupID}
	defer failBackupOnError(ctx, ref, &err)
	if t.NodeID == "" || t.NodeOffline != "" || t.Status == store.DatabaseSuspended {
		why := "the database was never placed"
		switch {
		case t.NodeOffline != "":
			why = t.NodeOffline
		case t.Status == store.DatabaseSuspended:
			why = "the database is suspended: its container is stopped"
		}
		return temporal.NewNonRetryableApplicationError("no final backup can be taken: "+why, "FinalBackupImpossible", nil)
	}
	if err := workflow.ExecuteActivity(controlContext(ctx), storeActs.StartBackup, ref).Get(ctx, nil); err != nil {
		return err
	}
	var sent docker.BackupDatabaseResult
	if err := workflow.ExecuteActivity(nodeContext(ctx, t.NodeID, DatabaseTransferTimeout, time.Minute, 3), dockerActs.BackupDatabase,
		docker.BackupDatabaseInput{DatabaseID: t.DatabaseID, BackupID: backupID, Engine: t.Engine}).Get(ctx, &sent); err != nil {
		return err
	}
	return workflow.ExecuteActivity(verifyContext(ctx), storeActs.VerifyBackup, store.VerifyBackupInput{
		DatabaseID: t.DatabaseID, BackupID: backupID, SizeBytes: sent.SizeBytes, SHA256: sent.SHA256,
	}).Get(ctx, nil)
}

// failBackupOnError records the backup failed, with the reason, when *result is an error
// (deferred by the workflows that take a backup), whatever happened to the workflow.
func failBackupOnError(ctx workflow.Context, ref store.BackupRef, result *error) {
	if *result == nil {
		return
	}
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	if err := workflow.ExecuteActivity(controlContext(dctx), storeActs.FailBackup, store.FailBackupInput{
		DatabaseID: ref.DatabaseID, BackupID: ref.BackupID, Reason: failureReason(*result),
	}).Get(dctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("record the failed backup", "backup_id", ref.BackupID, "error", err)
	}
}

// endDatabaseOperation records how the workflow's database operation ended and hands the
// database's turn on, whatever happened to the workflow.
func endDatabaseOperation(ctx workflow.Context, databaseID string, result *error) {
	endDatabaseOperationWithOutcome(ctx, databaseID, result, nil)
}

// endDatabaseOperationWithOutcome is endDatabaseOperation for a workflow that says what it did
// when it succeeds (*outcome, listed as the operation's reason).
func endDatabaseOperationWithOutcome(ctx workflow.Context, databaseID string, result *error, outcome *string) {
	ctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	in := store.ReleaseDatabaseOperationInput{DatabaseID: databaseID, WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID, Status: store.OperationSucceeded}
	if outcome != nil {
		in.Reason = *outcome
	}
	if result != nil && *result != nil {
		in.Status, in.Reason = store.OperationFailed, failureReason(*result)
	}
	if err := workflow.ExecuteActivity(controlContext(ctx), storeActs.ReleaseDatabaseOperation, in).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("end database operation", "database_id", databaseID, "error", err)
	}
}
