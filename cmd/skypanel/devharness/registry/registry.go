// Package registry runs the platform registry of `skypanel dev`, `make run` and the tests:
// Debian's docker-registry (the CNCF distribution registry 2.8) as a child process, listening
// on loopback with its storage in a directory of the caller's. Builds push there and nodes
// pull from there by digest, so any node can run any release. Docker treats a registry on
// 127.0.0.0/8 as insecure by default: no TLS is needed on loopback, and nothing else can reach it.
package registry

import (
	"context"
	"errors"
	"fmt"
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
)

// DefaultBinary is where Debian's docker-registry package puts the registry.
const DefaultBinary = "/usr/bin/docker-registry"

// Options configures Start.
type Options struct {
	Binary string // default DefaultBinary
	Dir    string // storage and config; required
	Port   int    // on 127.0.0.1; 0 = a free port
	Log    *slog.Logger
}

// Registry is a running registry.
type Registry struct {
	addr     string
	cmd      *exec.Cmd
	done     chan struct{}
	log      *slog.Logger
	stopOnce sync.Once
}

// Addr is host:port, the registry part of image references (127.0.0.1:5000/skypanel/app-…).
func (r *Registry) Addr() string { return r.addr }

// config keeps the registry on loopback, its blobs under dir, and deletion on (pruned releases
// leave the registry as they leave the nodes).
func config(dir, addr string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  headers:
    X-Content-Type-Options: [nosniff]
`, filepath.Join(dir, "storage"), addr)
}

// Start launches the registry and waits until it answers GET /v2/. With Port 0 it takes a free
// port, and another one when the registry could not bind it (another process took the port
// between the check and the registry's start).
func Start(ctx context.Context, opts Options) (*Registry, error) {
	if opts.Port != 0 {
		return start(ctx, opts)
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var r *Registry
		if r, err = start(ctx, opts); err == nil {
			return r, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, err
}

func start(ctx context.Context, opts Options) (*Registry, error) {
	if opts.Dir == "" {
		return nil, errors.New("registry: Dir is required")
	}
	binary := opts.Binary
	if binary == "" {
		binary = DefaultBinary
	}
	if _, err := os.Stat(binary); err != nil {
		return nil, fmt.Errorf("registry: %s not found (make deps installs the docker-registry package): %w", binary, err)
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	port := opts.Port
	if port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := os.MkdirAll(filepath.Join(opts.Dir, "storage"), 0o700); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	confPath := filepath.Join(opts.Dir, "config.yml")
	if err := os.WriteFile(confPath, []byte(config(opts.Dir, addr)), 0o600); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	logFile, err := os.OpenFile(filepath.Join(opts.Dir, "registry.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(binary, "serve", confPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, and gone with its parent even when that one is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("registry: start %s: %w", binary, err)
	}
	r := &Registry{addr: addr, cmd: cmd, done: make(chan struct{}), log: log}
	go func() { _ = cmd.Wait(); close(r.done) }()
	if err := r.waitReady(ctx); err != nil {
		_ = r.Stop(context.Background())
		logPath := filepath.Join(opts.Dir, "registry.log")
		return nil, fmt.Errorf("%w on %s (log %s: %s)", err, addr, logPath, logTail(logPath))
	}
	log.Info("registry running", "addr", addr, "storage", filepath.Join(opts.Dir, "storage"), "pid", cmd.Process.Pid)
	return r, nil
}

func (r *Registry) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get("http://" + r.addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-r.done:
			return errors.New("registry: exited at start")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("registry: %s did not answer within 30 s", r.addr)
		}
	}
}

// Stop ends the registry: SIGTERM, then SIGKILL after 10 s.
func (r *Registry) Stop(ctx context.Context) error {
	var err error
	r.stopOnce.Do(func() {
		pid := r.cmd.Process.Pid
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-r.done:
			return
		case <-time.After(10 * time.Second):
		case <-ctx.Done():
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			err = fmt.Errorf("registry: process %d did not exit after SIGKILL", pid)
		}
	})
	return err
}

// logTail is the end of the registry's log, for an error that says why it did not start.
func logTail(path string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(raw) > 800 {
		raw = raw[len(raw)-800:]
	}
	return strings.TrimSpace(string(raw))
}
