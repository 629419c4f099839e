package docker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
)

// The catalogue's backup commands, as the control plane sends them with the engine rows.
var (
	postgresDump    = []string{"sh", "-c", `exec pg_dump -Fc -U "$POSTGRES_USER" -d "$POSTGRES_DB"`}
	postgresRestore = []string{"sh", "-c", `exec pg_restore --clean --if-exists --no-owner --exit-on-error --single-transaction -U "$POSTGRES_USER" -d "$POSTGRES_DB"`}
	// Every row once: ONLY, so a partition's or an inheriting table's rows are not counted again
	// in their parent.
	postgresCount = []string{"sh", "-c", `exec psql -v ON_ERROR_STOP=1 -Atq -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c "SELECT coalesce(sum((xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM ONLY %I.%I', schemaname, tablename), false, true, '')))[1]::text::bigint), 0) FROM pg_tables WHERE schemaname !~ '^pg_' AND schemaname <> 'information_schema'"`}

	mariadbDump    = []string{"sh", "-c", `MYSQL_PWD="$MARIADB_PASSWORD" exec mariadb-dump -u "$MARIADB_USER" --single-transaction --routines --triggers --events --hex-blob "$MARIADB_DATABASE"`}
	mariadbRestore = []string{"sh", "-c", `MYSQL_PWD="$MARIADB_PASSWORD" exec mariadb -u "$MARIADB_USER" "$MARIADB_DATABASE"`}
	// The base tables of the database (no views, no sequences), each counted exactly.
	mariadbCount = []string{"sh", "-c", `MYSQL_PWD="$MARIADB_PASSWORD" exec mariadb -u "$MARIADB_USER" -N -B -e "SET SESSION group_concat_max_len = 4294967295; SET @b = CHAR(96 USING utf8mb4); SET @q = (SELECT CONCAT('SELECT ', COALESCE(GROUP_CONCAT(CONCAT('(SELECT COUNT(*) FROM ', @b, REPLACE(table_name, @b, CONCAT(@b, @b)), @b, ')') SEPARATOR ' + '), '0')) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'); PREPARE c FROM @q; EXECUTE c" "$MARIADB_DATABASE"`}

	redisDump           = []string{"sh", "-c", `f=$(mktemp /data/.dump.XXXXXX) && REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h 127.0.0.1 -p 6379 --rdb "$f" >&2 && cat "$f"; s=$?; rm -f "$f"; exit $s`}
	redisRestoreCommand = []string{"sh", "-c", redisRestoreScript}
	redisCount          = []string{"sh", "-c", `REDISCLI_AUTH="$REDIS_PASSWORD" exec redis-cli -h 127.0.0.1 -p 6379 DBSIZE`}
)

// redisRestoreScript restores the RDB on its stdin: a private redis-server on the container's
// loopback serves it, the database replicates it (its whole dataset replaced at once, the old
// one kept if the transfer fails), goes back to being a master, and the append-only file it
// rewrites after the sync is waited for, so the restored data survives a restart. A file that
// does not load stops the private server and fails the restore; the database is never left a
// replica. No single quote, so the row pastes into SQL as it is.
const redisRestoreScript = `set -eu
umask 077
main() { REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h 127.0.0.1 -p 6379 "$@"; }
d=$(mktemp -d /data/.restore.XXXXXX)
p=
linked=
finish() {
	s=$?
	trap "" HUP INT TERM
	if [ -n "$p" ]; then kill "$p" 2>/dev/null || :; wait "$p" 2>/dev/null || :; fi
	if [ -n "$linked" ]; then
		n=0
		until r=$(main replicaof no one 2>&1) && case $r in OK*) true ;; *) false ;; esac; do
			n=$((n + 1))
			if [ "$n" -gt 6000 ]; then echo "the database is still a replica of the restore: restart its container" >&2; break; fi
			sleep 0.1
		done
		s=1
	fi
	if [ "$s" -ne 0 ] && [ -f "$d/log" ]; then tail -n 3 "$d/log" >&2; fi
	rm -rf "$d"
	exit "$s"
}
trap finish EXIT
trap "exit 1" HUP INT TERM
deadline=$(($(date +%s) + 3600))
in_time() { [ "$(date +%s)" -lt "$deadline" ] || { echo "the restore took more than an hour" >&2; exit 1; }; }
serving() { kill -0 "$p" 2>/dev/null || { echo "the backup did not load into the private server" >&2; exit 1; }; in_time; }
cat >"$d/dump.rdb"
redis-server --port 6380 --bind 127.0.0.1 --dir "$d" --dbfilename dump.rdb --appendonly no --save "" --repl-diskless-sync-delay 0 --logfile "$d/log" &
p=$!
until [ "$(redis-cli -h 127.0.0.1 -p 6380 ping 2>/dev/null)" = PONG ]; do serving; sleep 0.1; done
r=$(main replicaof 127.0.0.1 6380)
case $r in OK*) linked=1 ;; *) echo "replicaof: $r" >&2; exit 1 ;; esac
until main info replication | tr -d "\r" | grep -qx "master_link_status:up"; do serving; sleep 0.1; done
r=$(main replicaof no one)
case $r in OK*) linked= ;; *) echo "replicaof no one: $r" >&2; exit 1 ;; esac
kill "$p"
wait "$p" || :
p=
while info=$(main info persistence | tr -d "\r") && case $info in *aof_rewrite_in_progress:1*|*aof_rewrite_scheduled:1*) true ;; *) false ;; esac; do in_time; sleep 0.1; done
case $info in *aof_last_bgrewrite_status:err*) echo "the restored data could not be written to the append-only file" >&2; exit 1 ;; esac`

