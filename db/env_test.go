package db_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
)

func envOf(t *testing.T, appID string) map[string]string {
	t.Helper()
	vars, err := testStore.ListEnv(context.Background(), appID)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, v := range vars {
		m[v.Key] = v.Sealed
	}
	return m
}

// An app that runs no release stores the change and queues nothing; removing a variable that
// does not exist changes nothing at all, even the other changes of the same request.
func TestEnvChangesAreAllOrNothing(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	req := newOp(db.OpConfigure)
	res, err := testStore.ChangeEnv(ctx, f.org, f.app.ID, []db.EnvChange{{Key: "A", Sealed: sealed(t, f.app.ID, "A", "aaa")}, {Key: "B", Sealed: sealed(t, f.app.ID, "B", "bbb")}}, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rollout || len(res.Created) != 2 {
		t.Errorf("a never-deployed app: rollout %v, created %v", res.Rollout, res.Created)
	}
	if got := activeKinds(t, f.org, f.app.ID); got != "" {
		t.Errorf("a change to an app without a release queued %q", got)
	}

	_, err = testStore.ChangeEnv(ctx, f.org, f.app.ID, []db.EnvChange{{Key: "A", Sealed: sealed(t, f.app.ID, "A", "changed")}, {Key: "MISSING", Unset: true}}, req)
	var missing *db.EnvKeyNotFoundError
	if !errors.As(err, &missing) || missing.Key != "MISSING" {
		t.Fatalf("unset of a missing key: %v", err)
	}
	if got := envOf(t, f.app.ID); got["A"] != sealed(t, f.app.ID, "A", "aaa") || len(got) != 2 {
		t.Errorf("a refused request changed the environment: %v", got)
	}

	// Another organization sees no such app.
	other := newFixture(t)
	if _, err := testStore.ChangeEnv(ctx, other.org, f.app.ID, []db.EnvChange{{Key: "A", Sealed: sealed(t, f.app.ID, "A", "x")}}, req); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("another organization's change: %v, want not found", err)
	}
}

// A running app's change queues its rollout in the same transaction, behind what runs; a full
// queue refuses the change and stores nothing; undoing puts every value back.
func TestEnvChangeOfARunningAppQueuesItsRolloutAndCanBeUndone(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	runningWithRelease(t, f)
	first, err := testStore.ChangeEnv(ctx, f.org, f.app.ID, []db.EnvChange{{Key: "KEEP", Sealed: sealed(t, f.app.ID, "KEEP", "keep")}}, newOp(db.OpConfigure))
	if err != nil || !first.Rollout || first.Enqueued.Start == nil || first.Enqueued.Start.ID != first.Enqueued.Operation.ID {
		t.Fatalf("change of an idle running app: %+v %v, want its rollout started", first, err)
	}

	res, err := testStore.ChangeEnv(ctx, f.org, f.app.ID, []db.EnvChange{{Key: "KEEP", Unset: true}, {Key: "NEW", Sealed: sealed(t, f.app.ID, "NEW", "new")}}, newOp(db.OpConfigure))
	if err != nil || !res.Rollout || res.Enqueued.Operation.Position != 1 {
		t.Fatalf("change while another rolls out: %+v %v, want queued at 1", res, err)
	}
	for range db.MaxQueuedOperations - 1 {
		enqueue(t, f.org, f.app.ID, db.OpRestart)
	}
	_, err = testStore.ChangeEnv(ctx, f.org, f.app.ID, []db.EnvChange{{Key: "OTHER", Sealed: sealed(t, f.app.ID, "OTHER", "o")}}, newOp(db.OpConfigure))
	var full *db.QueueFullError
	if !errors.As(err, &full) {
		t.Errorf("a change on a full queue: %v, want refused", err)
	}
	if _, stored := envOf(t, f.app.ID)["OTHER"]; stored {
		t.Error("a refused change stored its variable")
	}
	if err := testStore.UndoEnvChange(ctx, f.app.ID, res); err != nil {
		t.Fatal(err)
	}
	if got := envOf(t, f.app.ID); len(got) != 1 || got["KEEP"] != sealed(t, f.app.ID, "KEEP", "keep") {
		t.Errorf("after undo: %v, want only KEEP as before", got)
	}
}

