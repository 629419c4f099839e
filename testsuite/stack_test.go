// Package testsuite holds SkyPanel's end-to-end tests. TestMain boots the real platform once
// with `skypanel dev` (its own Postgres cluster, Temporal dev server, API, worker, the node agent
// and its nginx, the machine's Docker Engine) on free loopback ports, and every test drives it
// through the public API, the way a customer would.
package testsuite

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skypanel/skypanel/testsuite/fakegithub"

	"github.com/skypanel/skypanel/temporal/codec"

	dockerclient "github.com/docker/docker/client"
	"github.com/skypanel/skypanel/secrets"
	"go.temporal.io/sdk/client"
)

// stack is the running platform under test.
type stack struct {
	apiURL    string
	uiOrigin  string // the Temporal Web UI's origin, allowed to call the codec endpoint
	nginxAddr string
	// nginxHTTPSAddr is the local node's HTTPS listener (custom domains with a certificate).
	nginxHTTPSAddr string
	temporalAddr   string
	gatewayAddr    string // the node gateway: every agent's only way to Temporal
	adminToken     string
	dataDir        string
	workDir        string // scratch space: repositories, built binaries
	helloBinary    string
	docker         *dockerclient.Client
	temporal       client.Client
	keyring        *secrets.Keyring
	binary         string
	agentBin       string // skypanel-agent, for the nodes the tests add (testsuite/nodes_test.go)
	args           []string
	cmd            *exec.Cmd
	exited         <-chan error
	logPath        string
	nodeID         string
	foreign        *foreignNetworks
	// s3 is versitygw, the platform's S3 backup store (testsuite/s3_store_test.go).
	s3 *s3Server
	// github is the GitHub stand-in the platform is configured with (testsuite/github_test.go).
	github *fakegithub.Server
}

var platform *stack

func TestMain(m *testing.M) {
	os.Exit(runWithStack(m))
}

func runWithStack(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d, err := dockerclient.NewClientWithOpts(dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation())
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: docker client: %v\n", err)
		return 1
	}
	defer d.Close()
	// What an interrupted run left would take this run's addresses and the machine's memory.
	// The platform allocates around whatever stays, so a failure here is worth a line only.
	if err := sweepInterruptedRuns(ctx, d); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: warning: could not remove all that an interrupted run left: %v\n", err)
	}
	if err := startRunRecord(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	engineClean := false
	defer func() {
		if engineClean {
			endRunRecord()
		}
	}()
	// Networks that are not the platform's, in place before it starts, as on a shared engine.
	foreign, err := createForeignNetworks(ctx, strconv.Itoa(os.Getpid()))
	if foreign != nil {
		defer foreign.remove(context.Background(), d)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: could not create the foreign networks: %v\n", err)
		return 1
	}
	s, err := startStack(ctx)
	if s != nil {
		defer s.stop()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: could not start the platform: %v\n", err)
		if s != nil {
			s.dumpLog()
		}
		return 1
	}
	platform = s
	platform.foreign = foreign
	code := m.Run()
	// The suite removes what it made, through the API, and proves it left nothing behind.
	if err := cleanUpAndCheck(foreign); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: clean-up: %v\n", err)
		code = 1
	} else {
		engineClean = true
	}
	if code != 0 {
		s.dumpLog()
	}
	return code
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// binaries returns the skypanel and skypanel-agent binaries: from SKYPANEL_BIN_DIR (the
// Makefile builds them there) or built now.
func binaries(workDir string) (string, string, error) {
	dir := os.Getenv("SKYPANEL_BIN_DIR")
	if dir == "" {
		dir = filepath.Join(workDir, "bin")
		for _, name := range []string{"skypanel", "skypanel-agent"} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), "../cmd/"+name).CombinedOutput()
			if err != nil {
				return "", "", fmt.Errorf("build %s: %v\n%s", name, err, out)
			}
		}
	}
	return filepath.Join(dir, "skypanel"), filepath.Join(dir, "skypanel-agent"), nil
}

