package db_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
)

func backupOp(databaseID string) db.NewOperation {
	id := uuid.NewString()
	return db.NewOperation{ID: id, Kind: db.DatabaseOpBackup, WorkflowType: "BackupDatabase", WorkflowID: "database-backup/" + databaseID + "/" + id,
		Input: map[string]string{"DatabaseID": databaseID}}
}

// A database's backup store is file unless it was created with s3; each backup records the
// store of its database when it was queued and its object key, and keeps them when the
// database's store changes later. The column takes only the stores there are.
func TestBackupsRecordTheirStoreAndObjectKey(t *testing.T) {
	ctx := context.Background()
	_, regionID := newRegisteredNode(t)
	app := newAppInRegion(t, regionID)

	plain, _ := newDatabase(t, app.OrgID, regionID, "plain")
	if plain.BackupStore != db.BackupStoreFile {
		t.Errorf("a database created without a store: %q, want file", plain.BackupStore)
	}
	engine, _ := testStore.DatabaseEngineVersion(ctx, "postgresql", "15")
	plan, _ := testStore.DatabasePlanByRef(ctx, "db-small")
	id := uuid.NewString()
	sealed, err := testRing.Encrypt([]byte("password-"+id), secrets.DatabasePassword(id))
	if err != nil {
		t.Fatal(err)
	}
	s3db, _ := mustCreateDatabase(t, db.NewDatabase{ID: id, OrgID: app.OrgID, Name: "ins3", EngineID: engine.ID, PlanID: plan.ID, RegionID: regionID,
		User: "app", DBName: "main", PasswordSealed: sealed, BackupStore: db.BackupStoreS3},
		db.NewOperation{ID: uuid.NewString(), Kind: db.DatabaseOpProvision, WorkflowType: "ProvisionDatabase", WorkflowID: "database-provision/" + id, Input: map[string]string{}})
	if s3db.BackupStore != db.BackupStoreS3 {
		t.Fatalf("a database created with s3: %q", s3db.BackupStore)
	}
	for _, d := range []db.Database{plain, s3db} {
		if err := testStore.SetDatabaseStatus(ctx, d.ID, db.DatabaseAvailable, ""); err != nil {
			t.Fatal(err)
		}
	}

	backupID := uuid.NewString()
	if _, err := testStore.QueueBackup(ctx, app.OrgID, s3db.ID, backupID, "manual", backupOp(s3db.ID)); err != nil {
		t.Fatal(err)
	}
	b, err := testStore.BackupByID(ctx, backupID)
	if err != nil || b.Store != db.BackupStoreS3 || b.ObjectKey != s3db.ID+"/"+backupID+".dump" {
		t.Fatalf("the s3 database's backup: %+v %v, want store s3 and key <database>/<backup>.dump", b, err)
	}
	// The database's store changes: the backup stays where it was written.
	if _, err := testStore.Pool().Exec(ctx, `UPDATE databases SET backup_store = 'file' WHERE id = $1`, s3db.ID); err != nil {
		t.Fatal(err)
	}
	if b, _ := testStore.BackupByID(ctx, backupID); b.Store != db.BackupStoreS3 {
		t.Errorf("after the database's store changed, the backup says %q, want s3", b.Store)
	}
	if _, err := testStore.Pool().Exec(ctx, `UPDATE databases SET backup_store = 'tape' WHERE id = $1`, s3db.ID); err == nil {
		t.Error("the databases table took the store tape")
	}
	if _, err := testStore.Pool().Exec(ctx, `UPDATE database_backups SET store = 'tape' WHERE id = $1`, backupID); err == nil {
		t.Error("the backups table took the store tape")
	}

	fileBackup := uuid.NewString()
	if _, err := testStore.QueueBackup(ctx, app.OrgID, plain.ID, fileBackup, "scheduled", backupOp(plain.ID)); err != nil {
		// The database may still have its provisioning running: the backup queues behind it.
		t.Fatal(err)
	}
	if b, err := testStore.BackupByID(ctx, fileBackup); err != nil || b.Store != db.BackupStoreFile || b.ObjectKey != plain.ID+"/"+fileBackup+".dump" {
		t.Errorf("the file database's backup: %+v %v", b, err)
	}
}
