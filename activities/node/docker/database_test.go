package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/secrets"
)

// OpenDatabasePassword opens a database's password with the fake node keys (docker_test.go's
// ringSecrets): sealed under the node's key, as the API would have re-sealed it.
func (r ringSecrets) OpenDatabasePassword(_ context.Context, databaseID, sealed string) (string, error) {
	return OpenSealedPassword(r.ring, databaseID, sealed)
}

// The catalogue's engine rows as proposed for the seeded catalogue: the same rows run on the
// official images and on the local ones scripts/base-images.sh builds under their names.
var (
	postgresEngine = DatabaseEngine{
		Engine: "postgresql", Version: "15", Image: "postgres:15-bookworm", Port: 5432,
		DataDir:       "/var/lib/postgresql/data",
		Env:           map[string]string{"POSTGRES_USER": "{{user}}", "POSTGRES_PASSWORD": "{{password}}", "POSTGRES_DB": "{{database}}"},
		HealthCommand: []string{"pg_isready", "-h", "127.0.0.1", "-p", "5432"},
	}
	mariadbEngine = DatabaseEngine{
		Engine: "mysql", Version: "10.11", Image: "mariadb:10.11", Port: 3306,
		DataDir: "/var/lib/mysql",
		Env: map[string]string{"MARIADB_USER": "{{user}}", "MARIADB_PASSWORD": "{{password}}", "MARIADB_DATABASE": "{{database}}",
			"MARIADB_ROOT_PASSWORD": "{{password}}", "MARIADB_ROOT_HOST": "localhost"},
		HealthCommand: []string{"sh", "-c", `MYSQL_PWD="$MARIADB_PASSWORD" exec mariadb -h 127.0.0.1 -P 3306 -u "$MARIADB_USER" -e 'SELECT 1' "$MARIADB_DATABASE" >/dev/null`},
	}
	redisEngine = DatabaseEngine{
		Engine: "redis", Version: "7", Image: "redis:7-bookworm", Port: 6379,
		DataDir: "/data",
		Env:     map[string]string{"REDIS_PASSWORD": "{{password}}"},
		// The password reaches redis-server in a private file, not on its command line (which
		// `ps` on the host shows to everyone).
		Command:       []string{"sh", "-c", `umask 077 && printf 'requirepass "%s"\n' "$(printf %s "$REDIS_PASSWORD" | sed 's/[\\"]/\\&/g')" >/tmp/redis.conf && exec redis-server /tmp/redis.conf --appendonly yes --dir /data`},
		HealthCommand: []string{"sh", "-c", `[ "$(REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h 127.0.0.1 -p 6379 ping)" = PONG ]`},
		User:          "999:999",
	}
)

// engineCase is how a test talks to one engine: a client in a container of the engine's image
// on the organization's network, and commands run inside the database's container.
type engineCase struct {
	engine DatabaseEngine
	// client connects to host as user with password and prints identity; with a wrong
	// password it prints refused.
	client            func(host, user, password, database string) (cmd, env []string)
	identity, refused string
	// write stores "before", change makes it "after", read prints it.
	write, change, read []string
	// dump writes a backup to stdout; restore reads it on stdin into the same database.
	dump, restore []string
	// process is the engine's process name, run as uid 999.
	process string
}

