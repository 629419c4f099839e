package workernode

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/activities/contract"
	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/activities/s3client"
	"github.com/skypanel/skypanel/activities/s3client/s3test"
	"github.com/skypanel/skypanel/secrets"
)

// fakeBackupStore speaks the API's backup transfer endpoints: node-1's token, database db-1
// placed on the node, db-2 elsewhere.
type fakeBackupStore struct {
	*httptest.Server

	mu      sync.Mutex
	objects map[string][]byte
	// readErrs are the errors the server met reading upload bodies.
	readErrs []error
	// firstChunk is closed when the server has read the first bytes of an upload.
	firstChunk chan struct{}
	firstOnce  sync.Once
	// headers are the requests' headers, by method.
	headers map[string]http.Header
	chunked bool
	// answer, when set, replaces the upload's answer.
	answer string
	// status, when set, answers every transfer with it (a problem, or a plain text).
	status int
	// location, when set, is the answer to where a backup is kept.
	location *contract.BackupLocation
}

func newFakeBackupStore(t *testing.T) *fakeBackupStore {
	s := &fakeBackupStore{objects: map[string][]byte{}, headers: map[string]http.Header{}, firstChunk: make(chan struct{})}
	problem := func(w http.ResponseWriter, status int, detail string) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"title": http.StatusText(status), "status": status, "detail": detail})
	}
	authorized := func(w http.ResponseWriter, r *http.Request) bool {
		s.mu.Lock()
		s.headers[r.Method] = r.Header.Clone()
		status := s.status
		s.mu.Unlock()
		switch {
		case status == http.StatusServiceUnavailable:
			http.Error(w, "<html>bad gateway</html>", status)
		case status != 0:
			problem(w, status, "the backup is queued: only a running backup takes an upload")
		case r.Header.Get("Authorization") != "Bearer "+testNodeToken:
			problem(w, http.StatusUnauthorized, "invalid node token")
		case r.PathValue("db") != "db-1":
			problem(w, http.StatusForbidden, "database "+r.PathValue("db")+" is not placed on this node: its backups are not this node's")
		default:
			return true
		}
		return false
	}
	mux := http.NewServeMux()
	// Where a backup is kept: the file store (through the API), unless location says otherwise.
	mux.HandleFunc("GET /api/paas/agent/databases/{db}/backups/{backup}/location", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Authorization") != "Bearer "+testNodeToken:
			problem(w, http.StatusUnauthorized, "invalid node token")
		case r.PathValue("db") != "db-1":
			problem(w, http.StatusForbidden, "database "+r.PathValue("db")+" is not placed on this node: its backups are not this node's")
		default:
			s.mu.Lock()
			loc := s.location
			s.mu.Unlock()
			if loc == nil {
				loc = &contract.BackupLocation{Store: contract.BackupStoreFile}
			}
			json.NewEncoder(w).Encode(loc)
		}
	})
	mux.HandleFunc("PUT /api/paas/agent/databases/{db}/backups/{backup}", func(w http.ResponseWriter, r *http.Request) {
		if !authorized(w, r) {
			return
		}
		var body bytes.Buffer
		buf := make([]byte, 4)
		first := true
		var err error
		for {
			var n int
			n, err = r.Body.Read(buf)
			body.Write(buf[:n])
			if n > 0 && first {
				first = false
				s.firstOnce.Do(func() { close(s.firstChunk) })
			}
			if err != nil {
				break
			}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.chunked = len(r.TransferEncoding) > 0 && r.TransferEncoding[0] == "chunked"
		if err != io.EOF {
			s.readErrs = append(s.readErrs, err)
			problem(w, http.StatusBadRequest, "the upload broke off")
			return
		}
		s.objects[r.PathValue("db")+"/"+r.PathValue("backup")] = body.Bytes()
		if s.answer != "" {
			io.WriteString(w, s.answer)
			return
		}
		sum := sha256.Sum256(body.Bytes())
		json.NewEncoder(w).Encode(map[string]any{"size_bytes": body.Len(), "sha256": hex.EncodeToString(sum[:])})
	})
	mux.HandleFunc("GET /api/paas/agent/databases/{db}/backups/{backup}", func(w http.ResponseWriter, r *http.Request) {
		if !authorized(w, r) {
			return
		}
		s.mu.Lock()
		data, ok := s.objects[r.PathValue("db")+"/"+r.PathValue("backup")]
		s.mu.Unlock()
		if !ok {
			problem(w, http.StatusNotFound, "no such backup of this database")
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(data)
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// locked runs f with the store's lock held.
func (s *fakeBackupStore) locked(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

// A backup goes up streamed (chunked, sent while it is being written) with the node token,
// the store's answer comes back as it is, and the same bytes come down for a restore.
func TestBackupTransferStreamsUpAndDown(t *testing.T) {
	store := newFakeBackupStore(t)
	transfer := backupTransfer{api: NewAPIClient(store.URL, testNodeToken)}
	ctx := context.Background()

	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("first part, "))
		// The rest is written only once the store has read the start: nothing waits for the
		// whole body before sending it.
		select {
		case <-store.firstChunk:
			pw.Write([]byte("second part"))
			pw.Close()
		case <-time.After(5 * time.Second):
			pw.CloseWithError(errors.New("the store read nothing before the end of the body"))
		}
	}()
	size, sum, err := transfer.Upload(ctx, "db-1", "b-1", pr)
	if err != nil {
		t.Fatalf("Upload: %v", err)
	}
	want := []byte("first part, second part")
	wantSum := sha256.Sum256(want)
	if size != int64(len(want)) || sum != hex.EncodeToString(wantSum[:]) {
		t.Errorf("Upload answered %d %s, want %d %x", size, sum, len(want), wantSum)
	}
	store.locked(func() {
		if !store.chunked {
			t.Error("the upload was not chunked")
		}
		if h := store.headers[http.MethodPut]; h.Get("Content-Type") != "application/octet-stream" || h.Get("Authorization") != "Bearer "+testNodeToken {
			t.Errorf("upload headers %v", h)
		}
	})

	rc, err := transfer.Download(ctx, "db-1", "b-1")
	if err != nil {
		t.Fatalf("Download: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("Download: %q %v, want %q", got, err, want)
	}
	store.locked(func() {
		if h := store.headers[http.MethodGet]; h.Get("Authorization") != "Bearer "+testNodeToken {
			t.Errorf("download headers %v", h)
		}
	})
}

// An upload whose body breaks off (the dump failed) reaches the store as a broken request,
// never as a complete object.
func TestBackupUploadThatBreaksOffIsNoObject(t *testing.T) {
	store := newFakeBackupStore(t)
	transfer := backupTransfer{api: NewAPIClient(store.URL, testNodeToken)}
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("partial dump"))
		select {
		case <-store.firstChunk:
		case <-time.After(5 * time.Second):
		}
		pw.CloseWithError(errors.New("the dump command exited with code 3"))
	}()
	if _, _, err := transfer.Upload(context.Background(), "db-1", "b-1", pr); err == nil {
		t.Fatal("an upload that broke off succeeded")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n, objects int
		store.locked(func() { n, objects = len(store.readErrs), len(store.objects) })
		if objects > 0 {
			t.Fatal("the store holds an object of an upload that broke off")
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the store never saw the upload break off")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The store's refusals that asking again would not change are non-retryable BackupUnavailable
// errors with the problem's detail; a server error stays retryable; an answer without a
// checksum is an error.
func TestBackupTransferErrors(t *testing.T) {
	store := newFakeBackupStore(t)
	transfer := backupTransfer{api: NewAPIClient(store.URL, testNodeToken)}
	ctx := context.Background()
	wantRefused := func(t *testing.T, err error, status string, texts ...string) {
		t.Helper()
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != docker.ErrTypeBackupUnavailable || !appErr.NonRetryable() {
			t.Fatalf("%v, want a non-retryable %s", err, docker.ErrTypeBackupUnavailable)
		}
		for _, text := range append(texts, "(HTTP "+status+")") {
			if !strings.Contains(err.Error(), text) {
				t.Errorf("error %q: want %q in it", err, text)
			}
		}
	}

	_, err := transfer.Download(ctx, "db-1", "missing")
	wantRefused(t, err, "404", "the backup store does not hold it", "no such backup of this database")
	_, err = transfer.Download(ctx, "db-2", "b-1")
	wantRefused(t, err, "403", "the control plane refused it to this node", "database db-2 is not placed on this node")
	_, _, err = transfer.Upload(ctx, "db-2", "b-1", strings.NewReader("dump"))
	wantRefused(t, err, "403", "the control plane refused the upload", "database db-2 is not placed on this node")
	_, _, err = backupTransfer{api: NewAPIClient(store.URL, "wrong")}.Upload(ctx, "db-1", "b-1", strings.NewReader("dump"))
	wantRefused(t, err, "401", "invalid node token")

	store.locked(func() { store.status = http.StatusConflict })
	_, _, err = transfer.Upload(ctx, "db-1", "b-1", strings.NewReader("dump"))
	wantRefused(t, err, "409", "only a running backup takes an upload")

	store.locked(func() { store.status = http.StatusServiceUnavailable })
	_, err = transfer.Download(ctx, "db-1", "b-1")
	var appErr *temporal.ApplicationError
	var se *StatusError
	if errors.As(err, &appErr) || !errors.As(err, &se) || se.Status != 503 || !strings.Contains(err.Error(), "GET /api/paas/agent/databases/db-1/backups/b-1: HTTP 503") {
		t.Errorf("%v, want a retryable HTTP 503 naming the request", err)
	}

	store.locked(func() { store.status, store.answer = 0, `{"size_bytes": 4}` })
	if _, _, err := transfer.Upload(ctx, "db-1", "b-1", strings.NewReader("dump")); err == nil || !strings.Contains(err.Error(), "without its size or SHA-256") {
		t.Errorf("an answer without a checksum: %v", err)
	}
}

// The backups directory is root's alone, and what a restore left when the agent stopped goes
// at the next start.
func TestPrepareBackupsDir(t *testing.T) {
	cfg := Config{DataDir: t.TempDir()}
	dir := filepath.Join(cfg.DataDir, "backups")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "restore-123.dump"), []byte("left"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := prepareBackupsDir(cfg); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 || backupsDir(cfg) != dir {
		t.Fatalf("backups dir %s: %v %v", backupsDir(cfg), st.Mode(), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("left in the backups dir: %v", entries)
	}
}

// ringOpener opens values sealed under one keyring, as nodeSecrets does with the node's keys.
type ringOpener struct{ ring *secrets.Keyring }

func (o ringOpener) Open(_ context.Context, sealed string, label []byte) ([]byte, error) {
	return o.ring.Decrypt(sealed, label)
}

// A backup the API says is kept in S3 goes straight to the bucket (a real S3 server,
// versitygw) with the credentials sealed for the node, streamed in parts (bigger than one
// part), and comes back byte for byte for a restore; nothing goes through the API's transfer
// routes. A key sealed for another purpose does not open, and an object missing from the bucket
// is a non-retryable BackupUnavailable.
func TestBackupTransferStreamsToAndFromS3WithTheSealedKey(t *testing.T) {
	srv := s3test.Start(t)
	ring, err := secrets.NewKeyring("node-key")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := ring.Encrypt([]byte(srv.SecretKey), secrets.S3SecretKey())
	if err != nil {
		t.Fatal(err)
	}
	store := newFakeBackupStore(t)
	loc := &contract.BackupLocation{Store: contract.BackupStoreS3, S3: &contract.S3Location{Endpoint: srv.Endpoint, Region: srv.Region,
		Bucket: srv.Bucket, Key: "db-1/b-1.dump", AccessKeyID: srv.AccessKey, SecretKeySealed: sealed}}
	store.locked(func() { store.location = loc })
	transfer := backupTransfer{api: NewAPIClient(store.URL, testNodeToken), secrets: ringOpener{ring}}
	ctx := context.Background()

	data := bytes.Repeat([]byte("0123456789abcdef"), (s3client.PartSize+(1<<20))/16)
	size, sum, err := transfer.Upload(ctx, "db-1", "b-1", bytes.NewReader(data))
	want := sha256.Sum256(data)
	if err != nil || size != int64(len(data)) || sum != hex.EncodeToString(want[:]) {
		t.Fatalf("Upload: %d %s %v, want %d %x", size, sum, err, len(data), want)
	}
	info, err := os.Stat(filepath.Join(srv.Dir, srv.Bucket, "db-1", "b-1.dump"))
	if err != nil || info.Size() != int64(len(data)) {
		t.Fatalf("the object on versitygw's disk: %v %v", info, err)
	}
	rc, err := transfer.Download(ctx, "db-1", "b-1")
	if err != nil {
		t.Fatalf("Download: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Download: %d bytes %v, want the %d uploaded", len(got), err, len(data))
	}
	store.locked(func() {
		if len(store.objects) != 0 || store.headers[http.MethodPut] != nil {
			t.Errorf("the API's transfer routes were used for an S3 backup: %d objects", len(store.objects))
		}
	})

	// A missing object: non-retryable.
	missing := *loc.S3
	missing.Key = "db-1/gone.dump"
	store.locked(func() { store.location = &contract.BackupLocation{Store: contract.BackupStoreS3, S3: &missing} })
	_, err = transfer.Download(ctx, "db-1", "gone")
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != docker.ErrTypeBackupUnavailable || !appErr.NonRetryable() {
		t.Errorf("download of a missing object: %v, want a non-retryable %s", err, docker.ErrTypeBackupUnavailable)
	}

	// A value sealed under another label (another secret copied in) does not open.
	wrong, err := ring.Encrypt([]byte(srv.SecretKey), secrets.DatabasePassword("db-1"))
	if err != nil {
		t.Fatal(err)
	}
	tampered := *loc.S3
	tampered.SecretKeySealed = wrong
	store.locked(func() { store.location = &contract.BackupLocation{Store: contract.BackupStoreS3, S3: &tampered} })
	_, _, err = transfer.Upload(ctx, "db-1", "b-2", strings.NewReader("dump"))
	if !errors.As(err, &appErr) || appErr.Type() != docker.ErrTypeSecretUnavailable || strings.Contains(err.Error(), srv.SecretKey) {
		t.Errorf("upload with a key sealed for something else: %v, want a %s that does not quote the key", err, docker.ErrTypeSecretUnavailable)
	}
}

// An upload to S3 whose body breaks off (the dump failed) leaves no object in the bucket.
func TestBackupUploadToS3ThatBreaksOffIsNoObject(t *testing.T) {
	srv := s3test.Start(t)
	ring, err := secrets.NewKeyring("node-key")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := ring.Encrypt([]byte(srv.SecretKey), secrets.S3SecretKey())
	if err != nil {
		t.Fatal(err)
	}
	store := newFakeBackupStore(t)
	store.locked(func() {
		store.location = &contract.BackupLocation{Store: contract.BackupStoreS3, S3: &contract.S3Location{Endpoint: srv.Endpoint, Region: srv.Region,
			Bucket: srv.Bucket, Key: "db-1/b-1.dump", AccessKeyID: srv.AccessKey, SecretKeySealed: sealed}}
	})
	transfer := backupTransfer{api: NewAPIClient(store.URL, testNodeToken), secrets: ringOpener{ring}}
	for _, size := range []int{1 << 10, s3client.PartSize + (1 << 20)} {
		pr, pw := io.Pipe()
		go func() {
			pw.Write(bytes.Repeat([]byte("x"), size))
			pw.CloseWithError(errors.New("the dump command exited with code 3"))
		}()
		if _, _, err := transfer.Upload(context.Background(), "db-1", "b-1", pr); err == nil {
			t.Fatalf("an upload of %d bytes that broke off succeeded", size)
		}
		if _, err := srv.Client.StatObject(context.Background(), srv.Bucket, "db-1/b-1.dump", minio.StatObjectOptions{}); err == nil {
			t.Fatalf("the bucket holds an object of an upload (%d bytes) that broke off", size)
		}
	}
}
