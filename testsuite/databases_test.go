package testsuite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	// The dbprobe app (testdata) speaks MySQL with it; imported here too so that go mod tidy,
	// which does not look into testdata, keeps the requirement.
	_ "github.com/go-sql-driver/mysql"
)

// managedDatabase is a database as GET /databases/{id} answers.
type managedDatabase struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Engine       string   `json:"engine"`
	Version      string   `json:"version"`
	Status       string   `json:"status"`
	StatusReason string   `json:"status_reason"`
	Host         string   `json:"host"`
	Port         int      `json:"port"`
	Database     string   `json:"database"`
	User         string   `json:"user"`
	Password     string   `json:"password"`
	LinkedApps   []string `json:"linked_apps"`
	BackupStore  string   `json:"backup_store"`
	// The backup schedule.
	BackupInterval  string `json:"backup_interval"`
	BackupRetention int    `json:"backup_retention"`
}

// createDatabase asks for a database and waits until it is available.
func (c customer) createDatabase(t testing.TB, name, engine string) managedDatabase {
	t.Helper()
	return c.createDatabaseWith(t, map[string]string{"name": name, "engine": engine, "plan": "db-small", "region": "local"})
}

// createDatabaseWith asks for a database with the body given and waits until it is available.
func (c customer) createDatabaseWith(t testing.TB, body map[string]string) managedDatabase {
	t.Helper()
	name := body["name"]
	var out struct {
		Database    managedDatabase `json:"database"`
		OperationID string          `json:"operation_id"`
		WorkflowID  string          `json:"workflow_id"`
	}
	status, raw := platform.call(http.MethodPost, "/api/paas/databases", c.token, body, &out)
	if status != http.StatusAccepted || out.Database.ID == "" || out.WorkflowID == "" {
		t.Fatalf("create database %s: %d %s", name, status, raw)
	}
	if out.Database.Status != "provisioning" {
		t.Errorf("a new database is %q, want provisioning", out.Database.Status)
	}
	var d managedDatabase
	eventually(t, 4*time.Minute, "database "+name+" is available", func() (bool, string) {
		d = c.getDatabase(t, out.Database.ID)
		if d.Status == "failed" {
			t.Fatalf("database %s failed: %s", name, d.StatusReason)
		}
		return d.Status == "available", d.Status
	})
	return d
}

func (c customer) getDatabase(t testing.TB, id string) managedDatabase {
	t.Helper()
	var d managedDatabase
	if status, raw := platform.call(http.MethodGet, "/api/paas/databases/"+id, c.token, nil, &d); status != http.StatusOK {
		t.Fatalf("get database %s: %d %s", id, status, raw)
	}
	return d
}

// deleteDatabase deletes a database and waits until it is gone (404).
func (c customer) deleteDatabase(t testing.TB, id string) {
	t.Helper()
	if err := deleteDatabase(context.Background(), c, id); err != nil {
		t.Fatal(err)
	}
}