// redisCLIPrefix starts a redis-cli command line in the database's container.
const redisCLIPrefix = `REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h 127.0.0.1 -p 6379 `

func withBackupCommands(e DatabaseEngine, dump, restore, count []string) DatabaseEngine {
	e.DumpCommand, e.RestoreCommand, e.CountCommand = dump, restore, count
	return e
}

// backupCase is one engine's round trip: write puts three rows (or keys) in, read prints them,
// change changes one, deletes two and adds one.
type backupCase struct {
	engine              DatabaseEngine
	write, change, read []string
	want                string
	// more adds rows the count command must count exactly once (partitions, odd names, views);
	// moreCount is the count then.
	more      []string
	moreCount int64
	// slowDisk, when set, makes the engine take seconds to write its files, and onDisk exits 0
	// only once what it holds is on its disk: a restore run then must return only after that.
	slowDisk, onDisk []string
	// atomic: a restore cancelled midway leaves the data as it was before or after, and the
	// database taking writes (writable exits 0 then).
	atomic   bool
	writable []string
}

var backupCases = map[string]backupCase{
	"postgresql": {
		engine: withBackupCommands(postgresEngine, postgresDump, postgresRestore, postgresCount),
		write:  psql(`create table t (id int primary key, v text); insert into t values (1, 'alpha'), (2, 'bravo'), (3, 'charlie')`),
		change: psql(`update t set v = 'changed' where id = 1; delete from t where id > 1; insert into t values (4, 'delta')`),
		read:   psql(`select string_agg(id || '=' || v, ',' order by id) from t`),
		want:   "1=alpha,2=bravo,3=charlie",
		more: psql(`create schema s2; create table s2.\"Odd Name\" (x int); insert into s2.\"Odd Name\" values (1), (2);` +
			` create table p (k int) partition by range (k); create table p1 partition of p for values from (0) to (10);` +
			` create table p2 partition of p for values from (10) to (20); insert into p values (1), (11), (12);` +
			` create table parent (a int); create table child () inherits (parent); insert into parent values (1); insert into child values (2), (3);` +
			` create view v as select * from t`),
		moreCount: 3 + 2 + 3 + 3,
		atomic:    true,
		writable:  psql(`create table probe (x int); drop table probe`),
	},
	"mysql": {
		engine: withBackupCommands(mariadbEngine, mariadbDump, mariadbRestore, mariadbCount),
		write:  mariadb(`create table t (id int primary key, v text); insert into t values (1, 'alpha'), (2, 'bravo'), (3, 'charlie')`),
		change: mariadb(`update t set v = 'changed' where id = 1; delete from t where id > 1; insert into t values (4, 'delta')`),
		read:   mariadb(`select group_concat(concat(id, '=', v) order by id) from t`),
		want:   "1=alpha,2=bravo,3=charlie",
		more: mariadb("create table \\`we\\`\\`ird name\\` (x int); insert into \\`we\\`\\`ird name\\` values (1), (2);" +
			" create table p (k int) partition by range (k) (partition p0 values less than (10), partition p1 values less than (20)); insert into p values (1), (11), (12);" +
			" create view v as select * from t; create sequence sq"),
		moreCount: 3 + 2 + 3,
	},
	"redis": {
		engine: withBackupCommands(redisEngine, redisDump, redisRestoreCommand, redisCount),
		// k3 holds 8 MB that do not compress, so the restore's replication takes long enough
		// that a restore which does not wait for it leaves the changed data.
		write:  redisCLI(`mset k1 alpha k2 bravo && ` + redisCLIPrefix + `eval "local t = {} for i = 1, 1000000 do t[i] = string.format('%08d', math.random(0, 99999999)) end redis.call('set', 'k3', table.concat(t))" 0`),
		change: redisCLI(`set k1 changed && ` + redisCLIPrefix + `del k2 k3 && ` + redisCLIPrefix + `set k4 delta`),
		read:   redisCLI(`mget k1 k2 k4 && ` + redisCLIPrefix + `strlen k3`),
		want:   "alpha\nbravo\n\n8000000",
		// The append-only file the database rewrites after the replication is written (a second
		// a key with rdb-key-save-delay).
		slowDisk: redisCLI(`config set rdb-key-save-delay 1000000`),
		atomic:   true,
		// A replica refuses writes.
		writable: redisCLI(`set probe 1 && ` + redisCLIPrefix + `del probe`),
		onDisk:   redisCLI(`info persistence | tr -d "\r" | grep -x -e aof_rewrite_in_progress:0 -e aof_rewrite_scheduled:0 | wc -l | grep -qx 2`),
	},
}

