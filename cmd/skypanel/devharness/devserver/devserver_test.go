package devserver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"

	"github.com/skypanel/skypanel/temporal"
)

// requireCLI fails, rather than skips, without the Temporal CLI: a skipped test reads as a
// passing one.
func requireCLI(t *testing.T) string {
	t.Helper()
	cli, err := FindCLI()
	if err != nil {
		t.Fatalf("these tests need the Temporal CLI: %v", err)
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
	cli := requireCLI(t)
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
	cli := requireCLI(t)
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

// A server that cannot start fails Start with the tail of what it printed: the error must
// carry the server's last line of output, as the log file recorded it.
func TestStartFailsWithOutput(t *testing.T) {
	cli := requireCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logFile := filepath.Join(t.TempDir(), "temporal.log")
	// A directory as the database file: the server cannot start.
	_, err := Start(ctx, Options{CLIPath: cli, DBFile: t.TempDir(), LogFile: logFile, UIPort: -1, Port: 0})
	if err == nil {
		t.Fatal("expected an error")
	}
	log, readErr := os.ReadFile(logFile)
	if readErr != nil {
		t.Fatal(readErr)
	}
	// The log file holds a "--- <time>: <command>" line per launch, then the server's output.
	var lastOutput string
	for _, line := range strings.Split(string(log), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "--- ") {
			lastOutput = line
		}
	}
	if lastOutput == "" {
		t.Fatalf("the server printed nothing, so this test proves nothing; log file:\n%s", log)
	}
	if !strings.Contains(err.Error(), "server output") || !strings.Contains(err.Error(), lastOutput) {
		t.Fatalf("error %q does not carry the server's output %q", err, lastOutput)
	}
}

func TestMissingCLI(t *testing.T) {
	_, err := Start(context.Background(), Options{CLIPath: filepath.Join(t.TempDir(), "nope")})
	if err == nil {
		t.Fatal("expected an error")
	}
}

// TestDialWaitsForServer checks temporal.Dial's retry loop: it is called before the server
// listens and connects once the server is up. The order is established by state, not by
// sleeping: a stand-in listener on the server's port takes Dial's first attempt (and closes
// it unanswered), and only then, with Dial still waiting, is the server started.
func TestDialWaitsForServer(t *testing.T) {
	cli := requireCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	standIn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := standIn.Addr().(*net.TCPAddr).Port
	attempted := make(chan struct{})
	go func() {
		conn, err := standIn.Accept()
		if err == nil {
			conn.Close()
			close(attempted)
		}
	}()
	dialed := make(chan error, 1)
	go func() {
		c, err := temporal.Dial(ctx, temporal.ClientConfig{Address: "127.0.0.1:" + itoa(port)}, testLogger(t))
		if err == nil {
			_, err = c.CheckHealth(ctx, nil)
			c.Close()
		}
		dialed <- err
	}()
	select {
	case <-attempted:
	case err := <-dialed:
		standIn.Close()
		t.Fatalf("Dial returned before reaching the port: %v", err)
	case <-ctx.Done():
		standIn.Close()
		t.Fatal("Dial never reached the port")
	}
	standIn.Close()
	select {
	case err := <-dialed:
		t.Fatalf("Dial gave up after one failed attempt, before the server was started: %v", err)
	default:
	}
	s, err := Start(ctx, Options{CLIPath: cli, Port: port, UIPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	if err := <-dialed; err != nil {
		t.Fatalf("Dial: %v", err)
	}

	// Against a port nobody listens on, Dial gives up when its context ends, and says so.
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(ctx, 2*time.Second)
	defer cancel2()
	_, err = temporal.Dial(short, temporal.ClientConfig{Address: s.Address()}, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial to a stopped server = %v, want it to give up at its context's deadline", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
