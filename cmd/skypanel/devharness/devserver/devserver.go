// Package devserver runs the Temporal CLI's development server (`temporal server start-dev`)
// as a child process: the Temporal of `skypanel dev`, `make run` and the tests.
//
// The child is started in its own process group with a parent-death signal (SIGTERM), so it
// dies with the process that started it even when that one is killed with SIGKILL.
//
// Search attributes: start-dev's --search-attribute flags are only applied when a namespace is
// created. With a --db-filename that already holds the namespace (a second start), the flags
// are accepted and silently ignored; the attributes registered on the first start persist in
// the SQLite file. Start therefore passes the flags (so a fresh file gets them at creation) and
// then checks the namespace with the operator service, adding any attribute that is missing
// (for example one added to temporal.SearchAttributeNames after the file was created).
package devserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/skypanel/skypanel/temporal"
)

// DefaultCLIPath is where `make deps` installs the Temporal CLI (relative to the repository root).
const DefaultCLIPath = "./bin/temporal"

// Options configures Start.
type Options struct {
	// CLIPath is the temporal binary; default: FindCLI().
	CLIPath string
	// DBFile is the SQLite file that keeps Temporal's state across restarts; "" = in memory.
	DBFile string
	// IP the frontend and UI bind to; default 127.0.0.1.
	IP string
	// Port of the frontend (gRPC); 0 = a free port.
	Port int
	// UIPort of the Web UI; 0 = a free port, -1 = no UI (--headless).
	UIPort int
	// Namespace to create and check; default "default" (which start-dev always creates).
	Namespace string
	// SearchAttributes are Keyword search attributes the namespace must have;
	// nil = temporal.SearchAttributeNames, an empty non-nil slice = none.
	SearchAttributes []string
	// CodecEndpoint is the remote codec URL the Web UI uses to decode payloads (optional).
	CodecEndpoint string
	// LogFile receives the server's stdout and stderr (appended); "" = discarded.
	LogFile string
	// StartTimeout bounds the wait for the frontend (on top of ctx); default 90s.
	StartTimeout time.Duration
	// Logger for the launcher's own messages; nil = discard.
	Logger *slog.Logger
}

// Server is a running dev server.
type Server struct {
	cmd       *exec.Cmd
	ip        string
	port      int
	uiPort    int // 0 when headless
	namespace string
	logFile   string
	out       *tailBuffer
	logger    *slog.Logger

	done     chan struct{} // closed when the process has exited
	waitErr  error
	stopOnce sync.Once
	stopErr  error
}

// Address is the frontend's host:port (TEMPORAL_ADDRESS).
func (s *Server) Address() string { return net.JoinHostPort(s.ip, strconv.Itoa(s.port)) }

// Namespace is the namespace Start prepared.
func (s *Server) Namespace() string { return s.namespace }

// UIURL is the Web UI's base URL, or "" when the server runs headless.
func (s *Server) UIURL() string {
	if s.uiPort <= 0 {
		return ""
	}
	return "http://" + net.JoinHostPort(s.ip, strconv.Itoa(s.uiPort))
}

// PID is the child's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Done is closed when the server process has exited (after Stop, or on its own).
func (s *Server) Done() <-chan struct{} { return s.done }

// Err is the process's exit error once Done is closed.
func (s *Server) Err() error {
	select {
	case <-s.done:
		return s.waitErr
	default:
		return nil
	}
}

