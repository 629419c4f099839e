package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/skypanel/skypanel/activities/control/store"
	"github.com/skypanel/skypanel/activities/node/docker"
)

// SuspendedDatabaseReason is what a suspended database's status_reason tells its owner.
const SuspendedDatabaseReason = "suspended: the organization's prepaid balance cannot pay for it; its data is kept, and it starts again by itself once funds are added"

// SuspendDatabase stops one database of an organization whose wallet cannot pay, in the
// database's turn (never racing a backup or a restore): its container is stopped cleanly, its
// volume and data stay, and it is recorded suspended, which ends its usage (billing). A
// database no longer available when its turn comes is left as it is.
func SuspendDatabase(ctx workflow.Context, in DatabaseOperationInput) (err error) {
	var outcome string
	defer endDatabaseOperationWithOutcome(ctx, in.DatabaseID, &err, &outcome)
	t, err := loadDatabase(ctx, store.LoadDatabaseTargetInput{DatabaseID: in.DatabaseID})
	if err != nil {
		return err
	}
	if t.Status != store.DatabaseAvailable {
		outcome = "nothing to suspend: the database is " + t.Status
		return nil
	}
	if t.NodeOffline != "" {
		return temporal.NewNonRetryableApplicationError(t.NodeOffline, store.ErrTypeNodeOffline, nil)
	}
	if t.NodeID != "" {
		stopCtx := nodeContext(ctx, t.NodeID, 2*time.Minute, 0, 5)
		if err := workflow.ExecuteActivity(stopCtx, dockerActs.StopDatabase, docker.StopDatabaseInput{
			DatabaseID: t.DatabaseID, OrgID: t.OrgID,
		}).Get(ctx, nil); err != nil {
			return err
		}
	}
	if err := setDatabaseStatus(ctx, in.DatabaseID, store.DatabaseSuspended, SuspendedDatabaseReason); err != nil {
		return err
	}
	outcome = "suspended: its container is stopped, its data kept"
	return nil
}

// ResumeDatabase starts a suspended database again once its organization's wallet pays, in the
// database's turn: its container (the same volume, the same data) is started and waited
// healthy, then it is recorded available, which opens its usage again. A database no longer
// suspended when its turn comes is left as it is; one that does not get healthy stays
// suspended, saying why, for the next billing run to try again.
func ResumeDatabase(ctx workflow.Context, in DatabaseOperationInput) (err error) {
	var outcome string
	defer endDatabaseOperationWithOutcome(ctx, in.DatabaseID, &err, &outcome)
	t, err := loadDatabase(ctx, store.LoadDatabaseTargetInput{DatabaseID: in.DatabaseID})
	if err != nil {
		return err
	}
	if t.Status != store.DatabaseSuspended {
		outcome = "nothing to resume: the database is " + t.Status
		return nil
	}
	if t.NodeOffline != "" || t.NodeID == "" {
		why := t.NodeOffline
		if why == "" {
			why = "the database has no node"
		}
		return temporal.NewNonRetryableApplicationError(why, store.ErrTypeNodeOffline, nil)
	}
	if err := startDatabaseOnNode(ctx, t); err != nil {
		_ = setDatabaseStatus(ctx, in.DatabaseID, store.DatabaseSuspended, "the resumption failed: "+failureReason(err)+"; the next billing run tries again")
		return err
	}
	if err := setDatabaseStatus(ctx, in.DatabaseID, store.DatabaseAvailable, ""); err != nil {
		return err
	}
	outcome = "resumed: started with its data and healthy"
	return nil
}
