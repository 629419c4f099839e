package db_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/google/uuid"

	"github.com/skypanel/skypanel/db"
)

// The seeded runtimes' root filesystem settings (migration 0022): what the buildpacks' images
// were tried with; contract.DefaultRootFS says the same for runtimes created without one.
func TestSeededRuntimesRootFS(t *testing.T) {
	want := map[string]struct {
		readOnly bool
		writable []string
	}{
		"node":       {true, []string{}},
		"python":     {true, []string{}},
		"php":        {true, []string{"/var/run/apache2", "/var/lock/apache2", "/var/lib/php/sessions"}},
		"dockerfile": {false, []string{}},
		"auto":       {false, []string{}},
	}
	for slug, w := range want {
		rt, err := testStore.RuntimeByRef(context.Background(), slug)
		if err != nil {
			t.Fatalf("runtime %s: %v", slug, err)
		}
		if rt.ReadOnlyRoot != w.readOnly || !reflect.DeepEqual(rt.WritablePaths, w.writable) {
			t.Errorf("runtime %s: read-only %v, writable %#v; want %v, %#v", slug, rt.ReadOnlyRoot, rt.WritablePaths, w.readOnly, w.writable)
		}
	}
	stacks, err := testStore.StackRuntimes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if php := stacks["php"]; !php.ReadOnlyRoot || len(php.WritablePaths) != 3 || php.RunImage == "" {
		t.Errorf("the auto runtime's php stack: %+v", php)
	}
}

func TestRuntimeRootFSIsStoredAndReachesTheAppTarget(t *testing.T) {
	ctx := context.Background()
	slug := "rofs-" + uuid.NewString()[:8]
	rt, err := testStore.CreateRuntime(ctx, db.Runtime{Slug: slug, Name: "Read-only test", Kind: "dockerfile", Active: true,
		ReadOnlyRoot: true, WritablePaths: []string{"/srv/cache", "/var/run/app"}})
	if err != nil {
		t.Fatal(err)
	}
	if !rt.ReadOnlyRoot || !reflect.DeepEqual(rt.WritablePaths, []string{"/srv/cache", "/var/run/app"}) {
		t.Errorf("created: %+v", rt)
	}

	region, _ := testStore.RegionByRef(ctx, "local")
	app := newAppInRegion(t, region.ID)
	if _, err := testStore.UpdateApplication(ctx, app.OrgID, app.ID, db.ApplicationChanges{RuntimeID: &rt.ID}); err != nil {
		t.Fatal(err)
	}
	target, err := testStore.AppTargetByID(ctx, app.ID)
	if err != nil {
		t.Fatal(err)
	}
	if target.RuntimeKind != "dockerfile" || !target.ReadOnlyRoot || !reflect.DeepEqual(target.WritablePaths, rt.WritablePaths) {
		t.Errorf("app target: kind %q read-only %v writable %v", target.RuntimeKind, target.ReadOnlyRoot, target.WritablePaths)
	}

	rt.ReadOnlyRoot, rt.WritablePaths = false, nil
	updated, err := testStore.UpdateRuntime(ctx, slug, rt)
	if err != nil {
		t.Fatal(err)
	}
	if updated.ReadOnlyRoot || len(updated.WritablePaths) != 0 {
		t.Errorf("updated: %+v", updated)
	}
	if target, _ := testStore.AppTargetByID(ctx, app.ID); target.ReadOnlyRoot || len(target.WritablePaths) != 0 {
		t.Errorf("app target after the update: read-only %v writable %v", target.ReadOnlyRoot, target.WritablePaths)
	}

	rt.ReadOnlyRoot, rt.WritablePaths = true, []string{"/1", "/2", "/3", "/4", "/5", "/6", "/7", "/8", "/9"}
	if _, err := testStore.UpdateRuntime(ctx, slug, rt); err == nil {
		t.Error("nine writable paths were stored")
	}
}
