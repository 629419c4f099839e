package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Only the final backups of deleted databases, and only those older than the cutoff, expire:
// not a manual or scheduled backup, not the final backup of a database whose delete failed
// (it is available again), not a recent one.
func TestOnlyOldFinalBackupsOfDeletedDatabasesExpire(t *testing.T) {
	ctx := context.Background()
	_, regionID := newRegisteredNode(t)
	app := newAppInRegion(t, regionID)
	deleted, _ := newDatabase(t, app.OrgID, regionID, "gone")
	alive, _ := newDatabase(t, app.OrgID, regionID, "alive")
	if _, err := testStore.Pool().Exec(ctx, `UPDATE databases SET status = 'deleted', deleted_at = now() WHERE id = $1`, deleted.ID); err != nil {
		t.Fatal(err)
	}
	backup := func(databaseID, kind string, age time.Duration) string {
		id := uuid.NewString()
		if _, err := testStore.Pool().Exec(ctx, `INSERT INTO database_backups (id, database_id, kind, status, size_bytes, sha256, created_at)
			VALUES ($1, $2, $3, 'completed', 1, repeat('a', 64), now() - make_interval(secs => $4))`, id, databaseID, kind, age.Seconds()); err != nil {
			t.Fatal(err)
		}
		return id
	}
	oldFinal := backup(deleted.ID, "final", 8*24*time.Hour)
	backup(deleted.ID, "final", time.Hour)         // too recent
	backup(deleted.ID, "manual", 30*24*time.Hour)  // not final: deleted with the database's rows
	backup(alive.ID, "final", 30*24*time.Hour)     // its delete failed: the database lives
	backup(alive.ID, "scheduled", 30*24*time.Hour) // pruned by retention, not by expiry

	expired, err := testStore.ExpiredFinalBackups(ctx, time.Now().Add(-7*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var ours []string
	for _, b := range expired {
		if b.DatabaseID == deleted.ID || b.DatabaseID == alive.ID {
			ours = append(ours, b.ID)
		}
	}
	if len(ours) != 1 || ours[0] != oldFinal {
		t.Fatalf("expired %v, want only the old final backup %s", ours, oldFinal)
	}
}