// FindCLI locates the temporal binary: $SKYPANEL_TEMPORAL_CLI or $TEMPORAL_CLI, $SKYPANEL_BIN_DIR/temporal,
// bin/temporal in the working directory or any parent up to the module root (so tests running
// in a package directory find the repository's bin/), then temporal on PATH.
func FindCLI() (string, error) {
	for _, env := range []string{"SKYPANEL_TEMPORAL_CLI", "TEMPORAL_CLI"} {
		if p := os.Getenv(env); p != "" {
			if isExecutable(p) {
				return filepath.Abs(p)
			}
			return "", fmt.Errorf("devserver: %s=%s is not an executable file", env, p)
		}
	}
	if d := os.Getenv("SKYPANEL_BIN_DIR"); d != "" {
		if p := filepath.Join(d, "temporal"); isExecutable(p) {
			return filepath.Abs(p)
		}
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; {
			if p := filepath.Join(dir, "bin", "temporal"); isExecutable(p) {
				return p, nil
			}
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p, nil
	}
	return "", errors.New("devserver: Temporal CLI not found (looked at $SKYPANEL_TEMPORAL_CLI, $TEMPORAL_CLI, $SKYPANEL_BIN_DIR/temporal, ./bin/temporal up to the module root, PATH): run `make deps` to install it into ./bin")
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// Start launches `temporal server start-dev`, waits until the frontend answers a health check
// and the namespace has the search attributes, and returns the running server. On failure the
// child is stopped and the error carries the tail of its output.
func Start(ctx context.Context, opts Options) (*Server, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cli := opts.CLIPath
	if cli == "" {
		if isExecutable(DefaultCLIPath) {
			cli = DefaultCLIPath
		} else {
			var err error
			if cli, err = FindCLI(); err != nil {
				return nil, err
			}
		}
	} else if !isExecutable(cli) {
		return nil, fmt.Errorf("devserver: Temporal CLI %s is not an executable file: run `make deps`", cli)
	}
	ip := opts.IP
	if ip == "" {
		ip = "127.0.0.1"
	}
	if net.ParseIP(ip) == nil {
		return nil, fmt.Errorf("devserver: IP %q is not an IP address", ip)
	}
	ns := opts.Namespace
	if ns == "" {
		ns = temporal.DefaultNamespace
	}
	attrs := opts.SearchAttributes
	if attrs == nil {
		attrs = temporal.SearchAttributeNames
	}
	for _, a := range attrs {
		if !validAttrName(a) {
			return nil, fmt.Errorf("devserver: invalid search attribute name %q", a)
		}
	}
	dbFile := opts.DBFile
	if dbFile != "" {
		var err error
		if dbFile, err = filepath.Abs(dbFile); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(dbFile), 0o755); err != nil {
			return nil, fmt.Errorf("devserver: %w", err)
		}
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = 90 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// Ports picked here may be taken by someone else before the server binds them: retry then.
	attempts := 1
	if opts.Port == 0 || opts.UIPort == 0 {
		attempts = 3
	}
	var lastErr error
	for i := 0; i < attempts; i++ {
		s, err := launch(ctx, cli, ip, dbFile, ns, attrs, opts, logger)
		if err != nil {
			return nil, err
		}
		err = s.waitReady(ctx, attrs)
		if err == nil {
			logger.Info("temporal dev server ready", "address", s.Address(), "ui", s.UIURL(), "db", dbFile, "pid", s.PID())
			return s, nil
		}
		lastErr = err
		exitedEarly := false
		select {
		case <-s.done:
			exitedEarly = true
		default:
		}
		_ = s.Stop(context.WithoutCancel(ctx))
		if !exitedEarly || ctx.Err() != nil || !strings.Contains(s.out.String(), "port") {
			break
		}
		logger.Warn("temporal dev server could not bind its ports, retrying", "error", err)
	}
	return nil, lastErr
}

func validAttrName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func launch(ctx context.Context, cli, ip, dbFile, ns string, attrs []string, opts Options, logger *slog.Logger) (*Server, error) {
	port := opts.Port
	if port == 0 {
		var err error
		if port, err = freePort(ip); err != nil {
			return nil, err
		}
	}
	uiPort := opts.UIPort
	if uiPort == 0 {
		var err error
		if uiPort, err = freePort(ip); err != nil {
			return nil, err
		}
	}
	args := []string{"server", "start-dev",
		"--ip", ip,
		"--port", strconv.Itoa(port),
	}
	if uiPort > 0 {
		args = append(args, "--ui-port", strconv.Itoa(uiPort))
		if opts.CodecEndpoint != "" {
			args = append(args, "--ui-codec-endpoint", opts.CodecEndpoint)
		}
	} else {
		args = append(args, "--headless")
		uiPort = 0
	}
	if dbFile != "" {
		// WAL with synchronous=NORMAL: one fsync per checkpoint instead of several per write.
		// Every workflow step is a history write, so this sets the pace of every operation; a
		// crash of the process loses nothing, a power cut may lose the last moment's writes,
		// which is acceptable for the single-machine dev server (production runs a real cluster).
		args = append(args, "--db-filename", dbFile,
			"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal")
	}
	// "default" is always created; name another namespace to have it created too.
	if ns != temporal.DefaultNamespace {
		args = append(args, "--namespace", ns)
	}
	for _, a := range attrs {
		args = append(args, "--search-attribute", a+"=Keyword")
	}
	args = append(args, "--log-level", "warn")

	s := &Server{
		ip:        ip,
		port:      port,
		uiPort:    uiPort,
		namespace: ns,
		logFile:   opts.LogFile,
		out:       &tailBuffer{max: 16 << 10},
		logger:    logger,
		done:      make(chan struct{}),
	}
	var w io.Writer = s.out
	var logf *os.File
	if opts.LogFile != "" {
		if err := os.MkdirAll(filepath.Dir(opts.LogFile), 0o755); err != nil {
			return nil, fmt.Errorf("devserver: %w", err)
		}
		f, err := os.OpenFile(opts.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, fmt.Errorf("devserver: log file: %w", err)
		}
		logf = f
		fmt.Fprintf(f, "--- %s: %s %s\n", time.Now().Format(time.RFC3339), cli, strings.Join(args, " "))
		w = io.MultiWriter(f, s.out)
	}
	cmd := exec.Command(cli, args...)
	cmd.Stdout = w
	cmd.Stderr = w
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		if logf != nil {
			_ = logf.Close()
		}
		return nil, fmt.Errorf("devserver: start %s: %w", cli, err)
	}
	s.cmd = cmd
	go func() {
		s.waitErr = cmd.Wait()
		if logf != nil {
			_ = logf.Close()
		}
		close(s.done)
	}()
	logger.Debug("temporal dev server started", "pid", cmd.Process.Pid, "args", args)
	return s, nil
}

// waitReady polls until the frontend passes a health check, then ensures the search attributes.
func (s *Server) waitReady(ctx context.Context, attrs []string) error {
	var lastErr error
	for {
		select {
		case <-s.done:
			return fmt.Errorf("devserver: temporal server exited during start-up (%v)%s", s.waitErr, s.outputTail())
		default:
		}
		if err := s.probe(ctx, attrs); err == nil {
			return nil
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("devserver: temporal server on %s not ready: %w (last error: %v)%s", s.Address(), ctx.Err(), lastErr, s.outputTail())
		case <-s.done:
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *Server) probe(ctx context.Context, attrs []string) error {
	// A plain TCP connect first: cheap, and avoids the gRPC client's own back-off while the
	// port is still closed.
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", s.Address())
	if err != nil {
		return err
	}
	_ = conn.Close()

	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := client.DialContext(actx, client.Options{HostPort: s.Address(), Namespace: s.namespace, Logger: quietLogger{}})
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.CheckHealth(actx, &client.CheckHealthRequest{}); err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	if err := EnsureSearchAttributes(actx, c, s.namespace, attrs); err != nil {
		return err
	}
	if s.uiPort > 0 {
		req, err := http.NewRequestWithContext(actx, http.MethodGet, s.UIURL()+"/", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("web UI: %w", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	return nil
}

// EnsureSearchAttributes makes sure namespace ns has every name in attrs as a Keyword search
// attribute, adding the missing ones. It fails when a name exists with another type.
func EnsureSearchAttributes(ctx context.Context, c client.Client, ns string, attrs []string) error {
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		return fmt.Errorf("list search attributes of namespace %s: %w", ns, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, a := range attrs {
		t, ok := resp.GetCustomAttributes()[a]
		if !ok {
			if _, sys := resp.GetSystemAttributes()[a]; sys {
				return fmt.Errorf("search attribute %s is a system attribute", a)
			}
			missing[a] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
			continue
		}
		if t != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
			return fmt.Errorf("search attribute %s exists on namespace %s with type %s, want Keyword", a, ns, t)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace:        ns,
		SearchAttributes: missing,
	}); err != nil {
		return fmt.Errorf("add search attributes to namespace %s: %w", ns, err)
	}
	return nil
}

// Stop sends SIGTERM to the server's process group, waits for it to exit and sends SIGKILL
// after a grace period (10 s, or less when ctx ends sooner). Calling it again is harmless.
func (s *Server) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.stopErr = s.stop(ctx)
	})
	return s.stopErr
}

func (s *Server) stop(ctx context.Context) error {
	select {
	case <-s.done:
		return nil
	default:
	}
	pid := s.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	grace := time.NewTimer(10 * time.Second)
	defer grace.Stop()
	select {
	case <-s.done:
		return nil
	case <-grace.C:
	case <-ctx.Done():
	}
	s.logger.Warn("temporal dev server did not stop after SIGTERM, killing it", "pid", pid)
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	select {
	case <-s.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("devserver: process %d did not exit after SIGKILL", pid)
	}
}

func (s *Server) outputTail() string {
	out := strings.TrimSpace(s.out.String())
	if out == "" {
		return ""
	}
	where := ""
	if s.logFile != "" {
		where = " (full log: " + s.logFile + ")"
	}
	return "\nserver output" + where + ":\n" + out
}

func freePort(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("devserver: pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// quietLogger silences the SDK while probing a server that is still starting.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