func startStack(ctx context.Context) (*stack, error) {
	workDir, err := os.MkdirTemp("", "skypanel-e2e-")
	if err != nil {
		return nil, err
	}
	// The local Postgres cluster runs as the postgres user, which must traverse this folder.
	if err := os.Chmod(workDir, 0o755); err != nil {
		return nil, err
	}
	s := &stack{workDir: workDir, dataDir: filepath.Join(workDir, "data"), logPath: filepath.Join(workDir, "skypanel-dev.log")}
	skypanelBin, agentBin, err := binaries(workDir)
	if err != nil {
		return s, err
	}
	if s.helloBinary, err = buildHelloApp(workDir); err != nil {
		return s, err
	}
	ports := make([]int, 6)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return s, err
		}
	}
	apiPort, temporalPort, uiPort, nginxPort, gatewayPort, nginxHTTPSPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	s.apiURL = fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	s.uiOrigin = fmt.Sprintf("http://127.0.0.1:%d", uiPort)
	s.nginxAddr = fmt.Sprintf("127.0.0.1:%d", nginxPort)
	s.nginxHTTPSAddr = fmt.Sprintf("127.0.0.1:%d", nginxHTTPSPort)
	s.temporalAddr = fmt.Sprintf("127.0.0.1:%d", temporalPort)
	s.gatewayAddr = fmt.Sprintf("127.0.0.1:%d", gatewayPort)

	s.binary, s.agentBin = skypanelBin, agentBin
	s.args = []string{"dev",
		"--data-dir", s.dataDir,
		"--api-addr", fmt.Sprintf("127.0.0.1:%d", apiPort),
		"--temporal-port", strconv.Itoa(temporalPort),
		"--ui-port", strconv.Itoa(uiPort),
		// Taken before Temporal's dev server starts, so it cannot take it meanwhile.
		"--node-gateway-port", strconv.Itoa(gatewayPort),
		"--app-public-port", strconv.Itoa(nginxPort),
		"--nginx-https-port", strconv.Itoa(nginxHTTPSPort),
		// Pebble (skypanel dev runs it) has no rate limits: a failed certificate is retried within
		// seconds, and the schedule looks for work often (adding a domain runs it at once).
		"--acme-retry-base", "3s",
		"--certificate-check-interval", "15s",
		"--agent-bin", agentBin,
		// Small, so the retention of release images is exercised by a few deploys.
		"--keep-release-images", "2",
		// So a database's backup schedule runs within a test.
		"--min-backup-interval", "5s",
		// Short, so an app runs through whole billing periods within a test; benchmarks ask for
		// a production-like one, so billing runs over hundreds of apps every few seconds do not
		// weigh on what they measure.
		"--billing-period", stackBillingPeriod(),
		"--network-pool", e2eNetworkPool,
		// A free port taken when the registry starts (Temporal's dev server takes ports beside
		// its own, so one chosen here beforehand may be gone by then).
		"--registry-port", "0",
	}
	// The S3 backup store beside the filesystem one: versitygw on loopback, over a directory.
	if s.s3, err = startS3Server(ctx, workDir); err != nil {
		return s, err
	}
	s3Args, err := s.s3.platformArgs(workDir)
	if err != nil {
		return s, err
	}
	s.args = append(s.args, s3Args...)
	gh, ghArgs, err := startFakeGitHub(workDir)
	s.github = gh
	if err != nil {
		return s, fmt.Errorf("start the fake GitHub: %w", err)
	}
	s.args = append(s.args, ghArgs...)
	if err := s.launch(ctx); err != nil {
		return s, err
	}
	if s.docker, err = dockerclient.NewClientWithOpts(dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation()); err != nil {
		return s, err
	}
	// Payloads are encrypted with the keyring skypanel dev generated: the tests' client uses it
	// too, to read workflow results.
	if s.keyring, _, err = secrets.LoadKeyring(secrets.KeySource{DevKeyFile: filepath.Join(s.dataDir, "secret.key")}); err != nil {
		return s, fmt.Errorf("load the dev keyring: %w", err)
	}
	dataConverter, failureConverter := codec.EncryptionConverters(s.keyring)
	if s.temporal, err = client.Dial(client.Options{HostPort: s.temporalAddr, DataConverter: dataConverter, FailureConverter: failureConverter}); err != nil {
		return s, fmt.Errorf("dial temporal: %w", err)
	}
	return s, nil
}

