package localcluster

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// requireBinaries fails, rather than skips, without PostgreSQL: a skipped test reads as a
// passing one, and these are the only tests of the cluster the dev stack and db tests run on.
func requireBinaries(t *testing.T) {
	t.Helper()
	if _, err := FindBinDir(); err != nil {
		t.Fatalf("these tests need PostgreSQL: %v", err)
	}
}

func TestStartStopKeepsData(t *testing.T) {
	requireBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	dir := filepath.Join(t.TempDir(), "pg")
	c, err := Start(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = c.Stop(context.Background())
		}
	})
	if c.Port() == 0 {
		t.Fatal("no port chosen")
	}
	conn, err := pgx.Connect(ctx, c.DSN())
	if err != nil {
		t.Fatalf("connect %s: %v", c.DSN(), err)
	}
	var db, usr string
	if err := conn.QueryRow(ctx, "SELECT current_database(), current_user").Scan(&db, &usr); err != nil {
		t.Fatal(err)
	}
	if db != Database || usr != User {
		t.Fatalf("connected to %s as %s, want %s as %s", db, usr, Database, User)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('hello')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if _, err := pgx.Connect(ctx, c.DSN()); err == nil {
		t.Fatal("server still answers after Stop")
	}
	// Stopping twice is harmless.
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}

	// Start again on the same directory and a fixed port: the data is still there.
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Start(ctx, Options{Dir: dir, Port: port, LogFile: filepath.Join(dir, "second.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c2.Stop(context.Background()) })
	if c2.Port() != port {
		t.Fatalf("port %d, want %d", c2.Port(), port)
	}
	conn, err = pgx.Connect(ctx, c2.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil {
		t.Fatalf("data not kept across restart: %v", err)
	}
	if v != "hello" {
		t.Fatalf("got %q", v)
	}
	if st, err := os.Stat(filepath.Join(dir, "second.log")); err != nil || st.Size() == 0 {
		t.Fatalf("log file not written: %v", err)
	}
}

// TestStartStopsStalePostmaster simulates an unclean exit: the first cluster is never stopped,
// and a second Start on the same directory must take over.
func TestStartStopsStalePostmaster(t *testing.T) {
	requireBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	dir := filepath.Join(t.TempDir(), "pg")
	c1, err := Start(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c1.Stop(context.Background()) })

	c2, err := Start(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatalf("second Start over a running postmaster: %v", err)
	}
	t.Cleanup(func() { _ = c2.Stop(context.Background()) })
	conn, err := pgx.Connect(ctx, c2.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

// A path pg_ctl's shell would interpret is refused before anything is created or run. Start
// fails for other reasons too (no PostgreSQL, say), so the error must be the refusal itself;
// the payload only touches a file in the test's own directory, should it ever run.
func TestRejectsUnsafePath(t *testing.T) {
	root := t.TempDir()
	marker := filepath.Join(root, "pwned")
	dir := filepath.Join(root, "x$(touch "+marker+")")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Dir: dir})
	if c != nil {
		t.Cleanup(func() { _ = c.Stop(context.Background()) })
	}
	if err == nil || !strings.Contains(err.Error(), "contains characters pg_ctl cannot pass safely") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Start(%q) = %v, want the refusal of a path with shell characters", dir, err)
	}
	for _, p := range []string{dir, marker} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists after the refusal (%v)", p, err)
		}
	}
}

func TestLongDirUsesShortSocketDir(t *testing.T) {
	requireBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "a-rather-long-directory-name-to-push-the-socket-path-past-the-unix-limit", "pg")
	c, err := Start(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Stop(context.Background()) }()
	if !c.tmpSocket {
		t.Fatalf("socket dir %s should have been moved under the temp dir", c.socketDir)
	}
	conn, err := pgx.Connect(ctx, c.DSN())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
}
