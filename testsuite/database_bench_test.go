package testsuite

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkDatabaseBackupRestore measures the platform's backup and restore of a PostgreSQL
// database of SKYPANEL_BENCH_DB_MB MiB of rows (1024 by default) against pg_dump and pg_restore
// run by hand in the same container, in the same run (`make bench BENCH=DatabaseBackupRestore`).
// The platform's figures are the operations' whole time (queue, workflow, the dump streamed to
// the store and verified by SHA-256; the download checked before pg_restore), from the API call
// to the operation's end.
func BenchmarkDatabaseBackupRestore(b *testing.B) {
	sizeMB := 1024
	if v, err := strconv.Atoi(os.Getenv("SKYPANEL_BENCH_DB_MB")); err == nil && v > 0 {
		sizeMB = v
	}
	owner := newCustomer(b, uniqueName("dbbench")+"@example.com")
	var created struct {
		Database managedDatabase `json:"database"`
	}
	if status, raw := platform.call(http.MethodPost, "/api/paas/databases", owner.token, map[string]any{
		"name": uniqueName("bench"), "engine": "postgresql", "plan": "db-medium", "region": "local", "backup_interval": "0"}, &created); status != http.StatusAccepted {
		b.Fatalf("create: %d %s", status, raw)
	}
	var pg managedDatabase
	eventually(b, 4*time.Minute, "the database is available", func() (bool, string) {
		pg = owner.getDatabase(b, created.Database.ID)
		return pg.Status == "available", pg.Status
	})
	b.Cleanup(func() { owner.deleteDatabase(b, pg.ID) })
	psql := func(sql string) string {
		b.Helper()
		out, err := exec.Command("docker", "exec", pg.Host, "sh", "-c", `exec psql -v ON_ERROR_STOP=1 -Atq -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c "$0"`, sql).CombinedOutput()
		if err != nil {
			b.Fatalf("psql %q: %v\n%s", sql, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	// About 300 bytes a row: md5 text and padding that compresses the way real text does.
	rows := sizeMB * 1024 * 1024 / 300
	began := time.Now()
	psql(fmt.Sprintf(`CREATE TABLE big AS SELECT g AS id, md5(g::text) || ' ' || repeat(md5((g * 7)::text), 8) AS pad FROM generate_series(1, %d) g`, rows))
	size := psql(`SELECT pg_total_relation_size('big')`)
	b.Logf("filled %d rows (%s bytes on disk) in %s", rows, size, time.Since(began).Round(time.Millisecond))
	bytesOnDisk, _ := strconv.ParseFloat(size, 64)
	mb := bytesOnDisk / (1 << 20)

	b.ResetTimer()
	began = time.Now()
	backupID, op := owner.backupDatabase(b, pg.ID)
	platformBackup := time.Since(began)
	if op.Status != "succeeded" {
		b.Fatalf("backup: %+v", op)
	}
	began = time.Now()
	restored := owner.restoreDatabase(b, pg.ID, backupID)
	platformRestore := time.Since(began)
	if restored.Status != "succeeded" || !strings.Contains(restored.Reason, "holds "+strconv.Itoa(rows)+" rows") {
		b.Fatalf("restore: %+v", restored)
	}

	// By hand: the same dump to a file on the host, and the same restore from it.
	dump := filepath.Join(b.TempDir(), "hand.dump")
	began = time.Now()
	byHand(b, `docker exec `+pg.Host+` sh -c 'exec pg_dump -Fc -U "$POSTGRES_USER" -d "$POSTGRES_DB"' > `+dump)
	handBackup := time.Since(began)
	began = time.Now()
	byHand(b, `docker exec -i `+pg.Host+` sh -c 'exec pg_restore --clean --if-exists --no-owner --exit-on-error --single-transaction -U "$POSTGRES_USER" -d "$POSTGRES_DB"' < `+dump)
	handRestore := time.Since(began)
	b.StopTimer()

	info, _ := os.Stat(dump)
	b.Logf("%.0f MiB table, dump %d bytes: platform backup %s, restore %s; by hand pg_dump %s, pg_restore %s",
		mb, info.Size(), platformBackup.Round(time.Millisecond), platformRestore.Round(time.Millisecond),
		handBackup.Round(time.Millisecond), handRestore.Round(time.Millisecond))
	b.ReportMetric(mb/platformBackup.Seconds(), "backup-MiB/s")
	b.ReportMetric(mb/handBackup.Seconds(), "pg_dump-MiB/s")
	b.ReportMetric(mb/platformRestore.Seconds(), "restore-MiB/s")
	b.ReportMetric(mb/handRestore.Seconds(), "pg_restore-MiB/s")
	b.ReportMetric(platformBackup.Seconds()/handBackup.Seconds(), "backup-ratio")
	b.ReportMetric(platformRestore.Seconds()/handRestore.Seconds(), "restore-ratio")
}

// byHand runs a shell command line (the benchmark's own, no user value in it).
func byHand(b *testing.B, line string) {
	b.Helper()
	if out, err := exec.Command("sh", "-c", line).CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", line, err, out)
	}
}
