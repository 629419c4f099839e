package nginx

// The nginx master: started as the agent's child in its own session, checked with nginx -t,
// reloaded by SIGHUP, and probed until it serves the new generation.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Start writes the base configuration and starts the nginx master, or reloads it when the pid
// file names one that is running (an agent restart leaves nginx serving).
func (r *Router) Start(ctx context.Context) error {
	r.routeMu.Lock()
	defer r.routeMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	// Workers run as an unprivileged user and must be able to reach the prefix and the ACME
	// challenges.
	for _, dir := range []string{"", "sites", "logs", "temp", "run", filepath.Join(ACMEWebrootDir, ".well-known", "acme-challenge")} {
		if err := os.MkdirAll(filepath.Join(r.opts.Prefix, dir), 0o755); err != nil {
			return fmt.Errorf("nginx prefix: %w", err)
		}
	}
	warnIfWorkersCannotReach(ctx, filepath.Join(r.opts.Prefix, ACMEWebrootDir))
	// Only the master (which loads the configuration) reads the certificates' keys.
	if err := os.MkdirAll(filepath.Join(r.opts.Prefix, certsDir), 0o700); err != nil {
		return fmt.Errorf("nginx prefix: %w", err)
	}
	if err := writeFileAtomic(r.confPath(), []byte(renderBase(r.listeners)), 0o644); err != nil {
		return fmt.Errorf("write nginx.conf: %w", err)
	}
	restore, err := r.renderSitesAgain(ctx)
	if err != nil {
		return err
	}
	// No drain wait: the workers a restarted agent retires serve the same routes.
	if _, err := r.load(ctx, restore); err != nil {
		return err
	}
	slog.InfoContext(ctx, "nginx running", "prefix", r.opts.Prefix, "listen", r.opts.Listen, "https_listen", r.opts.HTTPSListen, "pid", r.masterPID())
	return nil
}

// renderSitesAgain renders every site from its route file as this agent renders it, so that
// sites an older agent wrote get what it added since (the ACME challenges on stopped pages, the
// per-app limit key). It returns what restores the sites it changed, for a config nginx
// rejects. The caller holds routeMu and mu.
func (r *Router) renderSitesAgain(ctx context.Context) (restore func(), err error) {
	routes, err := r.Routes()
	if err != nil {
		return nil, err
	}
	var restores []func()
	restore = func() {
		for _, f := range restores {
			f()
		}
	}
	for _, route := range routes {
		site := r.render(route)
		if current, err := os.ReadFile(r.sitePath(route.AppID)); err == nil && bytes.Equal(current, site) {
			continue
		}
		f, err := r.writeSite(ctx, route.AppID, site)
		if err != nil {
			restore()
			return nil, err
		}
		restores = append(restores, f)
	}
	return restore, nil
}

// warnIfWorkersCannotReach says when nginx's workers cannot read dir: started by root, they run
// as an unprivileged user, which needs to traverse every directory above dir (the agent makes
// its data dir 0711 for this). Otherwise every ACME challenge answers 404 and no certificate
// is issued, which is hard to trace back to a directory's mode.
func warnIfWorkersCannotReach(ctx context.Context, dir string) {
	if os.Geteuid() != 0 {
		return // the workers run as the agent's own user
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		if info, err := os.Stat(d); err == nil && info.Mode().Perm()&0o001 == 0 {
			slog.WarnContext(ctx, "nginx workers cannot reach the ACME webroot: make this directory traversable (chmod o+x)",
				"dir", d, "webroot", dir)
			return
		}
		if d == filepath.Dir(d) {
			return
		}
	}
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
