// Package localcluster runs a private PostgreSQL cluster under a directory: the control-plane
// database of `skypanel dev` and of the tests, when no DATABASE_URL is given.
//
// Layout under Options.Dir:
//
//	data/          the cluster (PGDATA), created by initdb on first start and kept afterwards
//	run/           the Unix socket directory (a short directory under /tmp when Dir is too deep)
//	postgres.log   the server log (unless Options.LogFile says otherwise)
//
// The cluster trusts every connection from 127.0.0.1 (initdb --auth=trust, superuser
// `skypanel`): it is for a developer's machine and tests, never for production.
//
// When the process runs as root, the directory is handed to the `postgres` system user and
// initdb/pg_ctl run through `runuser -u postgres --` (PostgreSQL refuses to run as root);
// otherwise they run as the current user.
//
// A postmaster left running on the same data directory by an earlier unclean exit (for example
// `skypanel dev` killed with SIGKILL) is stopped with `pg_ctl stop -m fast` before the new start,
// so the requested port and log file always apply.
package localcluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Database and User are the names of the database and superuser the cluster provides.
const (
	Database = "skypanel"
	User     = "skypanel"
)

// systemUser is the account that owns and runs the cluster when we are root.
const systemUser = "postgres"

// Options configures Start.
type Options struct {
	// Dir is the cluster's root directory (created when missing). Required.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// LogFile is the server log; default Dir/postgres.log.
	LogFile string
	// BinDir holds initdb and pg_ctl; default: the newest /usr/lib/postgresql/<major>/bin,
	// else `pg_config --bindir`.
	BinDir string
}

// Cluster is a running private PostgreSQL cluster.
type Cluster struct {
	dir       string
	dataDir   string
	socketDir string
	tmpSocket bool // socketDir is a temporary directory we remove on Stop
	logFile   string
	port      int
	binDir    string
	asUser    string // "" = run as ourselves, else run through runuser -u asUser
}

// DSN is a pgx-compatible URL to database skypanel as user skypanel on 127.0.0.1.
func (c *Cluster) DSN() string { return c.dsn(Database) }

// Port is the TCP port the server listens on (127.0.0.1).
func (c *Cluster) Port() int { return c.port }

// DataDir is the cluster's PGDATA directory.
func (c *Cluster) DataDir() string { return c.dataDir }

// LogFile is the server's log file.
func (c *Cluster) LogFile() string { return c.logFile }