// memStore is a backup store in memory. Upload stores what it reads to the end (an aborted
// upload stores nothing) and answers its size and SHA-256, or answerSHA when set.
type memStore struct {
	mu        sync.Mutex
	objects   map[string][]byte
	answerSHA string
}

func newMemStore() *memStore { return &memStore{objects: map[string][]byte{}} }

func (s *memStore) Upload(_ context.Context, databaseID, backupID string, body io.Reader) (int64, string, error) {
	data, err := io.ReadAll(body)
	if err != nil {
		return 0, "", err
	}
	sum := sha256.Sum256(data)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[databaseID+"/"+backupID] = data
	if s.answerSHA != "" {
		return int64(len(data)), s.answerSHA, nil
	}
	return int64(len(data)), hex.EncodeToString(sum[:]), nil
}

func (s *memStore) Download(_ context.Context, databaseID, backupID string) (io.ReadCloser, error) {
	data, ok := s.get(databaseID, backupID)
	if !ok {
		return nil, temporal.NewNonRetryableApplicationError("no such backup", ErrTypeBackupUnavailable, nil)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func (s *memStore) get(databaseID, backupID string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, ok := s.objects[databaseID+"/"+backupID]
	return bytes.Clone(data), ok
}

func (s *memStore) put(databaseID, backupID string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[databaseID+"/"+backupID] = data
}

// corrupt damages a stored backup where a restore would take it for good data if it could:
// a letter of a value the test wrote (in a SQL dump, "alpha" becomes "alphz"), else a byte in
// its middle.
func corrupt(data []byte) []byte {
	data = bytes.Clone(data)
	if i := bytes.Index(data, []byte("alpha")); i >= 0 {
		data[i+4] = 'z'
	} else {
		data[len(data)/2] ^= 0xff
	}
	return data
}

// Each engine's backup goes to the store with the size and SHA-256 the node computed, and a
// restore of it brings the data back as it was (the rows changed, deleted and added since are
// undone) and counts it. A damaged stored object is refused before anything runs in the
// database's container: the data stays as it is. The downloaded file is removed.
func TestBackupAndRestoreDatabases(t *testing.T) {
	for name, tc := range backupCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testBackupAndRestore(t, tc, "bk-"+name)
		})
	}
}