func deleteDatabase(ctx context.Context, c customer, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		status, raw := platform.call(http.MethodDelete, "/api/paas/databases/"+id, c.token, nil, nil)
		switch status {
		case http.StatusNotFound:
			return nil
		case http.StatusAccepted, http.StatusConflict: // being deleted, or busy: look again
		default:
			return fmt.Errorf("delete database %s: %d %s", id, status, raw)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("database %s is still there: %d %s", id, status, raw)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// deleteDatabasesOf deletes every database of the customers (after their apps, so no link
// holds one).
func deleteDatabasesOf(ctx context.Context, customers []customer) error {
	var errs []error
	for _, c := range customers {
		var list struct{ Items []managedDatabase }
		if status, raw := platform.call(http.MethodGet, "/api/paas/databases", c.token, nil, &list); status != http.StatusOK {
			errs = append(errs, fmt.Errorf("list databases of organization %s: %d %s", c.orgID, status, raw))
			continue
		}
		for _, d := range list.Items {
			if err := deleteDatabase(ctx, c, d.ID); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%v", errs)
	}
	return nil
}

type linkAnswer struct {
	Variables   []string `json:"variables"`
	Shadowed    []string `json:"shadowed"`
	OperationID string   `json:"operation_id"`
	WorkflowID  string   `json:"workflow_id"`
	Status      string   `json:"status"`
}

// link links (or unlinks) a database and waits for the rollout when there is one.
func (c customer) link(t testing.TB, appID, databaseID string, unlink bool) linkAnswer {
	t.Helper()
	method := http.MethodPost
	if unlink {
		method = http.MethodDelete
	}
	var out linkAnswer
	status, raw := platform.call(method, "/api/paas/applications/"+appID+"/databases/"+databaseID, c.token, nil, &out)
	if status != http.StatusOK && status != http.StatusAccepted {
		t.Fatalf("%s link of %s to %s: %d %s", method, databaseID, appID, status, raw)
	}
	if out.WorkflowID != "" {
		c.waitWorkflow(t, out.WorkflowID)
	}
	return out
}

var (
	dbProbeOnce   sync.Once
	dbProbeBinary string
	dbProbeErr    error
)

// newDBProbeRepo is a repository of the dbprobe app (testdata/dbprobe), built once.
func newDBProbeRepo(t testing.TB, name string) *repo {
	t.Helper()
	dbProbeOnce.Do(func() {
		dbProbeBinary = filepath.Join(platform.workDir, "dbprobe")
		cmd := exec.Command("go", "build", "-o", dbProbeBinary, "./testdata/dbprobe")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if raw, err := cmd.CombinedOutput(); err != nil {
			dbProbeErr = fmt.Errorf("build dbprobe: %v\n%s", err, raw)
		}
	})
	if dbProbeErr != nil {
		t.Fatal(dbProbeErr)
	}
	binary, err := os.ReadFile(dbProbeBinary)
	if err != nil {
		t.Fatal(err)
	}
	r := newRepo(t, name)
	r.write("app", string(binary))
	r.write("Dockerfile", "FROM scratch\nCOPY app /app\nUSER 1000:1000\nENTRYPOINT [\"/app\"]\n")
	r.commit("dbprobe")
	return r
}

// probe asks the app (through nginx) for path and returns the answer.
func probe(host, path string) (int, string) {
	return platform.throughNginxPath(host, path)
}

// A PostgreSQL database is provisioned by a workflow, reached only by its organization's apps
// through the variables a link injects (rolled out to a running app, taken by a first deploy),
// unlinked with another rollout, refused deletion while linked, and its password is nowhere in
// plaintext on the platform.
func TestAPostgreSQLDatabaseServesItsLinkedAppsOnly(t *testing.T) {
	t.Parallel() // mostly waits on provisioning and rollouts
	owner := newCustomer(t, uniqueName("pgowner")+"@example.com")
	pg := owner.createDatabase(t, uniqueName("main"), "postgresql")
	if pg.Engine != "postgresql" || pg.Port != 5432 || pg.Password == "" || pg.User == "" || pg.Database == "" || pg.Host == "" {
		t.Fatalf("connection settings: %+v", pg)
	}

	// The database's container: the organization's network only, nothing published, a volume.
	info, err := platform.docker.ContainerInspect(context.Background(), pg.Host)
	if err != nil {
		t.Fatalf("the database's container %s: %v", pg.Host, err)
	}
	if len(info.NetworkSettings.Networks) != 1 || info.NetworkSettings.Networks["skypanel-org-"+owner.orgID] == nil {
		t.Errorf("the database is on %v, want its organization's network only", keysOf(info.NetworkSettings.Networks))
	}
	for port, bindings := range info.NetworkSettings.Ports {
		if len(bindings) > 0 {
			t.Errorf("the database publishes %s on the host: %v", port, bindings)
		}
	}
	var volumeName string
	for _, m := range info.Mounts {
		if m.Type == "volume" {
			volumeName = m.Name
		}
	}
	if volumeName == "" {
		t.Errorf("the database keeps its files in no named volume: %+v", info.Mounts)
	}

	// A running app gets the variables through a rollout, without a deploy.
	name := uniqueName("pgapp")
	r := newDBProbeRepo(t, name)
	app := owner.createApp(t, name, r.URL)
	if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
		t.Fatalf("deploy: %+v\n%s", dep, owner.logs(t, app.ID, dep.ID))
	}
	host := name + ".apps.localhost"
	if status, body := probe(host, "/pg/list"); status != http.StatusServiceUnavailable || !strings.Contains(body, "DATABASE_URL is not set") {
		t.Fatalf("before the link: %d %q, want 503 DATABASE_URL is not set", status, body)
	}
	linked := owner.link(t, app.ID, pg.ID, false)
	if linked.Status != "rolling-out" || !containsString(linked.Variables, "DATABASE_URL") || !containsString(linked.Variables, "PGHOST") {
		t.Fatalf("link to a running app: %+v", linked)
	}
	for _, v := range []string{"alpha", "beta", "gamma"} {
		if status, body := probe(host, "/pg/put?v="+v); status != http.StatusOK {
			t.Fatalf("write %s through the app: %d %s", v, status, body)
		}
	}
	if status, body := probe(host, "/pg/list"); status != http.StatusOK || body != "alpha\nbeta\ngamma" {
		t.Fatalf("the rows through the app: %d %q", status, body)
	}

	// A second app, linked before its first deploy, reads the same rows.
	name2 := uniqueName("pgapp")
	app2 := owner.createApp(t, name2, newDBProbeRepo(t, name2).URL)
	if saved := owner.link(t, app2.ID, pg.ID, false); saved.Status != "saved" {
		t.Errorf("link to an app never deployed: %+v, want saved", saved)
	}
	if again := owner.link(t, app2.ID, pg.ID, false); again.Status != "unchanged" {
		t.Errorf("the same link twice: %+v, want unchanged", again)
	}
	if dep := owner.deploy(t, app2.ID); dep.Status != "succeeded" {
		t.Fatalf("deploy of the second app: %+v", dep)
	}
	if status, body := probe(name2+".apps.localhost", "/pg/list"); status != http.StatusOK || body != "alpha\nbeta\ngamma" {
		t.Errorf("the second app reads %d %q", status, body)
	}

	// Deleting a linked database is refused, and changes nothing.
	if status, raw := platform.call(http.MethodDelete, "/api/paas/databases/"+pg.ID, owner.token, nil, nil); status != http.StatusConflict {
		t.Errorf("delete a linked database: %d %s, want 409", status, raw)
	}
	if got := owner.getDatabase(t, pg.ID); got.Status != "available" || len(got.LinkedApps) != 2 {
		t.Errorf("after the refused delete: %+v", got)
	}

	// The password is in no platform record in plaintext: not in the control-plane database,
	// nor in any workflow history, nor in the processes' logs. (The app's container holds it,
	// which proves the checks would find it.)
	assertNotInPlatformRecords(t, map[string]string{"the database's password": pg.Password})
	if !containerEnvHolds(t, app.ID, pg.Password) {
		t.Error("the linked app's container does not hold the password: the checks above prove nothing")
	}

	// Unlinking takes the variables away with another rollout.
	if unlinked := owner.link(t, app.ID, pg.ID, true); unlinked.Status != "rolling-out" {
		t.Errorf("unlink from a running app: %+v", unlinked)
	}
	if status, body := probe(host, "/pg/list"); status != http.StatusServiceUnavailable {
		t.Errorf("after the unlink the app still reaches the database: %d %q", status, body)
	}
	owner.operation(t, app2.ID, "delete") // the link goes with the app
	owner.deleteDatabase(t, pg.ID)
	if _, err := platform.docker.ContainerInspect(context.Background(), pg.Host); !errdefs.IsNotFound(err) {
		t.Errorf("the deleted database's container is still there (inspect: %v)", err)
	}
	if _, err := platform.docker.VolumeInspect(context.Background(), volumeName); !errdefs.IsNotFound(err) {
		t.Errorf("the deleted database's volume is still there (inspect: %v)", err)
	}
}

// keysOf lists a map's keys.
func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// containerEnvHolds says whether one of the app's containers has value in its environment.
func containerEnvHolds(t testing.TB, appID, value string) bool {
	t.Helper()
	for _, c := range appContainers(t, appID) {
		info, err := platform.docker.ContainerInspect(context.Background(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range info.Config.Env {
			if strings.Contains(e, value) {
				return true
			}
		}
	}
	return false
}

// A Redis database is reached by its organization's app through REDIS_URL, with its password;
// another organization's app can open no connection to it, and another customer can neither
// see, link nor delete it. Bad requests are refused with the field at fault, changing nothing.
func TestRedisIsIsolatedPerOrganizationAndBadRequestsChangeNothing(t *testing.T) {
	t.Parallel()
	owner := newCustomer(t, uniqueName("redisowner")+"@example.com")
	cache := owner.createDatabase(t, uniqueName("cache"), "redis")
	name := uniqueName("redisapp")
	app := owner.createApp(t, name, newDBProbeRepo(t, name).URL)
	if linked := owner.link(t, app.ID, cache.ID, false); linked.Status != "saved" || !containsString(linked.Variables, "REDIS_URL") {
		t.Fatalf("link: %+v", linked)
	}
	if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
		t.Fatalf("deploy: %+v", dep)
	}
	host := name + ".apps.localhost"
	if status, body := probe(host, "/redis/set?k=greeting&v=hello"); status != http.StatusOK || body != "OK" {
		t.Fatalf("SET through the app: %d %q", status, body)
	}
	if status, body := probe(host, "/redis/get?k=greeting"); status != http.StatusOK || body != "hello" {
		t.Fatalf("GET through the app: %d %q", status, body)
	}
	// Back up, change, restore: the backed-up keys come back, the later ones go.
	backupID, op := owner.backupDatabase(t, cache.ID)
	if op.Status != "succeeded" {
		t.Fatalf("backup of the Redis database: %+v", op)
	}
	probe(host, "/redis/set?k=greeting&v=changed")
	probe(host, "/redis/set?k=later&v=1")
	if restored := owner.restoreDatabase(t, cache.ID, backupID); restored.Status != "succeeded" || !strings.Contains(restored.Reason, "holds 1 keys") {
		t.Errorf("restore of the Redis database: %+v, want succeeded saying it holds 1 keys", restored)
	}
	if status, body := probe(host, "/redis/keys"); status != http.StatusOK || body != "greeting" {
		t.Errorf("the keys after the restore: %d %q, want only greeting", status, body)
	}
	if _, body := probe(host, "/redis/get?k=greeting"); body != "hello" {
		t.Errorf("greeting after the restore: %q, want hello", body)
	}

	target := url.QueryEscape(fmt.Sprintf("%s:%d", cache.Host, cache.Port))
	if _, body := probe(host, "/probe?to="+target); body != "connected" {
		t.Errorf("the owner's app cannot open a connection to its database: %q", body)
	}

	// Another organization: its app can open no connection, by name or by address.
	other := newCustomer(t, uniqueName("intruder")+"@example.com")
	otherName := uniqueName("intruderapp")
	otherApp := other.createApp(t, otherName, newDBProbeRepo(t, otherName).URL)
	if dep := other.deploy(t, otherApp.ID); dep.Status != "succeeded" {
		t.Fatalf("deploy the other organization's app: %+v", dep)
	}
	info, err := platform.docker.ContainerInspect(context.Background(), cache.Host)
	if err != nil {
		t.Fatal(err)
	}
	var address string
	for _, n := range info.NetworkSettings.Networks {
		address = n.IPAddress
	}
	if address == "" {
		t.Fatal("the database has no address on its network")
	}
	for _, to := range []string{target, url.QueryEscape(fmt.Sprintf("%s:%d", address, cache.Port))} {
		if _, body := probe(otherName+".apps.localhost", "/probe?to="+to); body == "connected" || !strings.HasPrefix(body, "refused") {
			t.Errorf("another organization's app reaches the database at %s: %q", to, body)
		}
	}
	// ... nor its apps by address.
	if _, body := probe(otherName+".apps.localhost", "/probe?to="+url.QueryEscape(appAddress(t, app.ID)+":8080")); body == "connected" {
		t.Errorf("another organization's app reaches the owner's app: %q", body)
	}

	// Another customer's database id is not found anywhere; nothing changes.
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/api/paas/databases/" + cache.ID},
		{http.MethodDelete, "/api/paas/databases/" + cache.ID},
		{http.MethodPost, "/api/paas/applications/" + otherApp.ID + "/databases/" + cache.ID},
	} {
		if status, raw := platform.call(c.method, c.path, other.token, nil, nil); status != http.StatusNotFound {
			t.Errorf("%s %s by another customer: %d %s, want 404", c.method, c.path, status, raw)
		}
	}
	// Nor can the owner link its database to another organization's app.
	if status, raw := platform.call(http.MethodPost, "/api/paas/applications/"+otherApp.ID+"/databases/"+cache.ID, owner.token, nil, nil); status != http.StatusNotFound {
		t.Errorf("linking to another organization's app: %d %s, want 404", status, raw)
	}

	before := owner.listDatabases(t)
	for _, bad := range []struct {
		body     map[string]string
		status   int
		location string
	}{
		{map[string]string{"name": "x1", "engine": "oracle", "plan": "db-small", "region": "local"}, http.StatusUnprocessableEntity, "body.engine"},
		{map[string]string{"name": "x2", "engine": "postgresql", "version": "7", "plan": "db-small", "region": "local"}, http.StatusUnprocessableEntity, "body.version"},
		{map[string]string{"name": "x3", "engine": "redis", "plan": "starter", "region": "local"}, http.StatusUnprocessableEntity, "body.plan"},
		{map[string]string{"name": "Bad Name!", "engine": "redis", "plan": "db-small", "region": "local"}, http.StatusUnprocessableEntity, "body.name"},
		{map[string]string{"name": "x4; rm -rf /", "engine": "redis", "plan": "db-small", "region": "local"}, http.StatusUnprocessableEntity, "body.name"},
		{map[string]string{"name": cache.Name, "engine": "redis", "plan": "db-small", "region": "local"}, http.StatusConflict, "body.name"},
	} {
		status, raw := platform.call(http.MethodPost, "/api/paas/databases", owner.token, bad.body, nil)
		if status != bad.status || !strings.Contains(string(raw), bad.location) {
			t.Errorf("create %v: %d %s, want %d naming %s", bad.body, status, raw, bad.status, bad.location)
		}
	}
	if after := owner.listDatabases(t); len(after) != len(before) {
		t.Errorf("bad requests changed the databases: %d before, %d after", len(before), len(after))
	}
	owner.operation(t, app.ID, "delete")
	owner.deleteDatabase(t, cache.ID)
	if status, _ := platform.call(http.MethodGet, "/api/paas/databases/"+cache.ID, owner.token, nil, nil); status != http.StatusNotFound {
		t.Errorf("a deleted database answers %d, want 404", status)
	}
	// Its name is free again.
	again := owner.createDatabase(t, cache.Name, "redis")
	owner.deleteDatabase(t, again.ID)
}

func (c customer) listDatabases(t testing.TB) []managedDatabase {
	t.Helper()
	var list struct{ Items []managedDatabase }
	if status, raw := platform.call(http.MethodGet, "/api/paas/databases", c.token, nil, &list); status != http.StatusOK {
		t.Fatalf("list databases: %d %s", status, raw)
	}
	return list.Items
}

// appAddress is the address of one of the app's containers on its organization's network.
func appAddress(t testing.TB, appID string) string {
	t.Helper()
	for _, c := range appContainers(t, appID) {
		info, err := platform.docker.ContainerInspect(context.Background(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range info.NetworkSettings.Networks {
			if n.IPAddress != "" {
				return n.IPAddress
			}
		}
	}
	t.Fatalf("app %s has no container with an address", appID)
	return ""
}

type databaseOperation struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	Status     string `json:"status"`
	Reason     string `json:"reason"`
	WorkflowID string `json:"workflow_id"`
}

type databaseBackup struct {
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	Status    string `json:"status"`
	Store     string `json:"store"`
	SizeBytes int64  `json:"size_bytes"`
	SHA256    string `json:"sha256"`
	Error     string `json:"error"`
}

// databaseOperationOf waits until the database's operation of workflowID has ended.
func (c customer) databaseOperationOf(t testing.TB, databaseID, workflowID string) databaseOperation {
	t.Helper()
	var found databaseOperation
	eventually(t, 4*time.Minute, "database operation "+workflowID+" ended", func() (bool, string) {
		var list struct{ Items []databaseOperation }
		if status, raw := platform.call(http.MethodGet, "/api/paas/databases/"+databaseID+"/operations", c.token, nil, &list); status != http.StatusOK {
			t.Fatalf("list database operations: %d %s", status, raw)
		}
		for _, op := range list.Items {
			if op.WorkflowID == workflowID {
				found = op
				return op.Status != "queued" && op.Status != "running", op.Status
			}
		}
		return false, "not listed"
	})
	return found
}

func (c customer) backups(t testing.TB, databaseID string) []databaseBackup {
	t.Helper()
	var list struct{ Items []databaseBackup }
	if status, raw := platform.call(http.MethodGet, "/api/paas/databases/"+databaseID+"/backups", c.token, nil, &list); status != http.StatusOK {
		t.Fatalf("list backups: %d %s", status, raw)
	}
	return list.Items
}

// backupOf is the database's backup backupID as listed.
func (c customer) backupOf(t testing.TB, databaseID, backupID string) databaseBackup {
	t.Helper()
	for _, b := range c.backups(t, databaseID) {
		if b.ID == backupID {
			return b
		}
	}
	t.Fatalf("backup %s of database %s is not listed", backupID, databaseID)
	return databaseBackup{}
}

// backupDatabase takes a backup and waits until its operation has ended.
func (c customer) backupDatabase(t testing.TB, databaseID string) (string, databaseOperation) {
	t.Helper()
	var out struct {
		BackupID   string `json:"backup_id"`
		WorkflowID string `json:"workflow_id"`
	}
	if status, raw := platform.call(http.MethodPost, "/api/paas/databases/"+databaseID+"/backup", c.token, nil, &out); status != http.StatusAccepted || out.BackupID == "" {
		t.Fatalf("backup: %d %s", status, raw)
	}
	return out.BackupID, c.databaseOperationOf(t, databaseID, out.WorkflowID)
}

// restoreDatabase asks for a restore (202) and waits until its operation has ended.
func (c customer) restoreDatabase(t testing.TB, databaseID, backupID string) databaseOperation {
	t.Helper()
	var out struct {
		WorkflowID string `json:"workflow_id"`
	}
	if status, raw := platform.call(http.MethodPost, "/api/paas/databases/"+databaseID+"/restore", c.token,
		map[string]string{"backup_id": backupID}, &out); status != http.StatusAccepted {
		t.Fatalf("restore: %d %s", status, raw)
	}
	return c.databaseOperationOf(t, databaseID, out.WorkflowID)
}

// A PostgreSQL backup is a verified pg_dump in the backup store; a restore puts exactly its rows
// back (and says how many); a backup whose stored object was corrupted is refused and the data
// stays as it was; bad restore requests change nothing.
func TestAPostgreSQLBackupRestoresItsRowsAndACorruptedOneIsRefused(t *testing.T) {
	t.Parallel()
	owner := newCustomer(t, uniqueName("backups")+"@example.com")
	pg := owner.createDatabase(t, uniqueName("main"), "postgresql")
	dbApp := owner.deployProbeFor(t, pg.ID, "backupapp", "/pg")
	for _, v := range []string{"alpha", "beta", "gamma"} {
		dbApp.put(v)
	}

	backupID, op := owner.backupDatabase(t, pg.ID)
	if op.Status != "succeeded" {
		t.Fatalf("backup: %+v", op)
	}
	var backup databaseBackup
	for _, b := range owner.backups(t, pg.ID) {
		if b.ID == backupID {
			backup = b
		}
	}
	if backup.Status != "completed" || backup.SizeBytes <= 0 || len(backup.SHA256) != 64 {
		t.Fatalf("the backup as listed: %+v", backup)
	}
	stored := filepath.Join(platform.dataDir, "backups", pg.ID, backupID+".dump")
	dump, err := os.ReadFile(stored)
	if err != nil {
		t.Fatalf("the backup store's object: %v", err)
	}
	if int64(len(dump)) != backup.SizeBytes || !bytes.HasPrefix(dump, []byte("PGDMP")) {
		t.Errorf("the stored object: %d bytes starting %q, want %d bytes of a pg_dump custom archive", len(dump), dump[:min(5, len(dump))], backup.SizeBytes)
	}

	// Change and delete the data, then restore: exactly the backed-up rows come back; a second
	// backup whose stored object is corrupted is refused and the data stays as it is.
	restoreThenRefuseACorruptedBackup(t, owner, pg.ID, dbApp, backupID, func(corruptID string) {
		corruptPath := filepath.Join(platform.dataDir, "backups", pg.ID, corruptID+".dump")
		raw, err := os.ReadFile(corruptPath)
		if err != nil {
			t.Fatal(err)
		}
		raw[len(raw)/2] ^= 0xff
		if err := os.WriteFile(corruptPath, raw, 0o600); err != nil {
			t.Fatal(err)
		}
	})

	// Bad restore requests: 4xx naming the field, and nothing queued.
	before := len(owner.databaseOperations(t, pg.ID))
	for _, bad := range []struct {
		token, backupID string
		status          int
	}{
		{owner.token, "6f1c0d1e-0000-4000-8000-000000000000", http.StatusUnprocessableEntity}, // no such backup
		{owner.token, "not-a-uuid", http.StatusUnprocessableEntity},
	} {
		status, raw := platform.call(http.MethodPost, "/api/paas/databases/"+pg.ID+"/restore", bad.token, map[string]string{"backup_id": bad.backupID}, nil)
		if status != bad.status || !strings.Contains(string(raw), "body.backup_id") {
			t.Errorf("restore %q: %d %s, want %d naming body.backup_id", bad.backupID, status, raw, bad.status)
		}
	}
	other := newCustomer(t, uniqueName("stranger")+"@example.com")
	for _, path := range []string{"/restore", "/backup"} {
		if status, raw := platform.call(http.MethodPost, "/api/paas/databases/"+pg.ID+path, other.token, map[string]string{"backup_id": backupID}, nil); status != http.StatusNotFound {
			t.Errorf("another customer's POST %s: %d %s, want 404", path, status, raw)
		}
	}
	if status, _ := platform.call(http.MethodGet, "/api/paas/databases/"+pg.ID+"/backups", other.token, nil, nil); status != http.StatusNotFound {
		t.Errorf("another customer lists the backups: %d, want 404", status)
	}
	if after := len(owner.databaseOperations(t, pg.ID)); after != before {
		t.Errorf("bad restore requests queued operations: %d before, %d after", before, after)
	}

	// A restore asked for while a backup runs waits its turn (queued, not refused).
	var b3 struct {
		WorkflowID string `json:"workflow_id"`
	}
	if status, raw := platform.call(http.MethodPost, "/api/paas/databases/"+pg.ID+"/backup", owner.token, nil, &b3); status != http.StatusAccepted {
		t.Fatalf("third backup: %d %s", status, raw)
	}
	queued := owner.restoreDatabase(t, pg.ID, backupID)
	if queued.Status != "succeeded" {
		t.Errorf("a restore asked for behind a backup: %+v", queued)
	}
	if op := owner.databaseOperationOf(t, pg.ID, b3.WorkflowID); op.Status != "succeeded" {
		t.Errorf("the backup ahead of the restore: %+v", op)
	}
	if got := dbApp.list(); got != "alpha\nbeta\ngamma" {
		t.Errorf("after the queued restore the app reads %q", got)
	}

	// Deleting takes a final backup first: listed and downloadable once the database is gone.
	owner.operation(t, dbApp.app.ID, "delete")
	owner.deleteDatabase(t, pg.ID)
	var final databaseBackup
	for _, b := range owner.backups(t, pg.ID) {
		if b.Kind == "final" {
			final = b
		}
	}
	if final.Status != "completed" || final.SizeBytes <= 0 {
		t.Fatalf("the deleted database's final backup: %+v", final)
	}
	status, body := platform.call(http.MethodGet, "/api/paas/databases/"+pg.ID+"/backups/"+final.ID+"/download", owner.token, nil, nil)
	sum := sha256.Sum256(body)
	if status != http.StatusOK || !bytes.HasPrefix(body, []byte("PGDMP")) || hex.EncodeToString(sum[:]) != final.SHA256 {
		t.Errorf("download of the final backup: %d, %d bytes, sha256 %x; want 200, a pg_dump archive with sha256 %s", status, len(body), sum, final.SHA256)
	}
	if status, _ := platform.call(http.MethodGet, "/api/paas/databases/"+pg.ID+"/backups/"+final.ID+"/download", other.token, nil, nil); status != http.StatusNotFound {
		t.Errorf("another customer downloads the backup: %d, want 404", status)
	}
}

func (c customer) databaseOperations(t testing.TB, databaseID string) []databaseOperation {
	t.Helper()
	var list struct{ Items []databaseOperation }
	if status, raw := platform.call(http.MethodGet, "/api/paas/databases/"+databaseID+"/operations", c.token, nil, &list); status != http.StatusOK {
		t.Fatalf("list database operations: %d %s", status, raw)
	}
	return list.Items
}

// A database's backup schedule (a Temporal Schedule, here every 5 s) takes backups in the
// database's queue on its own, and retention keeps the newest 2: the oldest go, from the list
// and from the store.
func TestScheduledBackupsRunOnTheirScheduleAndRetentionRemovesTheOldest(t *testing.T) {
	t.Parallel()
	owner := newCustomer(t, uniqueName("scheduled")+"@example.com")
	var created struct {
		Database managedDatabase `json:"database"`
	}
	status, raw := platform.call(http.MethodPost, "/api/paas/databases", owner.token, map[string]any{
		"name": uniqueName("sched"), "engine": "redis", "plan": "db-small", "region": "local", "backup_interval": "5s", "backup_retention": 2}, &created)
	if status != http.StatusAccepted {
		t.Fatalf("create with a 5 s schedule: %d %s", status, raw)
	}
	id := created.Database.ID
	// Too short a schedule is refused, naming the field (the stack's minimum is 5 s).
	if status, raw := platform.call(http.MethodPost, "/api/paas/databases", owner.token, map[string]any{
		"name": uniqueName("tooshort"), "engine": "redis", "plan": "db-small", "region": "local", "backup_interval": "1s"}, nil); status != http.StatusUnprocessableEntity ||
		!strings.Contains(string(raw), "body.backup_interval") {
		t.Errorf("a 1 s schedule: %d %s, want 422 naming body.backup_interval", status, raw)
	}

	// Three scheduled backups completed (the schedule ran at least three times), and only the
	// newest two are kept.
	var scheduledOps int
	eventually(t, 3*time.Minute, "three scheduled backups completed", func() (bool, string) {
		scheduledOps = 0
		for _, op := range owner.databaseOperations(t, id) {
			if op.Kind == "backup" && op.Status == "succeeded" {
				scheduledOps++
			}
		}
		return scheduledOps >= 3, fmt.Sprintf("%d succeeded backups", scheduledOps)
	})
	var kept []databaseBackup
	eventually(t, time.Minute, "retention keeps the newest two", func() (bool, string) {
		kept = kept[:0]
		for _, b := range owner.backups(t, id) {
			if b.Status == "completed" {
				kept = append(kept, b)
			}
		}
		return len(kept) == 2, fmt.Sprintf("%d completed backups listed", len(kept))
	})
	entries, err := os.ReadDir(filepath.Join(platform.dataDir, "backups", id))
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".dump") {
			stored++
		}
	}
	// A backup that runs right now may have its object stored already.
	if stored < 2 || stored > 3 {
		t.Errorf("the store holds %d backups of the database, want the 2 kept (3 while one runs)", stored)
	}
	// Deleting the database ends its schedule.
	owner.deleteDatabase(t, id)
	if _, err := platform.temporal.ScheduleClient().GetHandle(context.Background(), "database-backups/"+id).Describe(context.Background()); err == nil {
		t.Error("the deleted database's backup schedule is still there")
	}
}

// A MySQL-compatible (MariaDB) database serves its linked app through DATABASE_URL; a backup,
// a change and a restore bring exactly the backed-up rows back.
func TestAMySQLDatabaseIsLinkedBackedUpAndRestored(t *testing.T) {
	t.Parallel()
	linkedRoundTrip{engine: "mysql", port: 3306, path: "/my", variables: []string{"DATABASE_URL", "MYSQL_HOST"}, unit: "rows"}.run(t)
}

// MongoDB runs here as the local stand-in (FerretDB over PostgreSQL, scripts/base-images.sh);
// the app speaks to it with the MongoDB Go driver through MONGODB_URI alone.
func TestAMongoDBDatabaseIsLinkedBackedUpAndRestored(t *testing.T) {
	t.Parallel()
	linkedRoundTrip{engine: "mongodb", port: 27017, path: "/mongo", variables: []string{"MONGODB_URI", "MONGODB_HOST"}, unit: "documents"}.run(t)
}

// linkedRoundTrip is one engine's whole customer path: provision, link, deploy the dbprobe
// app, write three values through it (its routes under path), back up, change the data,
// restore, and read exactly the backed-up values back through the app.
type linkedRoundTrip struct {
	engine    string
	port      int
	path      string   // the dbprobe routes: path/put, path/list, path/clear
	variables []string // some the link must give
	unit      string   // what the restore's outcome counts
}

func (c linkedRoundTrip) run(t *testing.T) {
	owner := newCustomer(t, uniqueName(c.engine+"owner")+"@example.com")
	d := owner.createDatabase(t, uniqueName("data"), c.engine)
	if d.Engine != c.engine || d.Port != c.port || d.Password == "" {
		t.Fatalf("connection settings: %+v", d)
	}
	name := uniqueName(c.engine + "app")
	app := owner.createApp(t, name, newDBProbeRepo(t, name).URL)
	linked := owner.link(t, app.ID, d.ID, false)
	for _, v := range c.variables {
		if !containsString(linked.Variables, v) {
			t.Fatalf("link: %+v, want %s among the variables", linked, v)
		}
	}
	if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
		t.Fatalf("deploy: %+v", dep)
	}
	host := name + ".apps.localhost"
	for _, v := range []string{"apple", "banana", "cherry"} {
		if status, body := probe(host, c.path+"/put?v="+v); status != http.StatusOK {
			t.Fatalf("write %s: %d %s", v, status, body)
		}
	}
	backupID, op := owner.backupDatabase(t, d.ID)
	if op.Status != "succeeded" {
		t.Fatalf("backup: %+v", op)
	}
	probe(host, c.path+"/clear")
	probe(host, c.path+"/put?v=durian")
	if status, body := probe(host, c.path+"/list"); status != http.StatusOK || body != "durian" {
		t.Fatalf("before the restore the app reads %d %q, want the changed data", status, body)
	}
	want := "holds 3 " + c.unit
	if restored := owner.restoreDatabase(t, d.ID, backupID); restored.Status != "succeeded" || !strings.Contains(restored.Reason, want) {
		t.Fatalf("restore: %+v, want succeeded saying the database %s", restored, want)
	}
	if status, body := probe(host, c.path+"/list"); status != http.StatusOK || body != "apple\nbanana\ncherry" {
		t.Errorf("after the restore the app reads %d %q, want the backed-up values", status, body)
	}
	owner.operation(t, app.ID, "delete")
	owner.deleteDatabase(t, d.ID)
}