func (c *Cluster) dsn(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(User),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// safePath matches the paths we hand to pg_ctl. pg_ctl runs the server through /bin/sh with
// the data directory and log file in double quotes and the -o options unquoted, so a path with
// quotes, `$`, backticks or backslashes would be interpreted by that shell: refuse them.
var safePath = regexp.MustCompile(`^[A-Za-z0-9._/+@:,=~ -]+$`)

func checkPath(what, p string) error {
	if !safePath.MatchString(p) {
		return fmt.Errorf("localcluster: %s %q contains characters pg_ctl cannot pass safely (allowed: letters, digits, space and ._/+@:,=~-)", what, p)
	}
	return nil
}

// Start initializes the cluster when Dir/data is not yet a cluster, starts the server on
// 127.0.0.1 and creates database skypanel when it is missing. A second Start on the same Dir
// keeps all data.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("localcluster: Options.Dir is required")
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("localcluster: invalid port %d", opts.Port)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	logFile := opts.LogFile
	if logFile == "" {
		logFile = filepath.Join(dir, "postgres.log")
	}
	if logFile, err = filepath.Abs(logFile); err != nil {
		return nil, err
	}
	for what, p := range map[string]string{"directory": dir, "log file": logFile} {
		if err := checkPath(what, p); err != nil {
			return nil, err
		}
	}
	binDir := opts.BinDir
	if binDir == "" {
		if binDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	}
	c := &Cluster{
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		logFile: logFile,
		binDir:  binDir,
	}
	if os.Geteuid() == 0 {
		c.asUser = systemUser
	}
	if err := c.prepareDirs(); err != nil {
		return nil, err
	}
	if err := c.initdbIfNeeded(ctx); err != nil {
		return nil, err
	}
	if err := c.stopStale(ctx); err != nil {
		return nil, err
	}

	// With Port 0 a free port is picked; another process may grab it before the postmaster
	// binds it, so try a few times.
	attempts := 1
	if opts.Port == 0 {
		attempts = 3
	}
	for i := 0; ; i++ {
		c.port = opts.Port
		if c.port == 0 {
			if c.port, err = freePort(); err != nil {
				return nil, err
			}
		}
		err = c.start(ctx)
		if err == nil {
			break
		}
		if i+1 >= attempts || ctx.Err() != nil {
			c.cleanupSocketDir()
			return nil, err
		}
	}
	if err := c.ensureDatabase(ctx); err != nil {
		_ = c.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	return c, nil
}

// Stop shuts the server down (pg_ctl stop -m fast) and waits for it to exit.
func (c *Cluster) Stop(ctx context.Context) error {
	defer c.cleanupSocketDir()
	if !c.running(ctx) {
		return nil
	}
	if out, err := c.pgctl(ctx, "-D", c.dataDir, "-m", "fast", "-w", "-t", "60", "stop"); err != nil {
		return fmt.Errorf("localcluster: pg_ctl stop: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// FindBinDir returns the directory holding the PostgreSQL server programs (initdb, pg_ctl):
// the newest /usr/lib/postgresql/<major>/bin (Debian and Ubuntu), else `pg_config --bindir`,
// else the directory of an initdb on PATH.
func FindBinDir() (string, error) {
	if entries, err := os.ReadDir("/usr/lib/postgresql"); err == nil {
		var majors []int
		for _, e := range entries {
			if n, err := strconv.Atoi(e.Name()); err == nil {
				majors = append(majors, n)
			}
		}
		sort.Sort(sort.Reverse(sort.IntSlice(majors)))
		for _, m := range majors {
			d := filepath.Join("/usr/lib/postgresql", strconv.Itoa(m), "bin")
			if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "pg_ctl")) {
				return d, nil
			}
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(p)
		if isExecutable(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", errors.New("localcluster: PostgreSQL server programs (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin, `pg_config --bindir` or PATH: install the postgresql package (make deps)")
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// prepareDirs creates Dir and the socket directory and, as root, gives them to the postgres
// user and makes every ancestor of Dir traversable so that user can reach it.
func (c *Cluster) prepareDirs() error {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("localcluster: %w", err)
	}
	// A Unix socket path is limited to 107 bytes; fall back to a short directory under /tmp.
	c.socketDir = filepath.Join(c.dir, "run")
	c.tmpSocket = false
	if len(c.socketDir)+len("/.s.PGSQL.65535.lock") > 100 {
		sum := sha256.Sum256([]byte(c.dir))
		c.socketDir = filepath.Join(os.TempDir(), "skypanel-pg-"+hex.EncodeToString(sum[:6]))
		c.tmpSocket = true
		if err := checkPath("socket directory", c.socketDir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(c.socketDir, 0o700); err != nil {
		return fmt.Errorf("localcluster: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(c.logFile), 0o755); err != nil {
		return fmt.Errorf("localcluster: %w", err)
	}
	lf, err := os.OpenFile(c.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("localcluster: log file: %w", err)
	}
	_ = lf.Close()
	if c.asUser == "" {
		return nil
	}
	u, err := user.Lookup(c.asUser)
	if err != nil {
		return fmt.Errorf("localcluster: running as root needs the %q system user (installed by the postgresql package): %w", c.asUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, p := range []string{c.dir, c.socketDir, c.logFile} {
		if err := os.Chown(p, uid, gid); err != nil {
			return fmt.Errorf("localcluster: chown %s: %w", p, err)
		}
	}
	// The data directory may exist from an earlier run (as another user): hand it over too.
	if _, err := os.Stat(c.dataDir); err == nil {
		if err := chownTree(c.dataDir, uid, gid); err != nil {
			return err
		}
	}
	// Make the ancestors of Dir, the socket dir and the log file traversable (o+x, never o+r).
	for _, p := range []string{c.dir, c.socketDir, c.logFile} {
		if err := makeTraversable(filepath.Dir(p)); err != nil {
			return err
		}
	}
	return nil
}

func chownTree(root string, uid, gid int) error {
	return filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid && int(st.Gid) == gid {
			return nil
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("localcluster: chown %s: %w", p, err)
		}
		return nil
	})
}

func makeTraversable(dir string) error {
	for {
		st, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("localcluster: %w", err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(dir, st.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("localcluster: make %s traversable for the postgres user: %w", dir, err)
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil
		}
		dir = parent
	}
}

// command builds an exec.Cmd for one of the server programs, through runuser when root.
func (c *Cluster) command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	path := filepath.Join(c.binDir, prog)
	var cmd *exec.Cmd
	if c.asUser != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	// The postgres user may not be able to enter our working directory.
	cmd.Dir = c.dir
	cmd.Env = cleanEnv()
	return cmd
}

// cleanEnv drops libpq's and the server's PG* variables so they can't redirect the programs.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (c *Cluster) pgctl(ctx context.Context, args ...string) ([]byte, error) {
	cmd := c.command(ctx, "pg_ctl", args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.Bytes(), err
}

func (c *Cluster) initdbIfNeeded(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); err == nil {
		return c.checkVersion()
	}
	// A data directory without PG_VERSION is a half-finished initdb: initdb refuses a
	// non-empty directory, so remove it (it can hold no data).
	if entries, err := os.ReadDir(c.dataDir); err == nil && len(entries) > 0 {
		if err := os.RemoveAll(c.dataDir); err != nil {
			return fmt.Errorf("localcluster: remove incomplete data directory: %w", err)
		}
	}
	cmd := c.command(ctx, "initdb", "-D", c.dataDir, "-U", User, "--auth=trust", "-E", "UTF8", "--no-locale", "--no-instructions")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("localcluster: initdb: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (c *Cluster) checkVersion() error {
	b, err := os.ReadFile(filepath.Join(c.dataDir, "PG_VERSION"))
	if err != nil {
		return fmt.Errorf("localcluster: %w", err)
	}
	dataMajor := strings.TrimSpace(string(b))
	out, err := exec.Command(filepath.Join(c.binDir, "pg_ctl"), "--version").Output()
	if err != nil {
		return fmt.Errorf("localcluster: pg_ctl --version: %w", err)
	}
	// "pg_ctl (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"
	fields := strings.Fields(string(out))
	if len(fields) >= 3 {
		binMajor, _, _ := strings.Cut(fields[2], ".")
		if binMajor != dataMajor {
			return fmt.Errorf("localcluster: data directory %s was created by PostgreSQL %s but the server programs in %s are version %s: remove the directory to start afresh (this deletes its data) or point BinDir at PostgreSQL %s", c.dataDir, dataMajor, c.binDir, binMajor, dataMajor)
		}
	}
	return nil
}

// running reports whether a postmaster is running on the data directory.
func (c *Cluster) running(ctx context.Context) bool {
	_, err := c.pgctl(ctx, "-D", c.dataDir, "status")
	return err == nil // 0 = running, 3 = not running, 4 = no data directory
}

func (c *Cluster) stopStale(ctx context.Context) error {
	if !c.running(ctx) {
		return nil
	}
	if out, err := c.pgctl(ctx, "-D", c.dataDir, "-m", "fast", "-w", "-t", "60", "stop"); err != nil {
		return fmt.Errorf("localcluster: stop the server left running on %s: %w: %s", c.dataDir, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// shellQuote single-quotes s for /bin/sh (pg_ctl passes -o through a shell).
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (c *Cluster) start(ctx context.Context) error {
	serverOpts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", c.port, shellQuote(c.socketDir))
	out, err := c.pgctl(ctx, "-D", c.dataDir, "-o", serverOpts, "-l", c.logFile, "-w", "-t", "120", "start")
	if err != nil {
		return fmt.Errorf("localcluster: pg_ctl start on port %d: %w: %s%s", c.port, err, strings.TrimSpace(string(out)), c.logTail())
	}
	return nil
}

// logTail returns the last lines of the server log, for error messages.
func (c *Cluster) logTail() string {
	b, err := os.ReadFile(c.logFile)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return "\nserver log " + c.logFile + ":\n" + strings.Join(lines, "\n")
}

func (c *Cluster) ensureDatabase(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var conn *pgx.Conn
	var err error
	for {
		conn, err = pgx.Connect(cctx, c.dsn("postgres"))
		if err == nil {
			break
		}
		select {
		case <-cctx.Done():
			return fmt.Errorf("localcluster: connect to %s: %w", c.dsn("postgres"), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(cctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", Database).Scan(&exists); err != nil {
		return fmt.Errorf("localcluster: %w", err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(cctx, "CREATE DATABASE "+pgx.Identifier{Database}.Sanitize()+" OWNER "+pgx.Identifier{User}.Sanitize()+" ENCODING 'UTF8'"); err != nil {
		return fmt.Errorf("localcluster: create database %s: %w", Database, err)
	}
	return nil
}

func (c *Cluster) cleanupSocketDir() {
	if c.tmpSocket {
		_ = os.RemoveAll(c.socketDir)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("localcluster: pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
