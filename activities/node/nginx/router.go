package nginx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
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

// Defaults for RouterOptions.
const (
	DefaultBinary       = "/usr/sbin/nginx"
	DefaultListen       = ":80"
	DefaultServeTimeout = 30 * time.Second
)

// RouterOptions configure the node's own nginx.
type RouterOptions struct {
	// Prefix is nginx's prefix directory (nginx -p): it holds nginx.conf, sites/, logs/, temp/
	// and run/nginx.pid. Required.
	Prefix string
	// Binary is the nginx executable; DefaultBinary when empty.
	Binary string
	// Listen is where app traffic arrives: "[IP]:PORT" (":80", "127.0.0.1:8088"); DefaultListen
	// when empty.
	Listen string
	// ServeTimeout bounds how long Publish waits for nginx to serve a new release;
	// DefaultServeTimeout when zero.
	ServeTimeout time.Duration
}

// Router owns the node's nginx master and is the one place that renders its configuration.
// Config changes are serialized: each is written, checked with nginx -t (and rolled back when the
// check fails), then loaded with a reload.
type Router struct {
	opts   RouterOptions
	listen listenAddr
	mu     sync.Mutex
	// routeMu makes writing a site file and its route file one step, so Repoint never
	// overwrites a release published meanwhile. Always taken before mu.
	routeMu sync.Mutex
}

// ConfigTestError is nginx -t rejecting a configuration; the previous one was restored.
type ConfigTestError struct{ Output string }

func (e *ConfigTestError) Error() string { return "nginx rejected the configuration: " + e.Output }

// NewRouter checks the options; nothing is written until Start.
func NewRouter(opts RouterOptions) (*Router, error) {
	if opts.Prefix == "" {
		return nil, errors.New("nginx router: no prefix directory")
	}
	prefix, err := filepath.Abs(opts.Prefix)
	if err != nil {
		return nil, fmt.Errorf("nginx router: prefix: %w", err)
	}
	opts.Prefix = prefix
	if opts.Binary == "" {
		opts.Binary = DefaultBinary
	}
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	if opts.ServeTimeout <= 0 {
		opts.ServeTimeout = DefaultServeTimeout
	}
	listen, err := parseListen(opts.Listen)
	if err != nil {
		return nil, err
	}
	return &Router{opts: opts, listen: listen}, nil
}

// ProbeAddr is where this node reaches its nginx ("127.0.0.1:8088").
func (r *Router) ProbeAddr() string { return r.listen.probe }

// Prefix is nginx's prefix directory.
func (r *Router) Prefix() string { return r.opts.Prefix }

func (r *Router) confPath() string           { return filepath.Join(r.opts.Prefix, "nginx.conf") }
func (r *Router) sitesDir() string           { return filepath.Join(r.opts.Prefix, "sites") }
func (r *Router) pidPath() string            { return filepath.Join(r.opts.Prefix, "run", "nginx.pid") }
func (r *Router) errorLog() string           { return filepath.Join(r.opts.Prefix, "logs", "error.log") }
func (r *Router) sitePath(app string) string { return filepath.Join(r.sitesDir(), siteFile(app)) }

// Start writes the base configuration and starts the nginx master, or reloads it when the pid
// file names one that is running (an agent restart leaves nginx serving).
func (r *Router) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Workers run as an unprivileged user and must be able to reach the prefix.
	for _, dir := range []string{"", "sites", "logs", "temp", "run"} {
		if err := os.MkdirAll(filepath.Join(r.opts.Prefix, dir), 0o755); err != nil {
			return fmt.Errorf("nginx prefix: %w", err)
		}
	}
	if err := writeFileAtomic(r.confPath(), []byte(renderBase(r.listen)), 0o644); err != nil {
		return fmt.Errorf("write nginx.conf: %w", err)
	}
	// No drain wait: the workers a restarted agent retires serve the same routes.
	if _, err := r.load(ctx, nil); err != nil {
		return err
	}
	slog.InfoContext(ctx, "nginx running", "prefix", r.opts.Prefix, "listen", r.opts.Listen, "pid", r.masterPID())
	return nil
}

// Stop asks the master to finish its requests and exit (SIGQUIT), and waits for it; when ctx ends
// first it is killed.
func (r *Router) Stop(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid := r.masterPID()
	if pid == 0 {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop nginx (pid %d): %w", pid, err)
	}
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	for nginxAlive(pid) {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(pid, syscall.SIGKILL)
			return fmt.Errorf("nginx (pid %d) did not quit in time; killed: %w", pid, ctx.Err())
		case <-ticker.C:
		}
	}
	slog.InfoContext(ctx, "nginx stopped", "pid", pid)
	return nil
}

