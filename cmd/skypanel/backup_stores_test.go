package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The file store is always there; the S3 store exists when an endpoint or bucket is given,
// then needs every setting, its secret key from SKYPANEL_S3_SECRET_KEY or its file (never a
// flag); the default store must be one there is; errors never quote the secret key.
func TestLoadBackupStores(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "s3.key")
	if err := os.WriteFile(keyFile, []byte("file-secret-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s3 := func(c *controlConfig) {
		c.S3.Endpoint, c.S3.Region, c.S3.Bucket, c.S3.AccessKey = "http://127.0.0.1:7070", "us-east-1", "backups", "access"
	}
	for _, c := range []struct {
		name      string
		env       string
		configure func(*controlConfig)
		says      string // the error, or "" for none
		wantS3    bool
	}{
		{"file only", "", func(c *controlConfig) {}, "", false},
		{"default s3 without s3", "", func(c *controlConfig) { c.DefaultBackupStore = "s3" }, "default-backup-store \"s3\"", false},
		{"unknown default", "", func(c *controlConfig) { c.DefaultBackupStore = "tape" }, "default-backup-store \"tape\"", false},
		{"s3 without a secret", "", s3, "secret key", false},
		{"s3 with the secret in a file", "", func(c *controlConfig) { s3(c); c.S3SecretKeyFile = keyFile }, "", true},
		{"s3 with the secret in the environment", "env-secret-value", func(c *controlConfig) { s3(c); c.DefaultBackupStore = "s3" }, "", true},
		{"s3 without a bucket", "env-secret-value", func(c *controlConfig) { s3(c); c.S3.Bucket = ""; c.S3.Endpoint = "http://127.0.0.1:7070" }, "s3-bucket", false},
		{"s3 with a bad endpoint", "env-secret-value", func(c *controlConfig) { s3(c); c.S3.Endpoint = "127.0.0.1:7070" }, "want http(s)://host[:port]", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(S3SecretKeyEnv, c.env)
			cfg := controlConfig{BackupDir: t.TempDir(), DefaultBackupStore: "file"}
			c.configure(&cfg)
			err := cfg.loadBackupStores()
			if c.says == "" && err != nil || c.says != "" && (err == nil || !strings.Contains(err.Error(), c.says)) {
				t.Fatalf("%v, want error %q", err, c.says)
			}
			if err != nil {
				if strings.Contains(err.Error(), "secret-value") {
					t.Errorf("the error quotes the secret key: %v", err)
				}
				return
			}
			stores := cfg.backupStore()
			if !stores.Has("file") || stores.Has("s3") != c.wantS3 {
				t.Errorf("stores: file %v, s3 %v; want s3 %v", stores.Has("file"), stores.Has("s3"), c.wantS3)
			}
			if c.wantS3 && stores.S3.Config.SecretKey != strings.TrimSpace(map[bool]string{true: c.env, false: "file-secret-value"}[c.env != ""]) {
				t.Errorf("the S3 store's secret key is not the one given")
			}
		})
	}
}
