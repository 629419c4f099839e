package db_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/skypanel/skypanel/db"
)

// waitWake waits for one wake-up on ch; what names it in the failure.
func waitWake(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("no wake-up: %s", what)
	}
}

func TestNotifierWakesWhoWaitsOnWhatChangedAndEveryoneAfterReconnecting(t *testing.T) {
	ctx := context.Background()
	f, g := newFixture(t), newFixture(t)
	depA := enqueue(t, f.org, f.app.ID, db.OpDeploy).Operation.ID
	depB := enqueue(t, g.org, g.app.ID, db.OpDeploy).Operation.ID
	u, err := testStore.CreateUser(ctx, uuid.NewString()+"@example.com", "Streamer", db.RoleCustomer, []byte(uuid.NewString()))
	if err != nil {
		t.Fatal(err)
	}
	token, err := testStore.CreateAPIToken(ctx, u.ID, "ci", "spt_x", []byte(uuid.NewString()), nil)
	if err != nil {
		t.Fatal(err)
	}

	n := db.NewNotifier(testStore.Pool(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer n.Close()
	a, stopA := n.Subscribe(db.ChannelLog, depA)
	defer stopA()
	b, stopB := n.Subscribe(db.ChannelLog, depB)
	defer stopB()
	other, stopOther := n.Subscribe(db.ChannelLog, uuid.NewString())
	defer stopOther()
	tok, stopTok := n.Subscribe(db.ChannelToken, token.ID)
	defer stopTok()
	all := map[string]<-chan struct{}{"a": a, "b": b, "other": other, "token": tok}
	// Listening starts with a wake-up for everyone (nothing listened before).
	for name, ch := range all {
		waitWake(t, ch, name+" once listening")
	}

	// One statement inserting chunks of two deployments wakes both.
	if _, err := testStore.Pool().Exec(ctx, `INSERT INTO deployment_log_chunks (deployment_id, source, attempt, seq, body)
		VALUES ($1, 'build', 1, 0, 'a0'), ($1, 'build', 1, 1, 'a1'), ($2, 'build', 1, 0, 'b0')`, depA, depB); err != nil {
		t.Fatal(err)
	}
	waitWake(t, a, "a: its chunks were inserted")
	waitWake(t, b, "b: its chunk was inserted")

	// A chunk of B only, then a status change of A: A's wake-up comes from its status alone.
	if err := testStore.AppendControlLog(ctx, depB, "progress", "b1"); err != nil {
		t.Fatal(err)
	}
	waitWake(t, b, "b: its control line was written")
	if err := testStore.SetDeploymentStatus(ctx, depA, db.DeploymentBuilding); err != nil {
		t.Fatal(err)
	}
	waitWake(t, a, "a: its status changed")

	// Revoking the token wakes its subscriber. Notifications arrive in commit order, so by now
	// every earlier one has been handed out: nobody else was woken.
	if err := testStore.DeleteAPIToken(ctx, u.ID, token.ID); err != nil {
		t.Fatal(err)
	}
	waitWake(t, tok, "token: revoked")
	for name, ch := range map[string]<-chan struct{}{"a": a, "b": b, "other": other} {
		select {
		case <-ch:
			t.Errorf("%s was woken by another's change", name)
		default:
		}
	}

	// The listening connection dies: once listening again, everyone is woken (what was
	// notified meanwhile is lost), and notifications flow again.
	var killed int
	if err := testStore.Pool().QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = 'skypanel-notifier'`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminate the listening connection: %d terminated, %v", killed, err)
	}
	for name, ch := range all {
		waitWake(t, ch, name+" once listening again")
	}
	if err := testStore.AppendControlLog(ctx, depA, db.LogKeyResult, "==> Deployed\n"); err != nil {
		t.Fatal(err)
	}
	waitWake(t, a, "a: its result chunk was written after the reconnect")
}

func TestNotifierSubscriptionsEndAndCloseStopsIt(t *testing.T) {
	n := db.NewNotifier(testStore.Pool(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ch, stop := n.Subscribe(db.ChannelLog, uuid.NewString())
	waitWake(t, ch, "once listening")
	stop()
	stop() // twice is harmless
	n.Close()
	// The server drops the backend shortly after the connection's goodbye.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var left int
		if err := testStore.Pool().QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = 'skypanel-notifier'`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Close %d listening connections are left", left)
		}
	}
	if late, _ := n.Subscribe(db.ChannelLog, uuid.NewString()); late == nil {
		t.Error("subscribing after Close gave no channel")
	}
}