var engineCases = map[string]engineCase{
	"postgresql": {
		engine: postgresEngine,
		client: func(host, user, password, database string) ([]string, []string) {
			return []string{"psql", "-h", host, "-U", user, "-d", database, "-tAc", "select current_user || '/' || current_database()"},
				[]string{"PGPASSWORD=" + password}
		},
		identity: "{{user}}/{{database}}", refused: "password authentication failed",
		write:   psql(`create table t (v text); insert into t values ('before')`),
		change:  psql(`update t set v = 'after'`),
		read:    psql(`select string_agg(v, ',') from t`),
		dump:    []string{"sh", "-c", `exec pg_dump -Fc -U "$POSTGRES_USER" -d "$POSTGRES_DB"`},
		restore: []string{"sh", "-c", `exec pg_restore --clean --if-exists --no-owner --exit-on-error --single-transaction -U "$POSTGRES_USER" -d "$POSTGRES_DB"`},
		process: "postgres",
	},
	"mysql": {
		engine: mariadbEngine,
		client: func(host, user, password, database string) ([]string, []string) {
			return []string{"mariadb", "-h", host, "-u", user, "-N", "-s", "-e", "select concat(current_user(), '/', database())", database},
				[]string{"MYSQL_PWD=" + password}
		},
		identity: "{{user}}@%/{{database}}", refused: "Access denied",
		write:   mariadb(`create table t (v text); insert into t values ('before')`),
		change:  mariadb(`update t set v = 'after'`),
		read:    mariadb(`select group_concat(v) from t`),
		dump:    []string{"sh", "-c", `MYSQL_PWD="$MARIADB_PASSWORD" exec mariadb-dump -u "$MARIADB_USER" --single-transaction --routines --triggers --events --hex-blob "$MARIADB_DATABASE"`},
		restore: []string{"sh", "-c", `MYSQL_PWD="$MARIADB_PASSWORD" exec mariadb -u "$MARIADB_USER" "$MARIADB_DATABASE"`},
		process: "mariadbd",
	},
	"redis": {
		engine: redisEngine,
		client: func(host, _, password, _ string) ([]string, []string) {
			return []string{"redis-cli", "-h", host, "ping"}, []string{"REDISCLI_AUTH=" + password}
		},
		identity: "PONG", refused: "WRONGPASS",
		write:  redisCLI("set t before"),
		change: redisCLI("set t after"),
		read:   redisCLI("get t"),
		// The RDB goes through a file: redis-cli 7.0 cannot cut the end marker of a diskless
		// transfer off a pipe.
		dump: []string{"sh", "-c", `f=$(mktemp /data/.dump.XXXXXX) && REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h 127.0.0.1 -p 6379 --rdb "$f" >&2 && cat "$f"; s=$?; rm -f "$f"; exit $s`},
		// The RDB is served by a private server on the container's loopback, and the database
		// copies it by replication (replacing its whole dataset, its AOF rewritten), then goes
		// back to being a master.
		restore: []string{"sh", "-c", redisRestore},
		process: "redis-server",
	},
}

const redisRestore = `set -e
d=$(mktemp -d /data/.restore.XXXXXX)
trap 'redis-cli -p 6380 shutdown nosave >/dev/null 2>&1 || :; rm -rf "$d"' EXIT
cat >"$d/dump.rdb"
redis-server --port 6380 --bind 127.0.0.1 --protected-mode no --dir "$d" --dbfilename dump.rdb --appendonly no --save "" --repl-diskless-sync-delay 0 --daemonize yes --logfile "$d/log"
until [ "$(redis-cli -p 6380 ping 2>/dev/null)" = PONG ]; do sleep 0.1; done
export REDISCLI_AUTH="$REDIS_PASSWORD"
redis-cli -p 6379 replicaof 127.0.0.1 6380 >/dev/null
until redis-cli -p 6379 info replication | grep -q '^master_link_status:up'; do sleep 0.1; done
redis-cli -p 6379 replicaof no one >/dev/null`

func psql(sql string) []string {
	return []string{"sh", "-c", `psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -tAqc "` + sql + `"`}
}

func mariadb(sql string) []string {
	return []string{"sh", "-c", `MYSQL_PWD="$MARIADB_PASSWORD" mariadb -u "$MARIADB_USER" -N -s -e "` + sql + `" "$MARIADB_DATABASE"`}
}

func redisCLI(command string) []string {
	return []string{"sh", "-c", `REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h 127.0.0.1 -p 6379 ` + command}
}

// testDatabase is one database of a test: its ids, names and password, sealed as the control
// plane sends it.
type testDatabase struct {
	in       StartDatabaseInput
	password string
}

func newTestDatabase(t *testing.T, f *fixture, engine DatabaseEngine) testDatabase {
	t.Helper()
	id := "tdb-" + randomHex(t, 6)
	password := "pw-" + randomHex(t, 12)
	sealed, err := f.ring.Encrypt([]byte(password), secrets.DatabasePassword(id))
	if err != nil {
		t.Fatal(err)
	}
	return testDatabase{password: password, in: StartDatabaseInput{
		DatabaseID: id, OrgID: f.orgID, Engine: engine, User: "app_user", Database: "app_db",
		PasswordSealed: sealed, CPUMillis: 500, MemoryMB: 256, StorageMB: 1024,
	}}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// testClientLabel marks the tests' client containers (never labelled with the organization:
// they must not keep its network alive).
const testClientLabel = "skypanel-test.database-client"

// newDatabaseFixture is newFixture whose cleanup also removes the databases, volumes and client
// containers of its organization.
func newDatabaseFixture(t *testing.T, name string) *fixture {
	t.Helper()
	f := newFixture(t)
	f.orgID += "-" + name
	c := f.a.Client
	t.Cleanup(func() {
		ctx := context.Background()
		for _, label := range []string{LabelOrg + "=" + f.orgID, testClientLabel + "=" + f.orgID} {
			list, _ := c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", label))})
			for _, ctr := range list {
				c.ContainerRemove(ctx, ctr.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
			}
		}
		vols, _ := c.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelOrg+"="+f.orgID))})
		for _, v := range vols.Volumes {
			c.VolumeRemove(ctx, v.Name, true)
		}
	})
	return f
}

