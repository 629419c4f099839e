package docker

import (
	"context"
	"strings"
	"testing"
)

// A suspension stops the database's container and keeps it, its volume and its data; a second
// stop changes nothing, and StartDatabase starts the same container again with its data. A
// database with no container is stopped already.
func TestStopDatabaseKeepsItsContainerAndDataForTheNextStart(t *testing.T) {
	f := newDatabaseFixture(t, "stop")
	ctx := context.Background()
	c := f.a.Client
	db := newTestDatabase(t, f, redisEngine)
	var first, second StartDatabaseResult
	if err := f.run(t, f.a.StartDatabase, db.in, &first); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, f, db)
	name := DatabaseContainerName(db.in.DatabaseID)
	mustExec(t, c, name, redisCLI("set t kept"), nil)

	stop := StopDatabaseInput{DatabaseID: db.in.DatabaseID, OrgID: db.in.OrgID}
	for range 2 {
		if err := f.run(t, f.a.StopDatabase, stop, nil); err != nil {
			t.Fatal(err)
		}
	}
	info, err := c.ContainerInspect(ctx, name)
	if err != nil || info.State.Running || info.ID != first.ContainerID {
		t.Fatalf("after the stop: %v, running %v, id %s (want %s, stopped)", err, info.State != nil && info.State.Running, info.ID, first.ContainerID)
	}
	if _, err := c.VolumeInspect(ctx, DatabaseVolumeName(db.in.DatabaseID)); err != nil {
		t.Fatalf("the volume after the stop: %v", err)
	}

	if err := f.run(t, f.a.StartDatabase, db.in, &second); err != nil {
		t.Fatal(err)
	}
	if second.ContainerID != first.ContainerID {
		t.Errorf("the start made container %s, want the stopped %s again", second.ContainerID, first.ContainerID)
	}
	waitHealthy(t, f, db)
	if got := strings.TrimSpace(mustExec(t, c, name, redisCLI("get t"), nil)); got != "kept" {
		t.Errorf("the data after stop and start: %q, want kept", got)
	}

	gone := StopDatabaseInput{DatabaseID: "tdb-" + randomHex(t, 6), OrgID: db.in.OrgID}
	if err := f.run(t, f.a.StopDatabase, gone, nil); err != nil {
		t.Errorf("stop of a database with no container: %v, want nothing to do", err)
	}
}