func TestReplaceSealedValueOnlyReplacesWhatItRead(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	req := newOp(db.OpConfigure)
	if _, err := testStore.ChangeEnv(ctx, f.org, f.app.ID, []db.EnvChange{{Key: "K", Sealed: sealed(t, f.app.ID, "K", "1")}}, req); err != nil {
		t.Fatal(err)
	}
	ref := db.AppEnvRef{AppID: f.app.ID, Key: "K", Sealed: sealed(t, f.app.ID, "K", "1")}
	if _, err := testStore.ChangeEnv(ctx, f.org, f.app.ID, []db.EnvChange{{Key: "K", Sealed: sealed(t, f.app.ID, "K", "2")}}, req); err != nil {
		t.Fatal(err)
	}
	replaced, err := testStore.ReplaceSealedValue(ctx, ref, sealed(t, f.app.ID, "K", "resealed"))
	if err != nil || replaced {
		t.Errorf("a value changed meanwhile was replaced: %v %v", replaced, err)
	}
	if got := envOf(t, f.app.ID); got["K"] != sealed(t, f.app.ID, "K", "2") {
		t.Errorf("K = %q", got["K"])
	}
}

// runningWithRelease deploys f's app (on paper): a succeeded deployment, release v1, running.
func runningWithRelease(t *testing.T, f fixture) {
	t.Helper()
	ctx := context.Background()
	deploy := enqueue(t, f.org, f.app.ID, db.OpDeploy)
	if err := testStore.CompleteDeployment(ctx, f.app.ID, deploy.Operation.ID, "sp-x-1", "http://x/"); err != nil {
		t.Fatal(err)
	}
	finish(t, deploy.Operation, db.OperationSucceeded)
}

// A config release copies the current release's image and lists the variable names, never
// their values.
func TestConfigReleaseKeepsTheImageAndNamesTheKeys(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	runningWithRelease(t, f)
	req := newOp(db.OpConfigure)
	if _, err := testStore.ChangeEnv(ctx, f.org, f.app.ID, []db.EnvChange{{Key: "CANARY", Sealed: sealed(t, f.app.ID, "CANARY", "sealed")}}, req); err != nil {
		t.Fatal(err)
	}
	op := uuid.NewString()
	if err := testStore.CompleteConfigRelease(ctx, f.app.ID, op, "", "Set CANARY", "sp-x-2", "http://x/"); err != nil {
		t.Fatal(err)
	}
	if err := testStore.CompleteConfigRelease(ctx, f.app.ID, op, "", "Set CANARY", "sp-x-2", "http://x/"); err != nil {
		t.Fatalf("recording it twice: %v", err)
	}
	releases, err := testStore.ListReleases(ctx, f.org, f.app.ID)
	if err != nil || len(releases) != 2 {
		t.Fatalf("releases %+v %v", releases, err)
	}
	latest, first := releases[0], releases[1]
	if latest.Kind != "config" || latest.Version != 2 || latest.Image != first.Image || latest.Description != "Set CANARY" || !latest.Current {
		t.Errorf("config release %+v (first %+v)", latest, first)
	}
	if raw := string(latest.Config); !strings.Contains(raw, `"env_keys": ["CANARY"]`) || strings.Contains(raw, "sealed") {
		t.Errorf("config snapshot %s", raw)
	}
}

// testRing seals the values the tests store, as the API does: every stored value is a real
// envelope, so a re-encryption pass over the whole table opens them all.
var (
	testRing     = mustKeyring("k1")
	sealedMu     sync.Mutex
	sealedValues = map[string]string{}
)

func mustKeyring(id string) *secrets.Keyring {
	ring, err := secrets.NewKeyring(id)
	if err != nil {
		panic(err)
	}
	return ring
}

