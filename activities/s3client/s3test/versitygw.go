// Package s3test starts versitygw (bin/versitygw, which make deps builds) on loopback over a
// temporary directory for the unit tests of the S3 backup store, on both sides of the
// platform. Tests only: nothing the platform runs imports it.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/skypanel/skypanel/activities/s3client"
)

// Server is a running versitygw with one bucket.
type Server struct {
	Endpoint, Region, Bucket, AccessKey, SecretKey string
	// Dir is the posix backend's root: the bucket is a directory under it.
	Dir    string
	Client *minio.Client
}

// binary is bin/versitygw of the repository (or SKYPANEL_BIN_DIR's).
func binary(t testing.TB) string {
	if dir := os.Getenv("SKYPANEL_BIN_DIR"); dir != "" {
		return filepath.Join(dir, "versitygw")
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "bin", "versitygw")
}

// Start runs versitygw until the test ends and creates the bucket. A missing binary fails the
// test (make deps builds it); it never skips.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := binary(t)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("this test needs versitygw at %s: %v (make deps builds it)", bin, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	secret := make([]byte, 20)
	rand.Read(secret) //nolint:errcheck // never fails
	s := &Server{Endpoint: "http://127.0.0.1:" + strconv.Itoa(port), Region: "us-east-1", Bucket: "backups",
		AccessKey: "unit-test", SecretKey: hex.EncodeToString(secret), Dir: t.TempDir()}
	cmd := exec.Command(bin, "--port", "127.0.0.1:"+strconv.Itoa(port), "--region", s.Region, "--quiet", "posix", s.Dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+s.AccessKey, "ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // it may have ended
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }() //nolint:errcheck // ended by us
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill() //nolint:errcheck
			<-done
		}
	})
	if s.Client, err = s3client.New(s.Endpoint, s.Region, s.AccessKey, s.SecretKey); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.Client.MakeBucket(context.Background(), s.Bucket, minio.MakeBucketOptions{Region: s.Region})
		if err == nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not create the bucket within 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
