package db_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
)

// newDatabase records a PostgreSQL database of orgID in regionID, its provisioning queued.
func newDatabase(t *testing.T, orgID, regionID, name string) (db.Database, db.DatabaseEnqueued) {
	t.Helper()
	ctx := context.Background()
	engine, err := testStore.DatabaseEngineVersion(ctx, "postgresql", "15")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := testStore.DatabasePlanByRef(ctx, "db-small")
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	sealed, err := testRing.Encrypt([]byte("password-"+id), secrets.DatabasePassword(id))
	if err != nil {
		t.Fatal(err)
	}
	opID := uuid.NewString()
	return mustCreateDatabase(t, db.NewDatabase{ID: id, OrgID: orgID, Name: name, EngineID: engine.ID, PlanID: plan.ID, RegionID: regionID,
		User: "app", DBName: "main", PasswordSealed: sealed},
		db.NewOperation{ID: opID, Kind: db.DatabaseOpProvision, WorkflowType: "ProvisionDatabase", WorkflowID: "database-provision/" + id + "/" + opID,
			Input: map[string]string{"DatabaseID": id}})
}

func mustCreateDatabase(t *testing.T, n db.NewDatabase, op db.NewOperation) (db.Database, db.DatabaseEnqueued) {
	t.Helper()
	d, enq, err := testStore.CreateDatabase(context.Background(), n, op)
	if err != nil {
		t.Fatalf("create database %s: %v", n.Name, err)
	}
	return d, enq
}

func configureOp() db.NewOperation {
	id := uuid.NewString()
	return db.NewOperation{ID: id, Kind: db.OpConfigure, WorkflowType: "ConfigureApp", WorkflowID: "configure/x/" + id, Input: map[string]string{}}
}

