package db_test

import (
	"context"
	"errors"
	"testing"

	"github.com/skypanel/skypanel/db"
)

// A database's schedule changes for its own organization while it is provisioning or
// available, answering what it was; not while it is being deleted, and never for another
// organization.
func TestADatabasesBackupScheduleChanges(t *testing.T) {
	ctx := context.Background()
	_, regionID := newRegisteredNode(t)
	app := newAppInRegion(t, regionID)
	d, _ := newDatabase(t, app.OrgID, regionID, "sched")

	before, after, err := testStore.SetDatabaseBackupSchedule(ctx, app.OrgID, d.ID, db.BackupSchedule{IntervalSeconds: 6 * 3600, Retention: 3})
	if err != nil {
		t.Fatal(err)
	}
	if before.IntervalSeconds != 86400 || before.Retention != 7 || after.BackupIntervalSeconds != 6*3600 || after.BackupRetention != 3 {
		t.Fatalf("before %+v, after %d s / %d", before, after.BackupIntervalSeconds, after.BackupRetention)
	}
	other := newAppInRegion(t, regionID)
	if _, _, err := testStore.SetDatabaseBackupSchedule(ctx, other.OrgID, d.ID, db.BackupSchedule{IntervalSeconds: 60, Retention: 1}); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("another organization changes the schedule: %v, want not found", err)
	}
	if err := testStore.SetDatabaseStatus(ctx, d.ID, db.DatabaseDeleting, ""); err != nil {
		t.Fatal(err)
	}
	var invalid *db.InvalidStateError
	if _, _, err := testStore.SetDatabaseBackupSchedule(ctx, app.OrgID, d.ID, db.BackupSchedule{IntervalSeconds: 60, Retention: 1}); !errors.As(err, &invalid) {
		t.Fatalf("a database being deleted: %v, want an invalid state", err)
	}
	got, err := testStore.DatabaseByID(ctx, d.ID)
	if err != nil || got.BackupIntervalSeconds != 6*3600 || got.BackupRetention != 3 {
		t.Fatalf("the refused changes changed the database: %+v %v", got, err)
	}
}