// Publish validates the route, writes the app's server block, checks and loads it, then waits
// until nginx answers for the host name with the release's header. heartbeat (may be nil) is
// called while it waits.
func (r *Router) Publish(ctx context.Context, in PublishRouteInput, heartbeat func()) error {
	if err := validateRoute(in); err != nil {
		return err
	}
	reloaded, err := r.publish(ctx, in)
	if err != nil {
		return err
	}
	if err := r.waitHeader(ctx, in.Hostname, ReleaseHeader, in.ReleaseID, heartbeat); err != nil {
		return err
	}
	return reloaded.drain(ctx, in.Drain, heartbeat)
}

// routePath keeps, beside an app's site file, the route it was rendered from (the name does not
// match sites/*.conf), so the node can check it against what runs.
func (r *Router) routePath(app string) string {
	return filepath.Join(r.sitesDir(), "app-"+app+".route.json")
}

func (r *Router) publish(ctx context.Context, in PublishRouteInput) (reload, error) {
	r.routeMu.Lock()
	defer r.routeMu.Unlock()
	reloaded, err := r.apply(ctx, in.AppID, []byte(renderSite(r.listen, in)))
	if err != nil {
		return reload{}, err
	}
	return reloaded, r.saveRoute(in)
}

func (r *Router) saveRoute(in PublishRouteInput) error {
	raw, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return writeFileAtomic(r.routePath(in.AppID), raw, 0o600)
}

// Routes returns every route this node serves, as last published.
func (r *Router) Routes() ([]PublishRouteInput, error) {
	paths, err := filepath.Glob(filepath.Join(r.sitesDir(), "app-*.route.json"))
	if err != nil {
		return nil, err
	}
	var routes []PublishRouteInput
	for _, path := range paths {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue // removed meanwhile
		}
		var in PublishRouteInput
		if err := json.Unmarshal(raw, &in); err != nil || validateRoute(in) != nil {
			slog.Warn("ignoring an unreadable route file", "path", path)
			continue
		}
		routes = append(routes, in)
	}
	return routes, nil
}

// Repoint replaces the upstreams of an app's route, but only while the route still serves
// release: a deploy that published another release meanwhile wins. It reports whether it
// changed anything.
func (r *Router) Repoint(ctx context.Context, appID, release string, upstreams []string) (bool, error) {
	changed, reloaded, drain, err := r.repoint(ctx, appID, release, upstreams)
	if err != nil || !changed {
		return changed, err
	}
	return true, reloaded.drain(ctx, drain, nil)
}

func (r *Router) repoint(ctx context.Context, appID, release string, upstreams []string) (bool, reload, time.Duration, error) {
	r.routeMu.Lock()
	defer r.routeMu.Unlock()
	raw, err := os.ReadFile(r.routePath(appID))
	if err != nil {
		return false, reload{}, 0, nil // the route is gone
	}
	var route PublishRouteInput
	if err := json.Unmarshal(raw, &route); err != nil || route.ReleaseID != release || route.Stopped {
		return false, reload{}, 0, nil
	}
	route.Upstreams = upstreams
	if err := validateRoute(route); err != nil {
		return false, reload{}, 0, err
	}
	reloaded, err := r.apply(ctx, appID, []byte(renderSite(r.listen, route)))
	if err != nil {
		return false, reload{}, 0, err
	}
	return true, reloaded, route.Drain, r.saveRoute(route)
}

// Remove deletes the app's server block (an app with none is fine), then waits up to drain for
// the requests nginx's old workers still proxy to the app.
func (r *Router) Remove(ctx context.Context, appID string, drain time.Duration, heartbeat func()) error {
	if err := validateSlug("app id", appID); err != nil {
		return err
	}
	reloaded, err := r.remove(ctx, appID)
	if err != nil {
		return err
	}
	return reloaded.drain(ctx, drain, heartbeat)
}