// captureLogs sends the default logger's lines to a buffer until the test ends.
func captureLogs(t *testing.T) *lockedBuffer {
	var buf lockedBuffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })
	return &buf
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Each engine of the catalogue, on its local image: it starts hardened on its organization's
// network only, becomes healthy, and a client in another container on that network gets in
// with the user, password and database, and not with a wrong password. Its data survives a
// new container (the entrypoint's second start, as root on an initialized volume), the
// backup commands dump and restore it, and removing it with its volume leaves nothing. The
// password appears in no log line.
func TestDatabaseEngines(t *testing.T) {
	logs := captureLogs(t)
	var mu sync.Mutex
	var passwords []string
	t.Run("engines", func(t *testing.T) {
		for name, tc := range engineCases {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				f := newDatabaseFixture(t, name)
				db := newTestDatabase(t, f, tc.engine)
				mu.Lock()
				passwords = append(passwords, db.password)
				mu.Unlock()
				testEngine(t, f, tc, db)
			})
		}
	})
	for _, p := range passwords {
		if strings.Contains(logs.String(), p) {
			t.Errorf("a log line holds a database's password:\n%s", logs.String())
		}
	}
}

func testEngine(t *testing.T, f *fixture, tc engineCase, db testDatabase) {
	ctx := context.Background()
	c := f.a.Client
	name, netName := DatabaseContainerName(db.in.DatabaseID), OrgNetworkName(f.orgID)

	started := time.Now()
	var res, again StartDatabaseResult
	if err := f.run(t, f.a.StartDatabase, db.in, &res); err != nil {
		t.Fatalf("StartDatabase: %v", err)
	}
	if res.Host != name || res.ContainerID == "" {
		t.Fatalf("result %+v, want host %s", res, name)
	}
	if err := f.run(t, f.a.StartDatabase, db.in, &again); err != nil || again != res {
		t.Fatalf("second StartDatabase: %+v %v, want the same container %+v", again, err, res)
	}
	waitHealthy(t, f, db)
	t.Logf("%s healthy %s after its start", name, time.Since(started).Round(100*time.Millisecond))

	info, err := c.ContainerInspect(ctx, res.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	checkDatabaseContainer(t, info, db.in, "test-node")
	vol, err := c.VolumeInspect(ctx, DatabaseVolumeName(db.in.DatabaseID))
	if err != nil {
		t.Fatal(err)
	}
	if want := databaseLabels(db.in, "test-node"); !mapsEqual(vol.Labels, want) {
		t.Errorf("volume labels %v, want %v", vol.Labels, want)
	}
	checkEngineUser(t, c, res.ContainerID, tc.process)

	// From another container on the organization's network: the names and the password get
	// in, a wrong password does not.
	fill := strings.NewReplacer("{{user}}", db.in.User, "{{database}}", db.in.Database)
	cmd, env := tc.client(res.Host, db.in.User, db.password, db.in.Database)
	if out, code := runClient(t, c, f.orgID, tc.engine.Image, netName, cmd, env); code != 0 || !strings.Contains(out, fill.Replace(tc.identity)) {
		t.Errorf("client with the password: exit %d, output %q, want %q", code, out, fill.Replace(tc.identity))
	}
	cmd, env = tc.client(res.Host, db.in.User, "wrong-"+db.password, db.in.Database)
	if out, _ := runClient(t, c, f.orgID, tc.engine.Image, netName, cmd, env); !strings.Contains(out, tc.refused) || strings.Contains(out, fill.Replace(tc.identity)) {
		t.Errorf("client with a wrong password: output %q, want it refused (%q)", out, tc.refused)
	}

	// The node's housekeeping neither reports the database as an app's instance nor takes its
	// network away.
	byApp, err := NewHousekeeping(f.a).InstancesByApp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for app, list := range byApp {
		for _, inst := range list {
			if inst.ContainerID == res.ContainerID {
				t.Errorf("housekeeping reports the database as an instance of app %q", app)
			}
		}
	}
	if removed, err := NewHousekeeping(f.a).RemoveOrphanNetworks(ctx, 0); err != nil || slices.Contains(removed, netName) {
		t.Errorf("orphan sweep removed %v (%v): the database's network is in use", removed, err)
	}

	// Backup: the dump taken before a change restores the database as it was.
	mustExec(t, c, name, tc.write, nil)
	dump := mustExec(t, c, name, tc.dump, nil)
	if len(dump) == 0 {
		t.Fatal("empty dump")
	}
	mustExec(t, c, name, tc.change, nil)
	if got := strings.TrimSpace(mustExec(t, c, name, tc.read, nil)); got != "after" {
		t.Fatalf("after the change: %q", got)
	}
	mustExec(t, c, name, tc.restore, []byte(dump))
	if got := strings.TrimSpace(mustExec(t, c, name, tc.read, nil)); got != "before" {
		t.Errorf("after the restore: %q, want before", got)
	}

	// Removed without its volume: the next start is a new container on the same data.
	if err := f.run(t, f.a.RemoveDatabase, RemoveDatabaseInput{DatabaseID: db.in.DatabaseID, OrgID: f.orgID}, nil); err != nil {
		t.Fatalf("RemoveDatabase: %v", err)
	}
	if _, err := c.ContainerInspect(ctx, name); !errdefs.IsNotFound(err) {
		t.Errorf("container still there: %v", err)
	}
	if _, err := c.VolumeInspect(ctx, DatabaseVolumeName(db.in.DatabaseID)); err != nil {
		t.Errorf("the volume went without DropVolume: %v", err)
	}
	if networkExists(t, f, netName) {
		t.Error("the network stayed without a container of the organization")
	}
	if err := f.run(t, f.a.StartDatabase, db.in, &again); err != nil || again.ContainerID == res.ContainerID {
		t.Fatalf("StartDatabase after RemoveDatabase: %+v %v, want a new container", again, err)
	}
	waitHealthy(t, f, db)
	if got := strings.TrimSpace(mustExec(t, c, name, tc.read, nil)); got != "before" {
		t.Errorf("the data in the new container: %q, want before", got)
	}
	cmd, env = tc.client(res.Host, db.in.User, db.password, db.in.Database)
	if out, code := runClient(t, c, f.orgID, tc.engine.Image, netName, cmd, env); code != 0 || !strings.Contains(out, fill.Replace(tc.identity)) {
		t.Errorf("client after the second start: exit %d, output %q", code, out)
	}

	// Removed with its volume: nothing of it is left, and a second removal is fine.
	for i := 0; i < 2; i++ {
		if err := f.run(t, f.a.RemoveDatabase, RemoveDatabaseInput{DatabaseID: db.in.DatabaseID, OrgID: f.orgID, DropVolume: true}, nil); err != nil {
			t.Fatalf("RemoveDatabase with its volume (%d): %v", i+1, err)
		}
	}
	if _, err := c.ContainerInspect(ctx, name); !errdefs.IsNotFound(err) {
		t.Errorf("container still there: %v", err)
	}
	if _, err := c.VolumeInspect(ctx, DatabaseVolumeName(db.in.DatabaseID)); !errdefs.IsNotFound(err) {
		t.Errorf("volume still there: %v", err)
	}
	if networkExists(t, f, netName) {
		t.Error("network still there")
	}
}

func waitHealthy(t *testing.T, f *fixture, db testDatabase) {
	t.Helper()
	err := f.run(t, f.a.WaitDatabaseHealthy, WaitDatabaseHealthyInput{DatabaseID: db.in.DatabaseID, Engine: db.in.Engine}, nil)
	if err != nil {
		t.Fatalf("WaitDatabaseHealthy: %v", err)
	}
}

// checkDatabaseContainer checks the hardening of a database's container: on its organization's
// network only, nothing published, no capability beyond its entrypoint's, bounded.
func checkDatabaseContainer(t *testing.T, info container.InspectResponse, in StartDatabaseInput, nodeID string) {
	t.Helper()
	hc, name, netName := info.HostConfig, DatabaseContainerName(in.DatabaseID), OrgNetworkName(in.OrgID)
	for k, v := range databaseLabels(in, nodeID) {
		if info.Config.Labels[k] != v {
			t.Errorf("container label %s=%q, want %q", k, info.Config.Labels[k], v)
		}
	}
	if app, ok := info.Config.Labels[LabelApp]; ok {
		t.Errorf("the database's container has the label %s=%q: it would count as an app's instance", LabelApp, app)
	}
	if string(hc.NetworkMode) != netName {
		t.Errorf("network mode %q, want %q", hc.NetworkMode, netName)
	}
	var nets []string
	for n, ep := range info.NetworkSettings.Networks {
		nets = append(nets, n)
		if !slices.Contains(ep.Aliases, name) {
			t.Errorf("aliases on %s: %v, want %s", n, ep.Aliases, name)
		}
	}
	if len(nets) != 1 || nets[0] != netName {
		t.Errorf("attached to %v, want only %s", nets, netName)
	}
	if len(hc.PortBindings) > 0 || hc.PublishAllPorts {
		t.Errorf("port bindings %v, publish all %v: want nothing published", hc.PortBindings, hc.PublishAllPorts)
	}
	for port, bindings := range info.NetworkSettings.Ports {
		if len(bindings) > 0 {
			t.Errorf("%s is published on %v", port, bindings)
		}
	}
	if info.Config.Hostname != name || info.Config.User != in.Engine.User {
		t.Errorf("hostname %q user %q, want %q and %q", info.Config.Hostname, info.Config.User, name, in.Engine.User)
	}
	if fmt.Sprint(hc.CapDrop) != "[ALL]" || fmt.Sprint(hc.SecurityOpt) != "[no-new-privileges]" || hc.Privileged {
		t.Errorf("cap drop %v, security opt %v, privileged %v", hc.CapDrop, hc.SecurityOpt, hc.Privileged)
	}
	capAdd := slices.Clone(hc.CapAdd)
	for i := range capAdd {
		capAdd[i] = strings.TrimPrefix(capAdd[i], "CAP_")
	}
	sort.Strings(capAdd)
	var wantCaps []string
	if in.Engine.User == "" {
		wantCaps = []string{"CHOWN", "DAC_READ_SEARCH", "SETGID", "SETUID"}
	}
	if !slices.Equal(capAdd, wantCaps) {
		t.Errorf("cap add %v, want %v", hc.CapAdd, wantCaps)
	}
	memory := int64(in.MemoryMB) << 20
	if hc.Memory != memory || hc.MemorySwap != memory || hc.NanoCPUs != int64(in.CPUMillis)*1_000_000 {
		t.Errorf("memory %d swap %d nano cpus %d", hc.Memory, hc.MemorySwap, hc.NanoCPUs)
	}
	if hc.PidsLimit == nil || *hc.PidsLimit != PidsLimit || len(hc.Ulimits) != 1 || hc.Ulimits[0].Name != "nofile" {
		t.Errorf("pids limit %v ulimits %v", hc.PidsLimit, hc.Ulimits)
	}
	if hc.Init == nil || !*hc.Init || hc.RestartPolicy.Name != container.RestartPolicyUnlessStopped {
		t.Errorf("init %v restart policy %v", hc.Init, hc.RestartPolicy)
	}
	if hc.LogConfig.Type != "json-file" || hc.LogConfig.Config["max-size"] == "" {
		t.Errorf("log config %v", hc.LogConfig)
	}
	for dir, size := range map[string]string{"/tmp": "size=128m", "/run": "size=16m"} {
		if opts := hc.Tmpfs[dir]; !strings.Contains(opts, size) || !strings.Contains(opts, "nosuid") {
			t.Errorf("%s mount %q, want a tmpfs of %s", dir, opts, size)
		}
	}
	wantMount := mount.Mount{Type: mount.TypeVolume, Source: DatabaseVolumeName(in.DatabaseID), Target: in.Engine.DataDir}
	if len(hc.Mounts) != 1 || hc.Mounts[0] != wantMount || len(hc.Binds) > 0 {
		t.Errorf("mounts %v binds %v, want only %v", hc.Mounts, hc.Binds, wantMount)
	}
	if hcfg := info.Config.Healthcheck; hcfg == nil || !slices.Equal(hcfg.Test, append([]string{"CMD"}, in.Engine.HealthCommand...)) ||
		hcfg.Interval != DatabaseHealthInterval || hcfg.StartPeriod != DatabaseHealthStartPeriod || hcfg.Retries != DatabaseHealthRetries {
		t.Errorf("health check %+v", info.Config.Healthcheck)
	}
	if info.Config.StopTimeout == nil || *info.Config.StopTimeout != 30 {
		t.Errorf("stop timeout %v, want 30 s", info.Config.StopTimeout)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// checkEngineUser checks that the engine's process runs as uid 999, the official images' user,
// whether the container started as root (and dropped) or as that user.
func checkEngineUser(t *testing.T, c *client.Client, id, process string) {
	t.Helper()
	top, err := c.ContainerTop(context.Background(), id, []string{"-o", "uid,pid,args"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range top.Processes {
		if len(p) == 3 && strings.HasPrefix(p[2], process) {
			found = true
			if p[0] != "999" {
				t.Errorf("%s runs as uid %s, want 999", process, p[0])
			}
		}
	}
	if !found {
		t.Errorf("no %s process in %v", process, top.Processes)
	}
}

// runClient runs cmd in a new container of img on network and answers its output (stdout and
// stderr) and exit code; the container goes.
func runClient(t *testing.T, c *client.Client, orgID, img, network string, cmd, env []string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := c.ContainerCreate(ctx,
		&container.Config{Image: img, Cmd: cmd, Env: env, Labels: map[string]string{testClientLabel: orgID}},
		&container.HostConfig{NetworkMode: container.NetworkMode(network), CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges"}},
		nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.ContainerRemove(context.Background(), resp.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	waitC, errC := c.ContainerWait(ctx, resp.ID, container.WaitConditionNextExit)
	if err := c.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	var code int
	select {
	case w := <-waitC:
		code = int(w.StatusCode)
	case err := <-errC:
		t.Fatal(err)
	}
	rc, err := c.ContainerLogs(ctx, resp.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out bytes.Buffer
	stdcopy.StdCopy(&out, &out, rc)
	return out.String(), code
}

// execIn runs cmd in the container (as its user), stdin given when not nil, and answers its
// stdout, stderr and exit code.
func execIn(t *testing.T, c *client.Client, containerName string, cmd []string, stdin []byte) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	created, err := c.ContainerExecCreate(ctx, containerName, container.ExecOptions{
		Cmd: cmd, AttachStdin: stdin != nil, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	if stdin != nil {
		go func() {
			resp.Conn.Write(stdin)
			resp.CloseWrite()
		}()
	}
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, resp.Reader); err != nil {
		t.Fatal(err)
	}
	inspect, err := c.ContainerExecInspect(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), inspect.ExitCode
}

func mustExec(t *testing.T, c *client.Client, containerName string, cmd []string, stdin []byte) string {
	t.Helper()
	stdout, stderr, code := execIn(t, c, containerName, cmd, stdin)
	if code != 0 {
		t.Fatalf("%q exited with %d: %s", cmd, code, stderr)
	}
	return stdout
}

// A database whose container exits at once fails WaitDatabaseHealthy without waiting for the
// activity's timeout, with its output and without its password (which this one prints).
func TestWaitDatabaseHealthyFailsWithTheOutputOfAContainerThatExits(t *testing.T) {
	f := newDatabaseFixture(t, "exits")
	logs := captureLogs(t)
	engine := redisEngine
	engine.Command = []string{"sh", "-c", `echo "starting with $REDIS_PASSWORD"; echo boom >&2; exit 3`}
	db := newTestDatabase(t, f, engine)
	if err := f.run(t, f.a.StartDatabase, db.in, nil); err != nil {
		t.Fatalf("StartDatabase: %v", err)
	}
	started := time.Now()
	err := f.run(t, f.a.WaitDatabaseHealthy, WaitDatabaseHealthyInput{DatabaseID: db.in.DatabaseID, Engine: engine}, nil)
	wantAppError(t, err, ErrTypeDatabaseNotHealthy, "the database did not become healthy: ")
	for _, want := range []string{"boom", "starting with [redacted]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q: want %q in it", err, want)
		}
	}
	// Seen between two runs it exited with code 3, seen running again it keeps exiting.
	if !strings.Contains(err.Error(), "exited with code 3") && !strings.Contains(err.Error(), "keeps exiting") {
		t.Errorf("error %q: want it to say the container exited with code 3, or keeps exiting", err)
	}
	if strings.Contains(err.Error(), db.password) || strings.Contains(logs.String(), db.password) {
		t.Errorf("the password is in the error or the logs: %v\n%s", err, logs.String())
	}
	if took := time.Since(started); took > 20*time.Second {
		t.Errorf("the failure took %s", took)
	}
}

func TestStartDatabaseRejectsBadInput(t *testing.T) {
	f := newDatabaseFixture(t, "bad")
	base := newTestDatabase(t, f, postgresEngine).in
	bad := map[string]func(*StartDatabaseInput){
		"database id":               func(in *StartDatabaseInput) { in.DatabaseID = "a/b" },
		"id too long for a host":    func(in *StartDatabaseInput) { in.DatabaseID = strings.Repeat("a", 60) },
		"organization id":           func(in *StartDatabaseInput) { in.OrgID = "" },
		"user name":                 func(in *StartDatabaseInput) { in.User = "a b" },
		"no database name":          func(in *StartDatabaseInput) { in.Database = "" },
		"image":                     func(in *StartDatabaseInput) { in.Engine.Image = "--privileged" },
		"port":                      func(in *StartDatabaseInput) { in.Engine.Port = 70000 },
		"relative data dir":         func(in *StartDatabaseInput) { in.Engine.DataDir = "var/lib/x" },
		"data dir in /run":          func(in *StartDatabaseInput) { in.Engine.DataDir = "/run/db" },
		"unclean data dir":          func(in *StartDatabaseInput) { in.Engine.DataDir = "/var/../etc" },
		"no health command":         func(in *StartDatabaseInput) { in.Engine.HealthCommand = nil },
		"placeholder in health":     func(in *StartDatabaseInput) { in.Engine.HealthCommand = []string{"check", "{{password}}"} },
		"env name":                  func(in *StartDatabaseInput) { in.Engine.Env = map[string]string{"lower": "x"} },
		"unknown placeholder":       func(in *StartDatabaseInput) { in.Engine.Env = map[string]string{"A": "{{secret}}"} },
		"placeholder as program":    func(in *StartDatabaseInput) { in.Engine.Command = []string{"{{password}}"} },
		"user":                      func(in *StartDatabaseInput) { in.Engine.User = "root;x" },
		"no sealed password":        func(in *StartDatabaseInput) { in.PasswordSealed = "" },
		"memory":                    func(in *StartDatabaseInput) { in.MemoryMB = 8 },
		"cpu":                       func(in *StartDatabaseInput) { in.CPUMillis = 0 },
		"negative storage":          func(in *StartDatabaseInput) { in.StorageMB = -1 },
		"NUL in a command argument": func(in *StartDatabaseInput) { in.Engine.Command = []string{"postgres", "a\x00b"} },
	}
	for name, mutate := range bad {
		in := base
		in.Engine.Env = cloneEnv(base.Engine.Env)
		mutate(&in)
		err := f.run(t, f.a.StartDatabase, in, nil)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != ErrTypeInvalidInput || !appErr.NonRetryable() {
			t.Errorf("%s: %v, want a non-retryable InvalidInput", name, err)
		}
	}
	if vols, err := f.a.Client.VolumeList(context.Background(), volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelOrg+"="+f.orgID))}); err != nil || len(vols.Volumes) > 0 {
		t.Errorf("an invalid start made volumes %v (%v)", vols.Volumes, err)
	}
}

func cloneEnv(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// A password sealed for another database never starts a container: the start fails with a
// non-retryable SecretUnavailable that names the database and not the password, and the
// network made for it goes.
func TestStartDatabaseFailsClosedOnAForeignPassword(t *testing.T) {
	f := newDatabaseFixture(t, "foreign")
	db := newTestDatabase(t, f, redisEngine)
	other := newTestDatabase(t, f, redisEngine)
	db.in.PasswordSealed = other.in.PasswordSealed
	err := f.run(t, f.a.StartDatabase, db.in, nil)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != ErrTypeSecretUnavailable || !appErr.NonRetryable() ||
		!strings.Contains(err.Error(), db.in.DatabaseID) || strings.Contains(err.Error(), other.password) {
		t.Errorf("%v, want a non-retryable SecretUnavailable naming %s, without the password", err, db.in.DatabaseID)
	}
	if _, err := f.a.Client.ContainerInspect(context.Background(), DatabaseContainerName(db.in.DatabaseID)); !errdefs.IsNotFound(err) {
		t.Errorf("a container was created with a password the node could not open: %v", err)
	}
	if networkExists(t, f, OrgNetworkName(f.orgID)) {
		t.Error("the network made for a database that could not be created was kept")
	}
}

// A container of the database from another image is replaced by one of the engine's image; the
// data on the volume stays.
func TestStartDatabaseReplacesAContainerOfAnotherImage(t *testing.T) {
	f := newDatabaseFixture(t, "replace")
	ctx := context.Background()
	c := f.a.Client
	alias := "skypanel-test/redis:" + f.orgID
	if err := c.ImageTag(ctx, redisEngine.Image, alias); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.ImageRemove(context.Background(), alias, image.RemoveOptions{}) })
	db := newTestDatabase(t, f, redisEngine)
	db.in.Engine.Image = alias
	var first, second StartDatabaseResult
	if err := f.run(t, f.a.StartDatabase, db.in, &first); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, f, db)
	name := DatabaseContainerName(db.in.DatabaseID)
	mustExec(t, c, name, redisCLI("set t kept"), nil)

	db.in.Engine.Image = redisEngine.Image
	if err := f.run(t, f.a.StartDatabase, db.in, &second); err != nil {
		t.Fatal(err)
	}
	if second.ContainerID == first.ContainerID {
		t.Fatal("the container of another image was kept")
	}
	waitHealthy(t, f, db)
	if info, err := c.ContainerInspect(ctx, second.ContainerID); err != nil || info.Config.Image != redisEngine.Image {
		t.Errorf("image %q (%v), want %s", info.Config.Image, err, redisEngine.Image)
	}
	if got := strings.TrimSpace(mustExec(t, c, name, redisCLI("get t"), nil)); got != "kept" {
		t.Errorf("the data after the replacement: %q", got)
	}
}

// Starting a database holds its organization's network lock shared, so a removal of the
// organization's last other container, at the same moment, cannot remove the network between
// the start's network check and its container.
func TestNetworkIsNeverRemovedUnderAStartingDatabase(t *testing.T) {
	f := newDatabaseFixture(t, "lock")
	leaving, coming := newTestDatabase(t, f, redisEngine), newTestDatabase(t, f, redisEngine)
	if err := f.run(t, f.a.StartDatabase, leaving.in, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hookAfterUnusedCheck, hookBeforeCreate = nil, nil })

	checked, ensured := make(chan struct{}), make(chan struct{})
	var checkedOnce, ensuredOnce sync.Once
	hookAfterUnusedCheck = func(string) {
		checkedOnce.Do(func() { close(checked) })
		select { // let a start that already saw the network go on to create its container
		case <-ensured:
		case <-time.After(time.Second):
		}
	}
	hookBeforeCreate = func(string) {
		ensuredOnce.Do(func() { close(ensured) })
		select { // let a removal that found the network unused go on to remove it
		case <-checked:
		case <-time.After(time.Second):
		}
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) && networkExists(t, f, OrgNetworkName(f.orgID)) {
			time.Sleep(20 * time.Millisecond)
		}
	}

	var wg sync.WaitGroup
	var startErr, removeErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		removeErr = f.run(t, f.a.RemoveDatabase, RemoveDatabaseInput{DatabaseID: leaving.in.DatabaseID, OrgID: f.orgID, DropVolume: true}, nil)
	}()
	go func() {
		defer wg.Done()
		<-checked // the removal holds the organization's lock by now
		startErr = f.run(t, f.a.StartDatabase, coming.in, nil)
	}()
	wg.Wait()
	if err := errors.Join(startErr, removeErr); err != nil {
		t.Fatalf("a start beside the removal of the organization's last container: %v", err)
	}
	if !networkExists(t, f, OrgNetworkName(f.orgID)) {
		t.Fatal("the network is gone while a database runs on it")
	}
}