func testBackupAndRestore(t *testing.T, tc backupCase, fixtureName string) {
	f := newDatabaseFixture(t, fixtureName)
	store := newMemStore()
	f.a.Backups, f.a.BackupDir = store, t.TempDir()
	db := newTestDatabase(t, f, tc.engine)
	c, id, name := f.a.Client, db.in.DatabaseID, DatabaseContainerName(db.in.DatabaseID)
	if err := f.run(t, f.a.StartDatabase, db.in, nil); err != nil {
		t.Fatalf("StartDatabase: %v", err)
	}
	waitHealthy(t, f, db)
	read := func() string { return strings.TrimSpace(mustExec(t, c, name, tc.read, nil)) }
	mustExec(t, c, name, tc.write, nil)
	if got := read(); got != tc.want {
		t.Fatalf("written: %q, want %q", got, tc.want)
	}

	started := time.Now()
	var backup BackupDatabaseResult
	if err := f.run(t, f.a.BackupDatabase, BackupDatabaseInput{DatabaseID: id, BackupID: "b1", Engine: tc.engine}, &backup); err != nil {
		t.Fatalf("BackupDatabase: %v", err)
	}
	backupTook := time.Since(started)
	stored, _ := store.get(id, "b1")
	sum := sha256.Sum256(stored)
	if len(stored) == 0 || backup.SizeBytes != int64(len(stored)) || backup.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("result %+v; the store holds %d bytes with sha256 %x", backup, len(stored), sum)
	}

	mustExec(t, c, name, tc.change, nil)
	changed := read()
	if changed == tc.want {
		t.Fatalf("the change changed nothing: %q", changed)
	}

	restore := RestoreDatabaseInput{DatabaseID: id, BackupID: "b1", Engine: tc.engine, SizeBytes: backup.SizeBytes, SHA256: backup.SHA256}
	store.put(id, "b1", corrupt(stored))
	since := time.Now()
	err := f.run(t, f.a.RestoreDatabase, restore, nil)
	wantAppError(t, err, ErrTypeBackupCorrupt, "the backup's stored bytes do not match its checksum (sha256 ")
	if !strings.Contains(err.Error(), "recorded "+backup.SHA256) || !strings.Contains(err.Error(), "refused before touching the database") {
		t.Errorf("error %q: want it to name the recorded checksum and say nothing was touched", err)
	}
	if execs := execsSince(t, f, name, tc.engine, since); len(execs) > 0 {
		t.Errorf("a refused backup ran %v in the database's container", execs)
	}
	if got := read(); got != changed {
		t.Errorf("after a refused restore: %q, want it unchanged (%q)", got, changed)
	}
	checkNoBackupFiles(t, f.a.BackupDir)

	store.put(id, "b1", stored)
	started = time.Now()
	var restored RestoreDatabaseResult
	if err := f.run(t, f.a.RestoreDatabase, restore, &restored); err != nil {
		t.Fatalf("RestoreDatabase: %v", err)
	}
	restoreTook := time.Since(started)
	if got := read(); got != tc.want {
		t.Errorf("after the restore: %q, want %q", got, tc.want)
	}
	if restored.Restored != 3 {
		t.Errorf("restored %d, want 3", restored.Restored)
	}
	checkNoBackupFiles(t, f.a.BackupDir)
	t.Logf("%s: backup of %d bytes %s, restore %s", tc.engine.Engine, backup.SizeBytes,
		backupTook.Round(time.Millisecond), restoreTook.Round(time.Millisecond))

	if tc.slowDisk != nil {
		mustExec(t, c, name, tc.slowDisk, nil)
		if err := f.run(t, f.a.RestoreDatabase, restore, nil); err != nil {
			t.Fatalf("RestoreDatabase with a slow disk: %v", err)
		}
		if _, stderr, code := execIn(t, c, name, tc.onDisk, nil); code != 0 {
			t.Errorf("the restore returned before the database had written it to its disk (%d): %s", code, stderr)
		}
	}

	if tc.atomic {
		// Cancelled at half the time a restore takes: in the download, the command, or the
		// Redis replication.
		mustExec(t, c, name, tc.change, nil)
		ctx, cancel := context.WithTimeout(context.Background(), restoreTook/2)
		err := runBackupActivity(t, f, ctx, nil, f.a.RestoreDatabase, restore)
		cancel()
		if got := read(); got != tc.want && got != changed {
			t.Errorf("after a cancelled restore (%v): %q, want the data before or after it", err, got)
		}
		if out, stderr, code := execIn(t, c, name, tc.writable, nil); code != 0 {
			t.Errorf("after a cancelled restore (%v) the database takes no writes: %s%s", err, out, stderr)
		}
		if err := f.run(t, f.a.RestoreDatabase, restore, &restored); err != nil || restored.Restored != 3 || read() != tc.want {
			t.Errorf("a restore after a cancelled one: %+v %v", restored, err)
		}
		checkNoBackupFiles(t, f.a.BackupDir)
	}

	// The data survives the engine's restart: the restore is on disk, not only in memory.
	if err := c.ContainerRestart(context.Background(), name, container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, f, db)
	if got := read(); got != tc.want {
		t.Errorf("after a restart: %q, want %q", got, tc.want)
	}

	if tc.more != nil {
		mustExec(t, c, name, tc.more, nil)
		out := strings.TrimSpace(mustExec(t, c, name, tc.engine.CountCommand, nil))
		if n, err := strconv.ParseInt(out, 10, 64); err != nil || n != tc.moreCount {
			t.Errorf("count with partitions, inheritance, odd names and views: %q, want %d", out, tc.moreCount)
		}
	}
}

