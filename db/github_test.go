package db_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
)

// An authorization's state is taken once, by the user it was made for, before it expires.
func TestAGitHubStateIsTakenOnceByItsUserBeforeItExpires(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	owner := appOwner(t, f)
	other := newAppInRegion(t, mustRegion(t))
	otherUser := appOwner(t, fixture{org: other.OrgID, app: other})

	fresh, expired := uuid.NewString(), uuid.NewString()
	if err := testStore.SaveGitHubState(ctx, fresh, owner, time.Now().Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := testStore.SaveGitHubState(ctx, expired, owner, time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if ok, err := testStore.TakeGitHubState(ctx, fresh, otherUser); err != nil || ok {
		t.Fatalf("another user takes the state: %v %v", ok, err)
	}
	if ok, err := testStore.TakeGitHubState(ctx, expired, owner); err != nil || ok {
		t.Fatalf("an expired state is taken: %v %v", ok, err)
	}
	if ok, err := testStore.TakeGitHubState(ctx, fresh, owner); err != nil || !ok {
		t.Fatalf("the state is not taken by its user: %v %v", ok, err)
	}
	if ok, err := testStore.TakeGitHubState(ctx, fresh, owner); err != nil || ok {
		t.Fatalf("the state is taken twice: %v %v", ok, err)
	}
}

// A delivery is taken once; one forgotten (its work could not be queued) is taken again.
func TestAGitHubDeliveryIsTakenOnce(t *testing.T) {
	ctx := context.Background()
	id := uuid.NewString()
	for i, want := range []bool{true, false} {
		if ok, err := testStore.RecordGitHubDelivery(ctx, id, "push"); err != nil || ok != want {
			t.Fatalf("delivery %d: %v %v, want %v", i, ok, err, want)
		}
	}
	if err := testStore.ForgetGitHubDelivery(ctx, id); err != nil {
		t.Fatal(err)
	}
	if ok, err := testStore.RecordGitHubDelivery(ctx, id, "push"); err != nil || !ok {
		t.Fatalf("a forgotten delivery: %v %v", ok, err)
	}
}

// A deploy of a commit that already waits or runs on the app is that deploy; another commit,
// or the same one once its deploy ended, queues a new one (and a newer waiting deploy
// supersedes the older).
func TestADeployOfACommitIsQueuedOncePerApp(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	runningWithRelease(t, f)
	deploy := func(commit string) db.Enqueued {
		t.Helper()
		op := newOp(db.OpDeploy)
		op.Commit = commit
		enq, err := testStore.EnqueueOperation(ctx, f.org, f.app.ID, op)
		if err != nil {
			t.Fatalf("deploy %s: %v", commit, err)
		}
		return enq
	}
	a, b := strings.Repeat("a", 40), strings.Repeat("b", 40)
	first := deploy(a)
	if first.Start == nil {
		t.Fatal("the first deploy of an idle app does not start")
	}
	if again := deploy(a); again.Operation.ID != first.Operation.ID || again.Start != nil {
		t.Fatalf("the same commit again: %+v, want the running deploy %s", again.Operation, first.Operation.ID)
	}
	second := deploy(b)
	if second.Operation.ID == first.Operation.ID || second.Operation.Status != db.OperationQueued {
		t.Fatalf("another commit: %+v", second.Operation)
	}
	if again := deploy(b); again.Operation.ID != second.Operation.ID {
		t.Fatalf("the waiting commit again: %+v, want %s", again.Operation, second.Operation.ID)
	}
	dep, err := testStore.DeploymentByID(ctx, second.Operation.ID)
	if err != nil || dep.RequestedCommit != b {
		t.Fatalf("the deployment of %s records %+v %v", b, dep, err)
	}
	next := finish(t, first.Operation, db.OperationSucceeded)
	if next == nil || next.ID != second.Operation.ID {
		t.Fatalf("after the first: next %+v", next)
	}
	finish(t, *next, db.OperationSucceeded)
	if again := deploy(a); again.Operation.ID == first.Operation.ID || again.Start == nil {
		t.Fatalf("a commit whose deploy ended, deployed again: %+v", again.Operation)
	}
}

// A node gets the clone token of an app's running operation only for an app placed on it,
// and is told when the app's user has disconnected GitHub.
func TestACloneTokenIsForTheRunningOperationOnTheAppsNode(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	runningWithRelease(t, f)
	owner := appOwner(t, f)
	repository := "octo/app-" + uuid.NewString()[:8]
	if _, err := testStore.UpdateApplication(ctx, f.org, f.app.ID, db.ApplicationChanges{GitHubRepository: &repository, GitHubUserID: &owner}); err != nil {
		t.Fatal(err)
	}
	token, err := testRing.Encrypt([]byte("gho_clone"), secrets.GitHubToken(owner))
	if err != nil {
		t.Fatal(err)
	}
	if err := testStore.SaveGitHubConnection(ctx, db.GitHubConnection{UserID: owner, GitHubUserID: 7, Login: "octo", TokenSealed: token, Scopes: "repo"}); err != nil {
		t.Fatal(err)
	}
	nodeID := appNode(t, f)
	op := enqueue(t, f.org, f.app.ID, db.OpDeploy)
	if op.Start == nil {
		t.Fatal("the deploy did not start")
	}
	sealed, user, repo, err := testStore.CloneToken(ctx, nodeID, f.app.ID, op.Operation.ID)
	if err != nil || sealed != token || user != owner || repo != repository {
		t.Fatalf("the app's node: %q %q %q %v", sealed, user, repo, err)
	}
	other, _ := newRegisteredNode(t)
	if _, _, _, err := testStore.CloneToken(ctx, other.ID, f.app.ID, op.Operation.ID); !errors.Is(err, db.ErrNotYourClone) {
		t.Fatalf("another node: %v", err)
	}
	if _, _, _, err := testStore.CloneToken(ctx, nodeID, f.app.ID, uuid.NewString()); !errors.Is(err, db.ErrNotYourClone) {
		t.Fatalf("an operation that does not run: %v", err)
	}
	if err := testStore.DeleteGitHubConnection(ctx, owner); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := testStore.CloneToken(ctx, nodeID, f.app.ID, op.Operation.ID); !errors.Is(err, db.ErrGitHubDisconnected) {
		t.Fatalf("after the user disconnected: %v", err)
	}
	finish(t, op.Operation, db.OperationSucceeded)
	if _, _, _, err := testStore.CloneToken(ctx, nodeID, f.app.ID, op.Operation.ID); !errors.Is(err, db.ErrNotYourClone) {
		t.Fatalf("an operation that ended: %v", err)
	}
}

// secrets reencrypt moves GitHub tokens onto the primary key, under their own label.
func TestGitHubTokensAreReencrypted(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	owner := appOwner(t, f)
	sealed, err := testRing.Encrypt([]byte("gho_reencrypt"), secrets.GitHubToken(owner))
	if err != nil {
		t.Fatal(err)
	}
	if err := testStore.SaveGitHubConnection(ctx, db.GitHubConnection{UserID: owner, GitHubUserID: 8, Login: "octo", TokenSealed: sealed}); err != nil {
		t.Fatal(err)
	}
	k2 := mustKeyring("k2")
	rotated := mustKeyringSpec(t, k2.Spec()+","+testRing.Spec())
	if _, err := testStore.ReencryptSecrets(ctx, rotated); err != nil {
		t.Fatal(err)
	}
	conn, err := testStore.GitHubConnectionOf(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := secrets.EnvelopeKeyID(conn.TokenSealed); id != "k2" {
		t.Errorf("the token is sealed under %q after reencrypt, want k2", id)
	}
	if plain, err := rotated.Decrypt(conn.TokenSealed, secrets.GitHubToken(owner)); err != nil || string(plain) != "gho_reencrypt" {
		t.Errorf("the re-encrypted token opens as %q, %v", plain, err)
	}
	// Put every secret back under the test key, for the tests that share the database.
	if _, err := testStore.ReencryptSecrets(ctx, mustKeyringSpec(t, testRing.Spec()+","+k2.Spec())); err != nil {
		t.Fatal(err)
	}
	sealedMu.Lock()
	sealedValues = map[string]string{}
	sealedMu.Unlock()
}

// appOwner is the user of the app's organization.
func appOwner(t *testing.T, f fixture) string {
	t.Helper()
	var id string
	if err := testStore.Pool().QueryRow(context.Background(), `SELECT user_id::text FROM memberships WHERE org_id = $1 LIMIT 1`, f.app.OrgID).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// appNode places the fixture's app on the fixture's node.
func appNode(t *testing.T, f fixture) string {
	t.Helper()
	if _, err := testStore.Pool().Exec(context.Background(), `UPDATE applications SET node_id = $2 WHERE id = $1`, f.app.ID, f.nodeID); err != nil {
		t.Fatal(err)
	}
	return f.nodeID
}

func mustRegion(t *testing.T) string {
	t.Helper()
	region, err := testStore.RegionByRef(context.Background(), "local")
	if err != nil {
		t.Fatal(err)
	}
	return region.ID
}
