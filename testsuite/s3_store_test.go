package testsuite

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/skypanel/skypanel/activities/s3client"
	"github.com/skypanel/skypanel/secrets"
)

// s3Server is the S3-compatible server of the run: versitygw (scripts/deps.sh builds it into
// bin/) serving a temporary directory with its posix backend, on loopback. The platform's S3
// backup store is its bucket.
type s3Server struct {
	endpoint  string
	region    string
	bucket    string
	accessKey string
	secretKey string
	dir       string // the posix backend's root: the bucket is a directory under it
	cmd       *exec.Cmd
	client    *minio.Client
}

// versitygwBinary is bin/versitygw, beside the platform's binaries.
func versitygwBinary() string {
	if dir := os.Getenv("SKYPANEL_BIN_DIR"); dir != "" {
		return filepath.Join(dir, "versitygw")
	}
	return filepath.Join("..", "bin", "versitygw")
}

// startS3Server starts versitygw on a free loopback port over a directory of workDir, with
// credentials made for this run, and creates the bucket.
func startS3Server(ctx context.Context, workDir string) (*s3Server, error) {
	bin := versitygwBinary()
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("versitygw: %w (make deps builds it into bin/)", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 20)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	s := &s3Server{endpoint: "http://127.0.0.1:" + strconv.Itoa(port), region: "us-east-1", bucket: "skypanel-backups",
		accessKey: "skypanel-e2e", secretKey: hex.EncodeToString(secret), dir: filepath.Join(workDir, "s3")}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(workDir, "versitygw.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	s.cmd = exec.Command(bin, "--port", "127.0.0.1:"+strconv.Itoa(port), "--region", s.region, "--quiet", "posix", s.dir)
	// The credentials through its environment, not its command line (ps shows that).
	s.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+s.accessKey, "ROOT_SECRET_ACCESS_KEY="+s.secretKey)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	if s.client, err = s3client.New(s.endpoint, s.region, s.accessKey, s.secretKey); err != nil {
		s.stop()
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: s.region})
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("versitygw did not create the bucket within 30s: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// platformArgs are the flags that give the platform this bucket; the secret key goes through
// a file (never a command line).
func (s *s3Server) platformArgs(workDir string) ([]string, error) {
	keyFile := filepath.Join(workDir, "s3-secret.key")
	if err := os.WriteFile(keyFile, []byte(s.secretKey+"\n"), 0o600); err != nil {
		return nil, err
	}
	return []string{"--s3-endpoint", s.endpoint, "--s3-region", s.region, "--s3-bucket", s.bucket,
		"--s3-access-key", s.accessKey, "--s3-secret-key-file", keyFile}, nil
}

// stop ends versitygw and waits for it.
func (s *s3Server) stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }() //nolint:errcheck // ended by us
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

