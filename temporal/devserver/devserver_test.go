package devserver

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"

	"github.com/skypanel/skypanel/temporal"
)

func findCLIOrSkip(t *testing.T) string {
	t.Helper()
	cli, err := FindCLI()
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("Temporal CLI not installed, skipping (run `make deps` to install it into ./bin): %v", err)
		}
		t.Fatalf("CI is set but the Temporal CLI is missing: %v", err)
	}
	return cli
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func checkAttrs(t *testing.T, ctx context.Context, s *Server) {
	t.Helper()
	c, err := temporal.Dial(ctx, temporal.ClientConfig{Address: s.Address(), Namespace: s.Namespace()}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: s.Namespace()})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range temporal.SearchAttributeNames {
		if got := resp.GetCustomAttributes()[name]; got != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
			t.Errorf("search attribute %s: type %v, want Keyword (have %v)", name, got, resp.GetCustomAttributes())
		}
	}
}

func TestStartRestartSameDB(t *testing.T) {
	cli := findCLIOrSkip(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	db := filepath.Join(dir, "temporal.db")
	logFile := filepath.Join(dir, "temporal.log")

	s, err := Start(ctx, Options{CLIPath: cli, DBFile: db, LogFile: logFile, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	if s.UIURL() == "" {
		t.Fatal("UI expected")
	}
	resp, err := http.Get(s.UIURL() + "/")
	if err != nil {
		t.Fatalf("web UI: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("web UI: %s", resp.Status)
	}
	checkAttrs(t, ctx, s)
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("process still running after Stop")
	}

	// Second start on the same SQLite file (namespace and attributes already there), headless.
	s2, err := Start(ctx, Options{CLIPath: cli, DBFile: db, LogFile: logFile, UIPort: -1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s2.Stop(context.Background()) })
	if s2.UIURL() != "" {
		t.Fatalf("headless server has UI %s", s2.UIURL())
	}
	checkAttrs(t, ctx, s2)
	if err := s2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestAddsMissingAttributes starts a file without the attributes (as an older SkyPanel would
// have created it) and checks that a later Start adds them, since start-dev's flags only apply
// to a namespace it creates.
func TestAddsMissingAttributes(t *testing.T) {
	cli := findCLIOrSkip(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	db := filepath.Join(t.TempDir(), "temporal.db")

	s, err := Start(ctx, Options{CLIPath: cli, DBFile: db, UIPort: -1, SearchAttributes: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	s2, err := Start(ctx, Options{CLIPath: cli, DBFile: db, UIPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s2.Stop(context.Background()) })
	checkAttrs(t, ctx, s2)
}

func TestStartFailsWithOutput(t *testing.T) {
	cli := findCLIOrSkip(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A directory as the database file: the server cannot start.
	_, err := Start(ctx, Options{CLIPath: cli, DBFile: t.TempDir(), UIPort: -1, Port: 0})
	if err == nil {
		t.Fatal("expected an error")
	}
	t.Log(err)
}

func TestMissingCLI(t *testing.T) {
	_, err := Start(context.Background(), Options{CLIPath: filepath.Join(t.TempDir(), "nope")})
	if err == nil {
		t.Fatal("expected an error")
	}
}

// TestDialWaitsForServer checks temporal.Dial's retry loop: it is called before the server
// listens and connects once the server is up.
func TestDialWaitsForServer(t *testing.T) {
	cli := findCLIOrSkip(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	port, err := freePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		err error
	}
	dialed := make(chan result, 1)
	go func() {
		c, err := temporal.Dial(ctx, temporal.ClientConfig{Address: "127.0.0.1:" + itoa(port)}, testLogger(t))
		if err == nil {
			_, err = c.CheckHealth(ctx, nil)
			c.Close()
		}
		dialed <- result{err}
	}()
	time.Sleep(1500 * time.Millisecond)
	s, err := Start(ctx, Options{CLIPath: cli, Port: port, UIPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	if r := <-dialed; r.err != nil {
		t.Fatalf("Dial: %v", r.err)
	}

	// Against a port nobody listens on, Dial gives up at the deadline.
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(ctx, 2*time.Second)
	defer cancel2()
	start := time.Now()
	if _, err := temporal.Dial(short, temporal.ClientConfig{Address: s.Address()}, nil); err == nil {
		t.Fatal("Dial to a stopped server succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Dial took %v past a 2s deadline", d)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
