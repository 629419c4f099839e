package db_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/skypanel/skypanel/db"
)

// An admin adds an engine version and a plan; customers see them while they are active; a
// duplicate is a conflict that changes nothing; a plan a database has used cannot be deleted,
// an unused one can.
func TestTheDatabaseCatalogueIsManaged(t *testing.T) {
	ctx := context.Background()
	pg, err := testStore.DatabaseEngineVersion(ctx, "postgresql", "15")
	if err != nil {
		t.Fatal(err)
	}
	version := "15-" + uuid.NewString()[:8]
	custom := pg
	custom.ID, custom.Version, custom.Image = "", version, "registry.example/postgres:15-custom"
	created, err := testStore.CreateDatabaseEngine(ctx, custom)
	if err != nil {
		t.Fatal(err)
	}
	if created.ID == "" || created.Image != custom.Image || created.ConnectionVars["DATABASE_URL"] != pg.ConnectionVars["DATABASE_URL"] || !created.Active {
		t.Fatalf("created engine: %+v", created)
	}
	if _, err := testStore.CreateDatabaseEngine(ctx, custom); !errors.Is(err, db.ErrConflict) {
		t.Fatalf("a second postgresql %s: %v, want a conflict", version, err)
	}
	if got, err := testStore.DatabaseEngineVersion(ctx, "postgresql", version); err != nil || got.ID != created.ID {
		t.Fatalf("customers do not find the new version: %+v %v", got, err)
	}
	created.Active = false
	created.DumpCommand = []string{"pg_dump", "-Fc"}
	updated, err := testStore.UpdateDatabaseEngine(ctx, created)
	if err != nil || updated.Active || len(updated.DumpCommand) != 2 {
		t.Fatalf("update: %+v %v", updated, err)
	}
	if _, err := testStore.DatabaseEngineVersion(ctx, "postgresql", version); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("an inactive version is still offered: %v", err)
	}
	missing := created
	missing.ID = uuid.NewString()
	if _, err := testStore.UpdateDatabaseEngine(ctx, missing); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("update of a missing engine: %v", err)
	}

	slug := "db-" + uuid.NewString()[:8]
	plan, err := testStore.CreateDatabasePlan(ctx, db.DatabasePlan{Slug: slug, Name: "Big", CPUMillis: 2000, MemoryMB: 2048,
		StorageMB: 20480, PricePerHourMinor: 9, Currency: "USD", Active: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testStore.CreateDatabasePlan(ctx, db.DatabasePlan{Slug: slug, Name: "Again", CPUMillis: 1, MemoryMB: 64, StorageMB: 64, Currency: "USD"}); !errors.Is(err, db.ErrConflict) {
		t.Fatalf("a second plan %s: %v, want a conflict", slug, err)
	}
	plan.PricePerHourMinor = 11
	if plan, err = testStore.UpdateDatabasePlan(ctx, plan); err != nil || plan.PricePerHourMinor != 11 {
		t.Fatalf("update plan: %+v %v", plan, err)
	}
	if got, err := testStore.DatabasePlanByRef(ctx, slug); err != nil || got.ID != plan.ID {
		t.Fatalf("customers do not find the new plan: %+v %v", got, err)
	}

	// A database on the plan holds it.
	_, regionID := newRegisteredNode(t)
	app := newAppInRegion(t, regionID)
	d, _ := newDatabase(t, app.OrgID, regionID, "held")
	if _, err := testStore.Pool().Exec(ctx, `UPDATE databases SET plan_id = $1 WHERE id = $2`, plan.ID, d.ID); err != nil {
		t.Fatal(err)
	}
	if err := testStore.DeleteDatabasePlan(ctx, slug); !errors.Is(err, db.ErrConflict) {
		t.Fatalf("delete a plan in use: %v, want a conflict", err)
	}
	if _, err := testStore.DatabasePlanByID(ctx, plan.ID); err != nil {
		t.Fatalf("the plan in use is gone: %v", err)
	}
	unused, err := testStore.CreateDatabasePlan(ctx, db.DatabasePlan{Slug: slug + "-x", Name: "Unused", CPUMillis: 100, MemoryMB: 64, StorageMB: 64, Currency: "USD", Active: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := testStore.DeleteDatabasePlan(ctx, unused.ID); err != nil {
		t.Fatalf("delete an unused plan: %v", err)
	}
	if err := testStore.DeleteDatabasePlan(ctx, unused.ID); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("delete it again: %v, want not found", err)
	}
}