// A PostgreSQL database created with backup_store s3 is backed up by its node straight into
// versitygw's bucket: the object is there with the size and SHA-256 the platform recorded (and
// nothing in the file store), it is downloadable, a restore reads it back and puts exactly its
// rows back; an object corrupted in the bucket is refused by the restore and the data stays;
// the final backup of the deletion goes to the bucket too. An unknown store is a 422.
func TestAnS3BackupRoundTripsThroughVersitygwAndACorruptedObjectIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s3 := platform.s3
	owner := newCustomer(t, uniqueName("s3backups")+"@example.com")

	// An unknown store: 422 naming the field, and no database made.
	status, raw := platform.call(http.MethodPost, "/api/paas/databases", owner.token,
		map[string]string{"name": uniqueName("tape"), "engine": "postgresql", "plan": "db-small", "region": "local", "backup_store": "tape"}, nil)
	if status != http.StatusUnprocessableEntity || !strings.Contains(string(raw), "body.backup_store") {
		t.Errorf("backup_store tape: %d %s, want 422 naming body.backup_store", status, raw)
	}
	if n := len(owner.listDatabases(t)); n != 0 {
		t.Errorf("a refused database was made: the organization has %d", n)
	}

	pg := owner.createDatabaseWith(t, map[string]string{"name": uniqueName("s3main"), "engine": "postgresql", "plan": "db-small",
		"region": "local", "backup_store": "s3"})
	dbApp := owner.deployProbeFor(t, pg.ID, "s3app", "/pg")
	for _, v := range []string{"alpha", "beta", "gamma"} {
		dbApp.put(v)
	}

	backupID, op := owner.backupDatabase(t, pg.ID)
	if op.Status != "succeeded" {
		t.Fatalf("backup: %+v", op)
	}
	backup := owner.backupOf(t, pg.ID, backupID)
	if backup.Status != "completed" || backup.Store != "s3" || backup.SizeBytes <= 0 || len(backup.SHA256) != 64 {
		t.Fatalf("the backup as listed: %+v, want a completed backup in s3", backup)
	}
	key := pg.ID + "/" + backupID + ".dump"
	objects := s3.objects(t, ctx, pg.ID+"/")
	if objects[key] != backup.SizeBytes {
		t.Fatalf("the bucket holds %v under %s/, want %s of %d bytes", objects, pg.ID, key, backup.SizeBytes)
	}
	dump := s3.read(t, ctx, key)
	if sum := sha256.Sum256(dump); hex.EncodeToString(sum[:]) != backup.SHA256 || !bytes.HasPrefix(dump, []byte("PGDMP")) {
		t.Fatalf("the object in the bucket: sha256 %x starting %q, want %s, a pg_dump archive", sum, dump[:min(5, len(dump))], backup.SHA256)
	}
	// On versitygw's disk too (its posix backend: the bucket is a directory).
	if info, err := os.Stat(filepath.Join(s3.dir, s3.bucket, pg.ID, backupID+".dump")); err != nil || info.Size() != backup.SizeBytes {
		t.Errorf("versitygw's directory: %v %v, want a file of %d bytes", info, err, backup.SizeBytes)
	}
	if _, err := os.Stat(filepath.Join(platform.dataDir, "backups", pg.ID, backupID+".dump")); !os.IsNotExist(err) {
		t.Errorf("the file store holds the s3 backup too (%v)", err)
	}
	status, body := platform.call(http.MethodGet, "/api/paas/databases/"+pg.ID+"/backups/"+backupID+"/download", owner.token, nil, nil)
	if sum := sha256.Sum256(body); status != http.StatusOK || hex.EncodeToString(sum[:]) != backup.SHA256 {
		t.Errorf("download: %d, sha256 %x, want 200 with %s", status, sum, backup.SHA256)
	}

	// Only the database's node gets the S3 credentials, the secret key sealed under its own key.
	checkS3CredentialsGoToTheDatabasesNodeOnly(t, pg.ID, backupID)

	// Change and delete the data, then restore from the bucket; a second backup whose object
	// is corrupted in the bucket is refused, the data unchanged.
	restoreThenRefuseACorruptedBackup(t, owner, pg.ID, dbApp, backupID, func(corruptID string) {
		corruptKey := pg.ID + "/" + corruptID + ".dump"
		damaged := s3.read(t, ctx, corruptKey)
		damaged[len(damaged)/2] ^= 0xff
		s3.write(t, ctx, corruptKey, damaged)
	})

	// The deletion's final backup goes to the bucket as well.
	owner.operation(t, dbApp.app.ID, "delete")
	owner.deleteDatabase(t, pg.ID)
	var final databaseBackup
	for _, b := range owner.backups(t, pg.ID) {
		if b.Kind == "final" {
			final = b
		}
	}
	if final.Status != "completed" || final.Store != "s3" {
		t.Fatalf("the final backup: %+v, want completed in s3", final)
	}
	if size := s3.objects(t, ctx, pg.ID+"/")[pg.ID+"/"+final.ID+".dump"]; size != final.SizeBytes {
		t.Errorf("the final backup's object: %d bytes, want %d", size, final.SizeBytes)
	}
}

// checkS3CredentialsGoToTheDatabasesNodeOnly: the node the database runs on learns where the
// backup is, with the secret key sealed under its own key (which opens it; the platform key
// does not); another node gets 403, no token 401; the secret key is in plaintext neither in
// those answers nor in the control-plane database, the workflow histories or the logs.
func checkS3CredentialsGoToTheDatabasesNodeOnly(t *testing.T, databaseID, backupID string) {
	t.Helper()
	secret := platform.s3.secretKey
	path := "/api/paas/agent/databases/" + databaseID + "/backups/" + backupID + "/location"
	_, localToken := localNodeCredentials(t)
	var loc struct {
		Store string `json:"store"`
		S3    struct {
			Endpoint, Bucket, Key string
			AccessKeyID           string `json:"access_key_id"`
			SecretKeySealed       string `json:"secret_key_sealed"`
		} `json:"s3"`
	}
	status, raw := platform.call(http.MethodGet, path, localToken, nil, &loc)
	if status != http.StatusOK || loc.Store != "s3" || loc.S3.Bucket != platform.s3.bucket || loc.S3.Key != databaseID+"/"+backupID+".dump" ||
		loc.S3.AccessKeyID != platform.s3.accessKey || loc.S3.SecretKeySealed == "" {
		t.Fatalf("the database's node asks where the backup is: %d %s", status, raw)
	}
	if strings.Contains(string(raw), secret) {
		t.Fatal("the location answer holds the S3 secret key in plaintext")
	}
	var keys struct {
		Keyring string `json:"keyring"`
	}
	if status, raw := platform.call(http.MethodPost, "/api/paas/agent/keys", localToken, map[string]any{}, &keys); status != http.StatusOK {
		t.Fatalf("the node's keys: %d %s", status, raw)
	}
	nodeRing, err := secrets.ParseKeyring(keys.Keyring)
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := nodeRing.Decrypt(loc.S3.SecretKeySealed, secrets.S3SecretKey()); err != nil || string(plain) != secret {
		t.Errorf("the node's key does not open the sealed S3 secret key: %v", err)
	}
	if _, err := platform.keyring.Decrypt(loc.S3.SecretKeySealed, secrets.S3SecretKey()); err == nil {
		t.Error("the platform key opens what was sealed for the node")
	}
	_, strangerToken := registerBareNode(t, uniqueName("s3stranger"), uniqueName("elsewhere"))
	if status, raw := platform.call(http.MethodGet, path, strangerToken, nil, nil); status != http.StatusForbidden || strings.Contains(string(raw), "secret_key") {
		t.Errorf("a node the database is not placed on: %d %s, want 403", status, raw)
	}
	if status, _ := platform.call(http.MethodGet, path, "", nil, nil); status != http.StatusUnauthorized {
		t.Errorf("without a node token: %d, want 401", status)
	}
	assertNotInPlatformRecords(t, map[string]string{"the S3 secret key": secret})
}

