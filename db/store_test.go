package db_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/skypanel/skypanel/cmd/skypanel/devharness/localcluster"
	"github.com/skypanel/skypanel/db"
)

// testStore is one real Postgres cluster for the package's tests, migrated twice to prove the
// migrations are idempotent.
var testStore *db.Store

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// make test installs PostgreSQL, so a missing server is a failure, never a silent pass.
	if _, err := localcluster.FindBinDir(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the db tests need PostgreSQL: %v (run make deps)\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "skypanel-dbtest-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	cluster, err := localcluster.Start(ctx, localcluster.Options{Dir: filepath.Join(dir, "pg")})
	if err != nil {
		slog.Error("start postgres", "error", err)
		return 1
	}
	defer cluster.Stop(context.Background()) //nolint:errcheck
	pool, err := db.Open(ctx, cluster.DSN())
	if err != nil {
		slog.Error("open", "error", err)
		return 1
	}
	defer pool.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for range 2 {
		if err := db.Migrate(ctx, pool, quiet); err != nil {
			slog.Error("migrate", "error", err)
			return 1
		}
	}
	testStore = db.NewStore(pool)
	return m.Run()
}

type fixture struct {
	org    string
	app    db.Application
	nodeID string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	ctx := context.Background()
	region, _ := testStore.RegionByRef(ctx, "local")
	app := newAppInRegion(t, region.ID)
	node, err := testStore.CreateNode(ctx, "node-"+uuid.NewString()[:8], region.ID, "", []byte(uuid.NewString()), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return fixture{org: app.OrgID, app: app, nodeID: node.ID}
}

func TestSeededCatalog(t *testing.T) {
	plans, err := testStore.ListPlans(context.Background(), false)
	if err != nil || len(plans) < 3 {
		t.Fatalf("plans %v %v", plans, err)
	}
	runtimes, _ := testStore.ListRuntimes(context.Background(), false)
	kinds := map[string]bool{}
	for _, r := range runtimes {
		kinds[r.Kind] = true
	}
	for _, k := range []string{"node", "python", "php", "dockerfile"} {
		if !kinds[k] {
			t.Errorf("runtime kind %s not seeded", k)
		}
	}
}

func TestAnotherOrganizationSeesNothing(t *testing.T) {
	ctx := context.Background()
	a, b := newFixture(t), newFixture(t)
	if _, err := testStore.GetApplication(ctx, b.org, a.app.ID); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("get: %v", err)
	}
	if _, err := testStore.EnqueueOperation(ctx, b.org, a.app.ID, newOp(db.OpDelete)); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("delete: %v", err)
	}
	if _, err := testStore.GetApplication(ctx, b.org, "not-a-uuid"); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("malformed id: %v", err)
	}
}

func TestLogChunksAreStoredOnceAndOnlyFromTheAppsNode(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dep := enqueue(t, f.org, f.app.ID, db.OpDeploy).Operation.ID
	chunk := db.NodeLogChunk{DeploymentID: dep, Source: "build", Attempt: 1, Seq: 0, Text: "Step 1/2\n"}
	if err := testStore.AppendLogChunk(ctx, f.nodeID, chunk); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("a node the app is not placed on wrote its log: %v", err)
	}
	if _, err := testStore.PlaceApplication(ctx, f.app.ID); !errors.Is(err, db.ErrNoNode) {
		t.Fatalf("placement with no online node: %v", err)
	}
	// Register and heartbeat the node so placement picks it.
	regHash := []byte(uuid.NewString())
	if _, err := testStore.SetRegistrationToken(ctx, f.nodeID, regHash, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := testStore.RegisterNode(ctx, regHash, []byte(uuid.NewString()), db.NodeRegistration{CPUs: 2, MemoryMB: 4096}); err != nil {
		t.Fatal(err)
	}
	placed, err := testStore.PlaceApplication(ctx, f.app.ID)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // a re-sent chunk
		if err := testStore.AppendLogChunk(ctx, placed, chunk); err != nil {
			t.Fatal(err)
		}
	}
	chunk.Seq, chunk.Text = 1, "Step 2/2\n"
	if err := testStore.AppendLogChunk(ctx, placed, chunk); err != nil {
		t.Fatal(err)
	}
	text, err := testStore.DeploymentLog(ctx, f.org, f.app.ID, dep)
	if err != nil || text != "Step 1/2\nStep 2/2\n" {
		t.Errorf("log %q %v", text, err)
	}

	// Past the cap (here 30 bytes, 18 stored already): one line says so, the rest is dropped,
	// and a chunk sent again still counts once.
	capped := *testStore
	capped.BuildLogCap = 30
	for seq, text := range []string{"Step 3/5\n", "Step 3/5\n", "Step 4/5 ....\n", "Step 5/5\n"} {
		chunk.Seq, chunk.Text = 2+min(seq, 1)*seq, text
		if seq == 1 {
			chunk.Seq = 2 // the same chunk again
		}
		if err := capped.AppendLogChunk(ctx, placed, chunk); err != nil {
			t.Fatalf("append past the cap: %v", err)
		}
	}
	text, err = testStore.DeploymentLog(ctx, f.org, f.app.ID, dep)
	want := "Step 1/2\nStep 2/2\nStep 3/5\n\n==> The build log reached its cap of 0 MiB: the rest of it is not stored (the build goes on).\n"
	if err != nil || text != want {
		t.Errorf("capped log %q %v, want %q", text, err, want)
	}
}

func TestFinishingADeploymentFreesTheAppInTheSameStep(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	deploy := enqueue(t, f.org, f.app.ID, db.OpDeploy)
	dep := deploy.Operation.ID
	if err := testStore.CompleteDeployment(ctx, f.app.ID, dep, "sp-x-1", "http://x/"); err != nil {
		t.Fatal(err)
	}
	app, _ := testStore.GetApplication(ctx, f.org, f.app.ID)
	if app.ActiveWorkflowID != nil || app.Status != db.AppRunning || app.CurrentDeploymentID == nil || *app.CurrentDeploymentID != dep {
		t.Fatalf("after completion: %+v", app)
	}
	restart := enqueue(t, f.org, f.app.ID, db.OpRestart)
	if next := finish(t, deploy.Operation, db.OperationSucceeded); next == nil || next.ID != restart.Operation.ID {
		t.Fatalf("after the deploy: %+v, want the restart", next)
	}

	// A late failure report of an old deployment must not free a newer operation's turn.
	if err := testStore.FailDeployment(ctx, f.app.ID, dep, db.DeploymentFailed, "late"); err != nil {
		t.Fatal(err)
	}
	app, _ = testStore.GetApplication(ctx, f.org, f.app.ID)
	if app.ActiveWorkflowID == nil || *app.ActiveWorkflowID != restart.Operation.WorkflowID {
		t.Errorf("another operation's turn was freed: %v", app.ActiveWorkflowID)
	}
}