// stackBillingPeriod is the stack's billing period: SKYPANEL_E2E_BILLING_PERIOD (make bench
// sets 1h) or the billing tests' short billingPeriod.
func stackBillingPeriod() string {
	if v := os.Getenv("SKYPANEL_E2E_BILLING_PERIOD"); v != "" {
		return v
	}
	return billingPeriod.String()
}

// launch starts `skypanel dev` (appending to its log) and waits until the platform is ready.
func (s *stack) launch(ctx context.Context) error {
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	s.cmd = exec.Command(s.binary, s.args...)
	// The dev defaults: a local database and a keyring generated into the data dir.
	s.cmd.Env = append(os.Environ(), "DATABASE_URL=", secrets.KeyringEnv+"=")
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start skypanel dev: %w", err)
	}
	exited := make(chan error, 1)
	s.exited = exited
	go func(cmd *exec.Cmd) { exited <- cmd.Wait() }(s.cmd)
	return s.waitReady(ctx)
}

// waitReady polls until the admin token exists and the local node is online.
func (s *stack) waitReady(ctx context.Context) error {
	for {
		if raw, err := os.ReadFile(filepath.Join(s.dataDir, "admin.token")); err == nil {
			s.adminToken = strings.TrimSpace(string(raw))
			var nodes struct {
				Items []struct{ ID, Name, Status string }
			}
			if status, _ := s.call(http.MethodGet, "/api/paas/admin/nodes", s.adminToken, nil, &nodes); status == http.StatusOK {
				for _, n := range nodes.Items {
					if n.Name == "local" && n.Status == "online" {
						s.nodeID = n.ID
						return recordRunNode(n.ID)
					}
				}
			}
		}
		select {
		case err := <-s.exited:
			return fmt.Errorf("skypanel dev exited early: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("platform not ready: %w", ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// terminate stops `skypanel dev` as Ctrl-C would and waits for it to exit.
func (s *stack) terminate() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		s.cmd = nil
		return err
	case <-time.After(60 * time.Second):
		_ = s.cmd.Process.Kill()
		return fmt.Errorf("skypanel dev did not stop within 60s of SIGTERM")
	}
}

func (s *stack) dumpLog() {
	raw, err := os.ReadFile(s.logPath)
	if err != nil {
		return
	}
	if len(raw) > 20000 {
		raw = raw[len(raw)-20000:]
	}
	fmt.Fprintf(os.Stderr, "---- skypanel dev output (tail) ----\n%s\n----\n", raw)
}

// stop sends SIGTERM like Ctrl-C and waits for a clean exit, then removes what the apps left.
func (s *stack) stop() {
	if s.temporal != nil {
		s.temporal.Close()
	}
	if err := s.terminate(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
	}
	if s.docker != nil {
		removeLeftovers(s.docker)
	}
	s.s3.stop()
	if s.github != nil {
		s.github.Close()
	}
	_ = os.RemoveAll(s.workDir)
}

// call sends a JSON request with a bearer token and decodes the JSON answer into out.
func (s *stack) call(method, path, token string, in, out any) (int, []byte) {
	var body io.Reader
	if in != nil {
		raw, _ := json.Marshal(in)
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.apiURL+path, body)
	if err != nil {
		return 0, []byte(err.Error())
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		_ = json.Unmarshal(raw, out)
	}
	return resp.StatusCode, raw
}

// nginxClient never follows a redirect: a custom domain's redirect to HTTPS names the domain,
// which must never be looked up or dialled (tests send traffic to this machine only).
var nginxClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// throughNginx fetches http://<host>/ from the node's nginx, as a browser resolving
// <name>.apps.localhost to 127.0.0.1 would.
func (s *stack) throughNginx(host string) (int, string, http.Header) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.nginxAddr+"/", nil)
	req.Host = host
	resp, err := nginxClient.Do(req)
	if err != nil {
		return 0, err.Error(), nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw), resp.Header
}

// eventually polls cond until it holds or the deadline passes (no fixed sleeps).
func eventually(t testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s; last state: %s", what, within, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