// sealed returns the envelope of value for appID's key, the same one every time it is asked
// for the same triple (so tests can compare what is stored).
func sealed(t *testing.T, appID, key, value string) string {
	t.Helper()
	sealedMu.Lock()
	defer sealedMu.Unlock()
	id := appID + "/" + key + "/" + value
	if env, ok := sealedValues[id]; ok {
		return env
	}
	env, err := testRing.Encrypt([]byte(value), secrets.AppEnvValue(appID, key))
	if err != nil {
		t.Fatal(err)
	}
	sealedValues[id] = env
	return env
}

// Rotation over real rows: values sealed under k1 stay readable with the ring "k2,k1", a pass
// moves every one under k2, a second pass has nothing to do, and then a ring of k2 alone opens
// them all.
func TestReencryptSecretsMovesEveryValueToThePrimaryKey(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	req := newOp(db.OpConfigure)
	if _, err := testStore.ChangeEnv(ctx, f.org, f.app.ID, []db.EnvChange{
		{Key: "TOKEN", Sealed: sealed(t, f.app.ID, "TOKEN", "t0ken")},
		{Key: "URL", Sealed: sealed(t, f.app.ID, "URL", "postgres://x")},
	}, req); err != nil {
		t.Fatal(err)
	}
	// A node's own key is sealed under the platform keyring too.
	node, _ := newRegisteredNode(t)
	nodeEntry := "n1:" + strings.Repeat("A", 43) + "="
	nodeKey, err := testRing.Encrypt([]byte(nodeEntry), secrets.NodeKeyEntry(node.ID, "n1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testStore.EnsureNodeKeys(ctx, node.ID, false, 2, func() (db.NodeKey, error) { return db.NodeKey{ID: "n1", Sealed: nodeKey}, nil }); err != nil {
		t.Fatal(err)
	}
	k2 := mustKeyring("k2")
	rotated, err := secrets.ParseKeyring(k2.Spec() + "," + testRing.Spec())
	if err != nil {
		t.Fatal(err)
	}
	res, err := testStore.ReencryptSecrets(ctx, rotated)
	if err != nil {
		t.Fatal(err)
	}
	if res.Moved < 2 || res.Moved != res.Stored {
		t.Errorf("first pass %+v: want every stored value moved", res)
	}
	again, err := testStore.ReencryptSecrets(ctx, rotated)
	if err != nil || again.Moved != 0 {
		t.Errorf("second pass %+v %v: want nothing left to move", again, err)
	}
	vars, err := testStore.ListEnv(ctx, f.app.ID)
	want := map[string]string{"TOKEN": "t0ken", "URL": "postgres://x"}
	if err != nil || len(vars) != len(want) {
		t.Fatalf("ListEnv after rotation: %d variables %+v, %v; want %d", len(vars), vars, err, len(want))
	}
	for _, v := range vars {
		plain, err := k2.Decrypt(v.Sealed, secrets.AppEnvValue(f.app.ID, v.Key))
		if err != nil || string(plain) != want[v.Key] {
			t.Errorf("%s under k2 alone: %q %v", v.Key, plain, err)
		}
		if _, err := testRing.Decrypt(v.Sealed, secrets.AppEnvValue(f.app.ID, v.Key)); !errors.Is(err, secrets.ErrUnknownKey) {
			t.Errorf("%s still opens with the old key alone: %v", v.Key, err)
		}
	}
	keys, err := testStore.NodeKeys(ctx, node.ID)
	if err != nil || len(keys) != 1 {
		t.Fatalf("node keys after rotation: %+v %v", keys, err)
	}
	if plain, err := k2.Decrypt(keys[0].Sealed, secrets.NodeKeyEntry(node.ID, "n1")); err != nil || string(plain) != nodeEntry {
		t.Errorf("the node's key under k2 alone: %v", err)
	}
	// Everything the other tests stored moved too; put the table back under k1 for them.
	if _, err := testStore.ReencryptSecrets(ctx, mustKeyringSpec(t, testRing.Spec()+","+k2.Spec())); err != nil {
		t.Fatal(err)
	}
	sealedMu.Lock()
	sealedValues = map[string]string{}
	sealedMu.Unlock()
}

func mustKeyringSpec(t *testing.T, spec string) *secrets.Keyring {
	t.Helper()
	ring, err := secrets.ParseKeyring(spec)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}