func (r *Router) remove(ctx context.Context, appID string) (reload, error) {
	r.routeMu.Lock()
	defer r.routeMu.Unlock()
	reloaded, err := r.apply(ctx, appID, nil)
	if err != nil {
		return reload{}, err
	}
	if err := os.Remove(r.routePath(appID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return reload{}, fmt.Errorf("remove route of app %s: %w", appID, err)
	}
	return reloaded, nil
}

// apply replaces (content != nil) or removes the app's site file, tests the whole config and
// reloads; a config nginx rejects is rolled back and returned as *ConfigTestError.
func (r *Router) apply(ctx context.Context, appID string, content []byte) (reload, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	path := r.sitePath(appID)
	previous, err := os.ReadFile(path)
	hadPrevious := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return reload{}, fmt.Errorf("read %s: %w", path, err)
	}
	if content == nil && !hadPrevious {
		return reload{}, nil
	}
	if content != nil {
		err = writeFileAtomic(path, content, 0o644)
	} else {
		err = os.Remove(path)
	}
	if err != nil {
		return reload{}, fmt.Errorf("write site of app %s: %w", appID, err)
	}
	restore := func() {
		var err error
		if hadPrevious {
			err = writeFileAtomic(path, previous, 0o644)
		} else {
			err = os.Remove(path)
		}
		if err != nil {
			slog.ErrorContext(ctx, "restore nginx site", "app_id", appID, "err", err)
		}
	}
	reloaded, err := r.load(ctx, restore)
	if err != nil {
		return reload{}, err
	}
	slog.InfoContext(ctx, "nginx site updated", "app_id", appID, "removed", content == nil)
	return reloaded, nil
}

// load checks the configuration on disk and makes the master serve it: a new generation is
// written, nginx -t run (on failure rollback, if set, restores the previous files), the master
// reloaded or started, and the default server polled until it answers with the new generation.
// It returns the workers the reload retired; the caller drains them (reload.drain) once it no
// longer holds the router's locks, so one app's long drain does not hold up the others.
func (r *Router) load(ctx context.Context, rollback func()) (reload, error) {
	generation := strconv.FormatInt(time.Now().UnixNano(), 10)
	if err := writeFileAtomic(filepath.Join(r.opts.Prefix, "generation.conf"), []byte(renderGeneration(generation)), 0o644); err != nil {
		return reload{}, fmt.Errorf("write generation.conf: %w", err)
	}
	if err := r.test(ctx); err != nil {
		if rollback != nil {
			rollback()
		}
		return reload{}, err
	}
	master := r.masterPID()
	retired := reload{master: master, oldWorkers: workersOf(master)}
	if err := r.reload(ctx); err != nil {
		return reload{}, err
	}
	if err := r.waitHeader(ctx, generationProbeHost, GenerationHeader, generation, nil); err != nil {
		return reload{}, err
	}
	return retired, nil
}

// reload is what a configuration reload left behind: the old workers, which finish the requests
// they had accepted, possibly to upstreams the new configuration dropped.
type reload struct {
	master     int
	oldWorkers []int
}

// drain waits until the old workers are gone, at most drain (DefaultDrain when zero, never more
// than MaxDrain): until then the instances they proxy to must not be stopped.
func (rl reload) drain(ctx context.Context, drain time.Duration, heartbeat func()) error {
	if len(rl.oldWorkers) == 0 {
		return nil
	}
	return waitGone(ctx, rl.master, rl.oldWorkers, drainLimit(drain), heartbeat)
}

// workersOf lists the worker processes of an nginx master (its children), 0 for none.
func workersOf(master int) []int {
	if master == 0 {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var workers []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if parent, _ := procParent(pid); parent == master {
			workers = append(workers, pid)
		}
	}
	return workers
}

// procParent reads a process's parent pid and state from /proc/<pid>/stat.
func procParent(pid int) (int, byte) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0
	}
	// pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
	rest := string(raw[bytes.LastIndexByte(raw, ')')+1:])
	fields := strings.Fields(rest)
	if len(fields) < 2 {
		return 0, 0
	}
	parent, _ := strconv.Atoi(fields[1])
	return parent, fields[0][0]
}

