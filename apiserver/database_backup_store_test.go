package apiserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/humatest"

	"github.com/skypanel/skypanel/activities/control/backups"
	"github.com/skypanel/skypanel/db"
)

// createDatabaseAPI serves the create-database operation of a server without a database: a
// request that got past the backup store's check would reach the store (nil) and panic, so an
// answer proves nothing was read or stored.
func createDatabaseAPI(t *testing.T, stores *backups.Stores) humatest.TestAPI {
	_, api := humatest.New(t)
	s := &Server{cfg: Config{Backups: stores}}
	huma.Register(api, huma.Operation{OperationID: "create-database", Method: http.MethodPost, Path: "/databases"}, s.createDatabase)
	return api
}

// A platform without an S3 store refuses backup_store s3 with a 422 naming the field, before
// anything is stored; an unknown store is a 422 naming it too.
func TestBackupStoreS3IsRefusedWhenTheS3StoreIsNotConfigured(t *testing.T) {
	api := createDatabaseAPI(t, &backups.Stores{File: backups.FileStore{Dir: t.TempDir()}, Default: db.BackupStoreFile})
	for _, c := range []struct{ store, says string }{
		{"s3", "this platform has no s3 backup store configured"},
		{"tape", "backup_store"},
	} {
		resp := api.Post("/databases", map[string]any{"name": "main", "engine": "postgresql", "plan": "db-small", "backup_store": c.store})
		body := resp.Body.String()
		if resp.Code != http.StatusUnprocessableEntity || !strings.Contains(body, "body.backup_store") || !strings.Contains(body, c.says) {
			t.Errorf("backup_store %q: %d %s, want 422 naming body.backup_store saying %q", c.store, resp.Code, body, c.says)
		}
	}
}

// The store asked for is taken when configured; an omitted one is the platform's default.
func TestBackupStoreDefaultsToThePlatformsAndTakesAConfiguredOne(t *testing.T) {
	s3, err := backups.NewS3Store(backups.S3Config{Endpoint: "http://127.0.0.1:9", Region: "us-east-1", Bucket: "b", AccessKey: "a", SecretKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		stores    *backups.Stores
		asked     string
		want      string
		wantError bool
	}{
		{nil, "", db.BackupStoreFile, false},
		{&backups.Stores{File: backups.FileStore{}, Default: db.BackupStoreFile}, "", db.BackupStoreFile, false},
		{&backups.Stores{File: backups.FileStore{}, S3: s3, Default: db.BackupStoreS3}, "", db.BackupStoreS3, false},
		{&backups.Stores{File: backups.FileStore{}, S3: s3, Default: db.BackupStoreS3}, "file", db.BackupStoreFile, false},
		{&backups.Stores{File: backups.FileStore{}, S3: s3, Default: db.BackupStoreFile}, "s3", db.BackupStoreS3, false},
		{&backups.Stores{File: backups.FileStore{}, Default: db.BackupStoreFile}, "s3", "", true},
		{nil, "s3", "", true},
	} {
		got, err := (&Server{cfg: Config{Backups: c.stores}}).backupStore(c.asked)
		if got != c.want || (err != nil) != c.wantError {
			t.Errorf("stores %+v, asked %q: %q %v, want %q (error: %v)", c.stores, c.asked, got, err, c.want, c.wantError)
		}
	}
}

// The API's transfer routes take only file-store backups: an S3 backup is refused with 409
// (the node reaches S3 itself), so its bytes never land in the control plane's directory.
func TestFileTransfersRefuseAnS3Backup(t *testing.T) {
	dir := t.TempDir()
	s := &Server{cfg: Config{Backups: &backups.Stores{File: backups.FileStore{Dir: dir}, Default: db.BackupStoreFile}}}
	w := httptest.NewRecorder()
	if _, ok := s.fileStoreFor(w, db.Backup{ID: "b", DatabaseID: "d", Store: db.BackupStoreS3}); ok || w.Code != http.StatusConflict ||
		!strings.Contains(w.Body.String(), "kept in the s3 store") {
		t.Errorf("an s3 backup through the file routes: %v %d %s, want 409", ok, w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	if store, ok := s.fileStoreFor(w, db.Backup{ID: "b", DatabaseID: "d", Store: db.BackupStoreFile}); !ok || store == nil {
		t.Errorf("a file backup: %v %d %s", ok, w.Code, w.Body)
	}
}