func TestStartsAsRoot(t *testing.T) {
	for _, c := range []struct {
		engineUser, imageUser string
		want                  bool
	}{
		{"", "", true}, {"", "root", true}, {"0:0", "", true}, {"root:root", "999", true},
		{"999:999", "", false}, {"", "redis", false}, {"postgres", "", false},
	} {
		if got := startsAsRoot(c.engineUser, c.imageUser); got != c.want {
			t.Errorf("engine user %q, image user %q: %v, want %v", c.engineUser, c.imageUser, got, c.want)
		}
	}
}

func TestPasswordValuesFindTheFilledPlaceholders(t *testing.T) {
	info := container.InspectResponse{Config: &container.Config{
		Env: []string{"A=s3cr3t", "B=postgres://u:s3cr3t@h/db", "C=plain"},
		Cmd: []string{"server", "--pass=s3cr3t"},
	}}
	engine := DatabaseEngine{
		Env:     map[string]string{"A": "{{password}}", "B": "postgres://{{user}}:{{password}}@h/db", "C": "plain"},
		Command: []string{"server", "--pass={{password}}"},
	}
	got := passwordValues(info, engine)
	for _, want := range []string{"s3cr3t", "postgres://u:s3cr3t@h/db", "--pass=s3cr3t"} {
		if !slices.Contains(got, want) {
			t.Errorf("%v lacks %q", got, want)
		}
	}
	if slices.Contains(got, "plain") {
		t.Errorf("%v holds a value without the password", got)
	}
}