// execsSince lists the commands run in the container since then (Docker's exec_create events),
// the engine's health check aside.
func execsSince(t *testing.T, f *fixture, containerName string, engine DatabaseEngine, since time.Time) []string {
	t.Helper()
	health := "exec_create: " + strings.Join(engine.HealthCommand, " ")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, errs := f.a.Client.Events(ctx, events.ListOptions{
		Since:   strconv.FormatInt(since.Unix()-1, 10),
		Until:   strconv.FormatInt(time.Now().Unix()+1, 10),
		Filters: filters.NewArgs(filters.Arg("container", containerName), filters.Arg("type", "container")),
	})
	var execs []string
	for {
		select {
		case m := <-msgs:
			if strings.HasPrefix(string(m.Action), "exec_create") && string(m.Action) != health && time.Unix(0, m.TimeNano).After(since) {
				execs = append(execs, string(m.Action))
			}
		case err := <-errs:
			if err != nil && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			return execs
		}
	}
}

func checkNoBackupFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left in the backup directory: %s", e.Name())
	}
}

// What goes wrong fails the backup or restore with what the workflow needs to know: a store
// that received other bytes (retryable, both checksums named), a dump or restore command that
// fails (non-retryable, with its output, the password redacted), a count that is not a number.
func TestBackupAndRestoreFailures(t *testing.T) {
	f := newDatabaseFixture(t, "bkfail")
	logs := captureLogs(t)
	store := newMemStore()
	f.a.Backups, f.a.BackupDir = store, t.TempDir()
	engine := withBackupCommands(redisEngine, redisDump, redisRestoreCommand, redisCount)
	db := newTestDatabase(t, f, engine)
	if err := f.run(t, f.a.StartDatabase, db.in, nil); err != nil {
		t.Fatalf("StartDatabase: %v", err)
	}
	waitHealthy(t, f, db)
	id, name := db.in.DatabaseID, DatabaseContainerName(db.in.DatabaseID)
	mustExec(t, f.a.Client, name, redisCLI("mset k1 alpha k2 bravo k3 charlie"), nil)

	t.Run("the store received other bytes", func(t *testing.T) {
		store.answerSHA = strings.Repeat("0", 64)
		defer func() { store.answerSHA = "" }()
		err := f.run(t, f.a.BackupDatabase, BackupDatabaseInput{DatabaseID: id, BackupID: "wrong", Engine: engine}, nil)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != ErrTypeBackupTransfer || appErr.NonRetryable() {
			t.Fatalf("%v, want a retryable %s", err, ErrTypeBackupTransfer)
		}
		stored, _ := store.get(id, "wrong")
		sum := sha256.Sum256(stored)
		for _, want := range []string{"sha256 " + strings.Repeat("0", 64) + " stored", "sha256 " + hex.EncodeToString(sum[:]) + " sent"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q: want %q in it", err, want)
			}
		}
	})

	t.Run("the dump fails", func(t *testing.T) {
		failing := engine
		failing.DumpCommand = []string{"sh", "-c", `printf 'partial dump'; echo "oops, cannot dump with $REDIS_PASSWORD" >&2; exit 3`}
		err := f.run(t, f.a.BackupDatabase, BackupDatabaseInput{DatabaseID: id, BackupID: "failed", Engine: failing}, nil)
		wantAppError(t, err, ErrTypeBackupFailed, "the database's dump command exited with code 3; its last output: oops, cannot dump with [redacted]")
		if strings.Contains(err.Error(), db.password) {
			t.Errorf("the password is in the error: %v", err)
		}
		if data, ok := store.get(id, "failed"); ok {
			t.Errorf("the store kept %q of a failed dump: the upload was not aborted", data)
		}

		failing.DumpCommand = []string{"sh", "-c", `echo "dumped to the wrong place" >&2`}
		err = f.run(t, f.a.BackupDatabase, BackupDatabaseInput{DatabaseID: id, BackupID: "empty", Engine: failing}, nil)
		wantAppError(t, err, ErrTypeBackupFailed, "the database's dump command exited 0 but wrote nothing; its last output: dumped to the wrong place")
		if _, ok := store.get(id, "empty"); ok {
			t.Error("the store kept an empty dump")
		}
	})

	t.Run("the restore fails", func(t *testing.T) {
		var backup BackupDatabaseResult
		if err := f.run(t, f.a.BackupDatabase, BackupDatabaseInput{DatabaseID: id, BackupID: "good", Engine: engine}, &backup); err != nil {
			t.Fatal(err)
		}
		failing := engine
		failing.RestoreCommand = []string{"sh", "-c", `head -c 10 >/dev/null; echo "cannot restore as $REDIS_PASSWORD" >&2; exit 4`}
		err := f.run(t, f.a.RestoreDatabase, RestoreDatabaseInput{DatabaseID: id, BackupID: "good", Engine: failing,
			SizeBytes: backup.SizeBytes, SHA256: backup.SHA256}, nil)
		wantAppError(t, err, ErrTypeRestoreFailed, "the database's restore command exited with code 4; its last output: cannot restore as [redacted]")

		// A count that prints no number.
		failing = engine
		failing.CountCommand = []string{"echo", "many"}
		err = f.run(t, f.a.RestoreDatabase, RestoreDatabaseInput{DatabaseID: id, BackupID: "good", Engine: failing,
			SizeBytes: backup.SizeBytes, SHA256: backup.SHA256}, nil)
		wantAppError(t, err, ErrTypeRestoreCountFailed, `its count command printed "many", not a number`)

		// A backup that is not the whole recorded one.
		stored, _ := store.get(id, "good")
		store.put(id, "good", stored[:len(stored)-1])
		err = f.run(t, f.a.RestoreDatabase, RestoreDatabaseInput{DatabaseID: id, BackupID: "good", Engine: engine,
			SizeBytes: backup.SizeBytes, SHA256: backup.SHA256}, nil)
		wantAppError(t, err, ErrTypeBackupCorrupt, fmt.Sprintf("(%d bytes of the recorded %d with sha256 ", len(stored)-1, len(stored)))
		store.put(id, "good", append(stored, 'x'))
		err = f.run(t, f.a.RestoreDatabase, RestoreDatabaseInput{DatabaseID: id, BackupID: "good", Engine: engine,
			SizeBytes: backup.SizeBytes, SHA256: backup.SHA256}, nil)
		wantAppError(t, err, ErrTypeBackupCorrupt, fmt.Sprintf("(more than the recorded %d bytes, recorded %s)", len(stored), backup.SHA256))
		checkNoBackupFiles(t, f.a.BackupDir)
	})

	t.Run("heartbeats", func(t *testing.T) {
		slow := engine
		slow.DumpCommand = []string{"sh", "-c", `i=0; while [ $i -lt 30 ]; do head -c 1000 /dev/zero; sleep 0.1; i=$((i+1)); done`}
		var mu sync.Mutex
		var beats []BackupProgress
		err := runBackupActivity(t, f, context.Background(), func(p BackupProgress) {
			mu.Lock()
			defer mu.Unlock()
			beats = append(beats, p)
		}, f.a.BackupDatabase, BackupDatabaseInput{DatabaseID: id, BackupID: "slow", Engine: slow})
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(beats) == 0 || beats[0].Phase != "dump" || beats[0].Bytes <= 0 || beats[0].Bytes >= 30000 {
			t.Errorf("heartbeats %+v, want the dump's bytes so far", beats)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		endless := engine
		endless.DumpCommand = []string{"sh", "-c", `while :; do head -c 1000 /dev/zero; sleep 0.1; done`}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		started := time.Now()
		err := runBackupActivity(t, f, ctx, nil, f.a.BackupDatabase, BackupDatabaseInput{DatabaseID: id, BackupID: "endless", Engine: endless})
		if err == nil || time.Since(started) > 5*time.Second {
			t.Fatalf("a cancelled backup: %v after %s", err, time.Since(started))
		}
		if data, ok := store.get(id, "endless"); ok {
			t.Errorf("the store kept %d bytes of a cancelled backup", len(data))
		}
		// The dump stops at its next write: nothing reads its output any more.
		deadline := time.Now().Add(10 * time.Second)
		for {
			top, err := f.a.Client.ContainerTop(context.Background(), name, []string{"-o", "pid,args"})
			if err != nil {
				t.Fatal(err)
			}
			running := false
			for _, p := range top.Processes {
				running = running || strings.Contains(strings.Join(p, " "), "while :")
			}
			if !running {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the dump still runs after its backup was cancelled: %v", top.Processes)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	if got := strings.TrimSpace(mustExec(t, f.a.Client, name, redisCLI("mget k1 k2 k3"), nil)); got != "alpha\nbravo\ncharlie" {
		t.Errorf("the failures changed the data: %q", got)
	}
	if strings.Contains(logs.String(), db.password) {
		t.Errorf("a log line holds the password:\n%s", logs.String())
	}
}

// runBackupActivity runs fn in a test activity environment whose activities end with ctx,
// passing the heartbeats that reach the server to beats.
func runBackupActivity(t *testing.T, f *fixture, ctx context.Context, beats func(BackupProgress), fn, in any) error {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.SetWorkerOptions(worker.Options{BackgroundActivityContext: ctx})
	if beats != nil {
		env.SetOnActivityHeartbeatListener(func(_ *activity.Info, details converter.EncodedValues) {
			var p BackupProgress
			if details.Get(&p) == nil {
				beats(p)
			}
		})
	}
	env.RegisterActivity(f.a)
	_, err := env.ExecuteActivity(fn, in)
	return err
}

// A restore whose backup the store does not hold, or whose database has no container here,
// fails without retries; bad input is refused before anything runs.
func TestBackupAndRestoreRejectBadInput(t *testing.T) {
	f := newDatabaseFixture(t, "bkbad")
	f.a.Backups, f.a.BackupDir = newMemStore(), t.TempDir()
	engine := withBackupCommands(redisEngine, redisDump, redisRestoreCommand, redisCount)
	good := RestoreDatabaseInput{DatabaseID: "db1", BackupID: "b1", Engine: engine, SizeBytes: 1, SHA256: strings.Repeat("a", 64)}
	bad := map[string]func(*RestoreDatabaseInput){
		"database id":        func(in *RestoreDatabaseInput) { in.DatabaseID = "../x" },
		"backup id":          func(in *RestoreDatabaseInput) { in.BackupID = "" },
		"no restore command": func(in *RestoreDatabaseInput) { in.Engine.RestoreCommand = nil },
		"sha256":             func(in *RestoreDatabaseInput) { in.SHA256 = "ABC" },
		"size":               func(in *RestoreDatabaseInput) { in.SizeBytes = -1 },
	}
	for what, mutate := range bad {
		t.Run(what, func(t *testing.T) {
			in := good
			mutate(&in)
			wantAppError(t, f.run(t, f.a.RestoreDatabase, in, nil), ErrTypeInvalidInput, "")
		})
	}
	noDump := BackupDatabaseInput{DatabaseID: "db1", BackupID: "b1", Engine: engine}
	noDump.Engine.DumpCommand = nil
	wantAppError(t, f.run(t, f.a.BackupDatabase, noDump, nil), ErrTypeInvalidInput, "the engine has no dump command")
	wantAppError(t, f.run(t, f.a.BackupDatabase, BackupDatabaseInput{DatabaseID: "db1", BackupID: "b/1", Engine: engine}, nil), ErrTypeInvalidInput, "backup id")
	wantAppError(t, f.run(t, f.a.RestoreDatabase, good, nil), ErrTypeDatabaseMissing, "database db1 has no container on this node")
	checkNoBackupFiles(t, f.a.BackupDir)
}

func TestTailBufferKeepsTheEnd(t *testing.T) {
	tail := newTailBuffer(8)
	for _, s := range []string{"abc", "defgh", "ij", "0123456789", "é"} {
		tail.Write([]byte(s))
	}
	if got := tail.String(); got != "456789é" {
		t.Errorf("tail %q, want %q", got, "456789é")
	}
	// A character cut at the start is dropped, not shown broken.
	tail = newTailBuffer(3)
	tail.Write([]byte("aébc"))
	if got := tail.String(); got != "bc" {
		t.Errorf("tail %q, want %q", got, "bc")
	}
}