// waitGone waits until the old workers of a reload have finished their requests and exited:
// until then they may still send requests to upstreams the new configuration dropped, so the
// instances behind those must not be stopped yet. Bounded by limit (nginx's own bound is
// worker_shutdown_timeout, MaxDrain). heartbeat (may be nil) is called about once a second.
func waitGone(ctx context.Context, master int, pids []int, limit time.Duration, heartbeat func()) error {
	deadline := time.Now().Add(limit)
	lastBeat := time.Now()
	for _, pid := range pids {
		for {
			// Gone, a zombie, or the pid reused by another process.
			if parent, state := procParent(pid); parent != master || state == 'Z' {
				break
			}
			if time.Now().After(deadline) {
				slog.WarnContext(ctx, "old nginx workers still running after the drain time", "pid", pid, "drain", limit)
				return nil
			}
			if heartbeat != nil && time.Since(lastBeat) > time.Second {
				heartbeat()
				lastBeat = time.Now()
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// test runs nginx -t on the whole configuration.
func (r *Router) test(ctx context.Context) error {
	out, err := r.run(ctx, "-t", "-q")
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if out == "" {
			return fmt.Errorf("nginx -t: %w", err)
		}
		return &ConfigTestError{Output: out}
	}
	return nil
}

// reload signals the running master to load the configuration, or starts one.
func (r *Router) reload(ctx context.Context) error {
	if pid := r.masterPID(); pid != 0 {
		// SIGHUP is what `nginx -s reload` sends, without that second process parsing the
		// whole configuration only to find the pid file (at 300 sites, as long as nginx -t).
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			return fmt.Errorf("nginx reload: signal master %d: %w", pid, err)
		}
		return nil
	}
	return r.startMaster(ctx)
}

// startMaster runs the master in the foreground ("daemon off") as the agent's child in its own
// session: the agent reaps it when it exits (no zombie), a Ctrl-C meant for the agent does not
// reach it, and it keeps serving when the agent restarts (the next agent reloads it).
func (r *Router) startMaster(ctx context.Context) error {
	output, err := os.OpenFile(filepath.Join(r.opts.Prefix, "logs", "master.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start nginx: %w", err)
	}
	defer output.Close()
	cmd := exec.Command(r.opts.Binary, append(r.baseArgs(), "-g", "daemon off;")...)
	cmd.Stdout, cmd.Stderr = output, output
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start nginx: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	deadline := time.After(10 * time.Second)
	for r.masterPID() != cmd.Process.Pid {
		select {
		case err := <-exited:
			return fmt.Errorf("start nginx: master exited (%v); see %s", err, r.errorLog())
		case <-deadline:
			return fmt.Errorf("start nginx: no pid file after 10s; see %s", r.errorLog())
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
	return nil
}

// baseArgs point nginx at the router's prefix, config and error log.
func (r *Router) baseArgs() []string {
	return []string{"-p", r.opts.Prefix + "/", "-c", r.confPath(), "-e", r.errorLog()}
}

// run executes an nginx command (-t, -s reload) to completion and returns its output.
func (r *Router) run(ctx context.Context, args ...string) (string, error) {
	out, err := os.CreateTemp("", "skypanel-nginx-*.out")
	if err != nil {
		return "", err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.CommandContext(ctx, r.opts.Binary, append(r.baseArgs(), args...)...)
	cmd.Stdout = out
	cmd.Stderr = out
	runErr := cmd.Run()
	data, _ := os.ReadFile(out.Name())
	return strings.TrimSpace(string(data)), runErr
}

// masterPID is the pid in the pid file when it names a live nginx process, else 0.
func (r *Router) masterPID() int {
	data, err := os.ReadFile(r.pidPath())
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 || !nginxAlive(pid) {
		return 0
	}
	return pid
}

// nginxAlive says whether pid is a running (not zombie) nginx process; a stale pid file may
// name a pid the system has since given to something else.
func nginxAlive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	stat := string(data)
	open, close := strings.IndexByte(stat, '('), strings.LastIndexByte(stat, ')')
	if open < 0 || close < open || close+2 >= len(stat) {
		return false
	}
	comm, state := stat[open+1:close], stat[close+2]
	return strings.HasPrefix(comm, "nginx") && state != 'Z' && state != 'X'
}

// waitHeader polls nginx with the Host header until an answer carries header = want: a reload
// is asynchronous, so only then does nginx really serve the new configuration.
func (r *Router) waitHeader(ctx context.Context, hostname, header, want string, heartbeat func()) error {
	client := &http.Client{
		Timeout:       2 * time.Second,
		Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	deadline := time.Now().Add(r.opts.ServeTimeout)
	url := "http://" + r.listen.probe + "/"
	var last string
	for {
		if heartbeat != nil {
			heartbeat()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Host = hostname
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			last = fmt.Sprintf("status %d, %s %q", resp.StatusCode, header, resp.Header.Get(header))
			if resp.Header.Get(header) == want {
				return nil
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nginx did not answer %s: %s for %s within %s (last answer: %s)", header, want, hostname, r.opts.ServeTimeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond): // a reload takes effect within milliseconds
		}
	}
}
