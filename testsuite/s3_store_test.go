package testsuite

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/skypanel/skypanel/activities/s3client"
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