// A database's provisioning takes its queue's turn at once; a second database of the same name
// in the organization is refused and stores nothing; placement reserves the plan's memory on
// the chosen node; a link places a new app beside its database, refuses one on another node,
// and holds the database against deletion; the password is re-encrypted with the other secrets.
func TestDatabasesQueuePlaceLinkAndReencrypt(t *testing.T) {
	ctx := context.Background()
	node, regionID := newRegisteredNode(t)
	app := newAppInRegion(t, regionID)

	d, enq := newDatabase(t, app.OrgID, regionID, "main")
	if enq.Start == nil || enq.Start.ID != enq.Operation.ID || enq.Operation.Status != db.OperationRunning {
		t.Fatalf("the first operation of a new database does not run at once: %+v", enq)
	}
	if d.Status != db.DatabaseProvisioning || d.Engine != "postgresql" || d.Port != 5432 {
		t.Errorf("new database: %+v", d)
	}
	// Same name, same organization: refused, nothing stored.
	before, _ := testStore.ListDatabases(ctx, app.OrgID)
	engine, _ := testStore.DatabaseEngineVersion(ctx, "postgresql", "15")
	plan, _ := testStore.DatabasePlanByRef(ctx, "db-small")
	dupID := uuid.NewString()
	_, _, err := testStore.CreateDatabase(ctx, db.NewDatabase{ID: dupID, OrgID: app.OrgID, Name: "main", EngineID: engine.ID, PlanID: plan.ID,
		RegionID: regionID, User: "app", DBName: "main", PasswordSealed: d.PasswordSealed},
		db.NewOperation{ID: uuid.NewString(), Kind: db.DatabaseOpProvision, WorkflowType: "ProvisionDatabase", WorkflowID: "database-provision/" + dupID, Input: map[string]string{}})
	if !errors.Is(err, db.ErrConflict) {
		t.Fatalf("a second database named main: %v, want a conflict", err)
	}
	if after, _ := testStore.ListDatabases(ctx, app.OrgID); len(after) != len(before) {
		t.Errorf("the refused database was stored: %d databases, want %d", len(after), len(before))
	}

	// Placement: the node is chosen and the plan's memory counts as reserved there.
	placed, err := testStore.PlaceDatabase(ctx, d.ID)
	if err != nil || placed != node.ID {
		t.Fatalf("place the database: %q %v, want node %s", placed, err, node.ID)
	}
	if ok, _ := testStore.DatabasePlacedFor(ctx, d.ID, node.ID); !ok {
		t.Error("the database is not placed for its node")
	}
	if ok, _ := testStore.DatabasePlacedFor(ctx, d.ID, uuid.NewString()); ok {
		t.Error("the database is placed for a node that does not run it")
	}

	// Not available yet: no link.
	var invalid *db.InvalidStateError
	if _, _, err := testStore.ChangeDatabaseLink(ctx, app.OrgID, app.ID, d.ID, false, configureOp()); !errors.As(err, &invalid) {
		t.Fatalf("link to a provisioning database: %v, want an invalid state", err)
	}
	if err := testStore.SetDatabaseStatus(ctx, d.ID, db.DatabaseAvailable, ""); err != nil {
		t.Fatal(err)
	}
	// Another organization's app: not found.
	stranger := newAppInRegion(t, regionID)
	if _, _, err := testStore.ChangeDatabaseLink(ctx, stranger.OrgID, stranger.ID, d.ID, false, configureOp()); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("link to another organization's app: %v, want not found", err)
	}
	// A never-deployed app: saved, no rollout, and placed beside the database.
	changed, linkEnq, err := testStore.ChangeDatabaseLink(ctx, app.OrgID, app.ID, d.ID, false, configureOp())
	if err != nil || !changed || linkEnq.Operation.ID != "" {
		t.Fatalf("link to an app never deployed: changed %v, %+v, %v; want saved without a rollout", changed, linkEnq, err)
	}
	if got, _ := testStore.GetApplication(ctx, app.OrgID, app.ID); got.NodeID == nil || *got.NodeID != node.ID {
		t.Errorf("the linked app is placed on %v, want the database's node %s", got.NodeID, node.ID)
	}
	if again, _, err := testStore.ChangeDatabaseLink(ctx, app.OrgID, app.ID, d.ID, false, configureOp()); err != nil || again {
		t.Errorf("the same link again: changed %v, %v", again, err)
	}
	links, err := testStore.LinkedDatabases(ctx, app.ID)
	if err != nil || len(links) != 1 || links[0].DatabaseID != d.ID || links[0].ConnectionVars["DATABASE_URL"] == "" {
		t.Fatalf("linked databases: %+v %v", links, err)
	}
	// An app placed on another node: 409 across nodes.
	other, _ := newRegisteredNode(t)
	elsewhere := newAppInRegion(t, regionID)
	if _, err := testStore.Pool().Exec(ctx, `UPDATE applications SET org_id = $2, node_id = $3 WHERE id = $1`, elsewhere.ID, app.OrgID, other.ID); err != nil {
		t.Fatal(err)
	}
	var across *db.DatabaseLinkConflictError
	if _, _, err := testStore.ChangeDatabaseLink(ctx, app.OrgID, elsewhere.ID, d.ID, false, configureOp()); !errors.As(err, &across) {
		t.Errorf("link across nodes: %v, want a DatabaseLinkConflictError", err)
	}

	// Linked: a delete is refused. Unlinked: it is queued behind the provisioning.
	finishProvision := func() {
		if _, err := testStore.FinishDatabaseOperation(ctx, d.ID, enq.Operation.WorkflowID, db.OperationSucceeded, ""); err != nil {
			t.Fatal(err)
		}
	}
	deleteOp := func() db.NewOperation {
		id := uuid.NewString()
		return db.NewOperation{ID: id, Kind: db.DatabaseOpDelete, WorkflowType: "DeleteDatabase", WorkflowID: "database-delete/" + d.ID + "/" + id, Input: map[string]string{}}
	}
	if _, err := testStore.EnqueueDatabaseOperation(ctx, app.OrgID, d.ID, deleteOp()); !errors.Is(err, db.ErrDatabaseLinked) {
		t.Fatalf("delete a linked database: %v, want ErrDatabaseLinked", err)
	}
	if _, _, err := testStore.ChangeDatabaseLink(ctx, app.OrgID, app.ID, d.ID, true, configureOp()); err != nil {
		t.Fatal(err)
	}
	del, err := testStore.EnqueueDatabaseOperation(ctx, app.OrgID, d.ID, deleteOp())
	if err != nil || del.Start == nil || del.Start.ID != enq.Operation.ID || del.Operation.Status != db.OperationQueued {
		t.Fatalf("a delete behind the running provision: %+v %v, want it queued", del, err)
	}
	if _, err := testStore.EnqueueDatabaseOperation(ctx, app.OrgID, d.ID, deleteOp()); err == nil {
		t.Error("a second delete was taken while one waits")
	}
	finishProvision()
	if got, _ := testStore.GetDatabase(ctx, app.OrgID, d.ID); got.Status != db.DatabaseDeleting {
		t.Errorf("once the provision ended the database is %q, want deleting", got.Status)
	}

	// secrets reencrypt moves the password onto the new primary key, still opening as its own.
	k2 := mustKeyring("k2")
	rotated := mustKeyringSpec(t, k2.Spec()+","+testRing.Spec())
	if _, err := testStore.ReencryptSecrets(ctx, rotated); err != nil {
		t.Fatal(err)
	}
	moved, _ := testStore.DatabaseByID(ctx, d.ID)
	if id, _ := secrets.EnvelopeKeyID(moved.PasswordSealed); id != "k2" {
		t.Errorf("the password is sealed under %q after reencrypt, want k2", id)
	}
	if plain, err := rotated.Decrypt(moved.PasswordSealed, secrets.DatabasePassword(d.ID)); err != nil || string(plain) != "password-"+d.ID {
		t.Errorf("the re-encrypted password opens as %q, %v", plain, err)
	}
	// Put every secret back under the test key, for the tests that share the database.
	if _, err := testStore.ReencryptSecrets(ctx, mustKeyringSpec(t, testRing.Spec()+","+k2.Spec())); err != nil {
		t.Fatal(err)
	}
	sealedMu.Lock()
	sealedValues = map[string]string{}
	sealedMu.Unlock()
	if err := testStore.SetDatabaseStatus(ctx, d.ID, db.DatabaseDeleted, ""); err != nil {
		t.Fatal(err)
	}
	// Deleted: its name is free again.
	newDatabase(t, app.OrgID, regionID, "main")
}