// objects lists the bucket's objects under prefix: key → size.
func (s *s3Server) objects(t testing.TB, ctx context.Context, prefix string) map[string]int64 {
	t.Helper()
	found := map[string]int64{}
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			t.Fatalf("list the bucket: %v", obj.Err)
		}
		found[obj.Key] = obj.Size
	}
	return found
}

// read reads an object of the bucket whole.
func (s *s3Server) read(t testing.TB, ctx context.Context, key string) []byte {
	t.Helper()
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer obj.Close()
	data, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return data
}

// write replaces an object of the bucket.
func (s *s3Server) write(t testing.TB, ctx context.Context, key string, data []byte) {
	t.Helper()
	if _, err := s.client.PutObject(ctx, s.bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// Retention removes the pruned scheduled backups' objects from the bucket: a Redis database
// backed up to S3 every 5 s keeping 1 has had at least three backups, lists one, and the
// bucket holds that one's object (and, at most, the object of a backup running right now).
func TestRetentionRemovesPrunedS3BackupsFromTheBucket(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner := newCustomer(t, uniqueName("s3sched")+"@example.com")
	var created struct {
		Database managedDatabase `json:"database"`
	}
	status, raw := platform.call(http.MethodPost, "/api/paas/databases", owner.token, map[string]any{
		"name": uniqueName("s3sched"), "engine": "redis", "plan": "db-small", "region": "local",
		"backup_interval": "5s", "backup_retention": 1, "backup_store": "s3"}, &created)
	if status != http.StatusAccepted || created.Database.BackupStore != "s3" {
		t.Fatalf("create with a 5 s schedule to s3: %d %s", status, raw)
	}
	id := created.Database.ID
	eventually(t, 3*time.Minute, "three scheduled backups succeeded", func() (bool, string) {
		n := 0
		for _, op := range owner.databaseOperations(t, id) {
			if op.Kind == "backup" && op.Status == "succeeded" {
				n++
			}
		}
		return n >= 3, fmt.Sprintf("%d succeeded backups", n)
	})
	var kept []databaseBackup
	eventually(t, time.Minute, "retention keeps the newest one", func() (bool, string) {
		kept = kept[:0]
		for _, b := range owner.backups(t, id) {
			if b.Status == "completed" {
				kept = append(kept, b)
			}
		}
		return len(kept) == 1, fmt.Sprintf("%d completed backups listed", len(kept))
	})
	objects := platform.s3.objects(t, ctx, id+"/")
	if size, ok := objects[id+"/"+kept[0].ID+".dump"]; !ok || size != kept[0].SizeBytes || kept[0].Store != "s3" {
		t.Errorf("the kept backup %+v: the bucket holds %v", kept[0], objects)
	}
	// A backup that runs right now may have its object stored already.
	if len(objects) < 1 || len(objects) > 2 {
		t.Errorf("the bucket holds %d objects of the database (%v), want the 1 kept (2 while one runs)", len(objects), objects)
	}
	if status, raw := platform.call(http.MethodDelete, "/api/paas/databases/"+id+"?final_backup=false", owner.token, nil, nil); status != http.StatusAccepted {
		t.Fatalf("delete without a final backup: %d %s", status, raw)
	}
	owner.deleteDatabase(t, id)
}