// probeApp is the dbprobe app deployed with a database linked: put writes a value through its
// routes under path, list reads the values back.
type probeApp struct {
	t    testing.TB
	app  application
	host string
	path string
}

// deployProbeFor deploys a dbprobe app (named from prefix) linked to the database.
func (c customer) deployProbeFor(t testing.TB, databaseID, prefix, path string) probeApp {
	t.Helper()
	name := uniqueName(prefix)
	app := c.createApp(t, name, newDBProbeRepo(t, name).URL)
	c.link(t, app.ID, databaseID, false)
	if dep := c.deploy(t, app.ID); dep.Status != "succeeded" {
		t.Fatalf("deploy: %+v", dep)
	}
	return probeApp{t: t, app: app, host: name + ".apps.localhost", path: path}
}

func (p probeApp) put(v string) {
	p.t.Helper()
	if status, body := probe(p.host, p.path+"/put?v="+v); status != http.StatusOK {
		p.t.Fatalf("write %s: %d %s", v, status, body)
	}
}

func (p probeApp) list() string {
	p.t.Helper()
	status, body := probe(p.host, p.path+"/list")
	if status != http.StatusOK {
		p.t.Fatalf("read the values: %d %s", status, body)
	}
	return body
}

// restoreThenRefuseACorruptedBackup is the restore half of a PostgreSQL backup test, whatever
// the store: the app's rows (alpha, beta, gamma in backupID) are changed and deleted, and the
// restore of backupID brings exactly them back; then a second backup, whose stored object
// corrupt damages, is refused by restore and the data stays as it was.
func restoreThenRefuseACorruptedBackup(t *testing.T, owner customer, databaseID string, app probeApp, backupID string, corrupt func(backupID string)) {
	t.Helper()
	app.put("delta")
	if status, body := probe(app.host, app.path+"/clear"); status != http.StatusOK {
		t.Fatalf("clear: %d %s", status, body)
	}
	app.put("epsilon")
	restored := owner.restoreDatabase(t, databaseID, backupID)
	if restored.Status != "succeeded" || !strings.Contains(restored.Reason, "holds 3 rows") {
		t.Fatalf("restore: %+v, want succeeded saying the database holds 3 rows", restored)
	}
	if got := app.list(); got != "alpha\nbeta\ngamma" {
		t.Fatalf("after the restore the app reads %q, want the backed-up rows", got)
	}

	app.put("zeta")
	corruptID, op := owner.backupDatabase(t, databaseID)
	if op.Status != "succeeded" {
		t.Fatalf("second backup: %+v", op)
	}
	corrupt(corruptID)
	app.put("eta")
	refused := owner.restoreDatabase(t, databaseID, corruptID)
	if refused.Status != "failed" || !strings.Contains(refused.Reason, "match its checksum") {
		t.Errorf("restore of a corrupted backup: %+v, want failed naming the checksum", refused)
	}
	if got := app.list(); got != "alpha\nbeta\neta\ngamma\nzeta" {
		t.Errorf("after the refused restore the app reads %q, want the data unchanged", got)
	}
}
