package workernode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skypanel/skypanel/temporal/codec"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/activities/node/gitclone"
	"github.com/skypanel/skypanel/activities/node/nginx"
	"github.com/skypanel/skypanel/secrets"
	sptemporal "github.com/skypanel/skypanel/temporal"
	"github.com/skypanel/skypanel/temporal/nodegateway"
)

// nodeProbeWorkflow runs a few harmless node activities on the agent's queue, by name, the way
// the control plane's workflows reach a node.
func nodeProbeWorkflow(ctx workflow.Context, nodeQueue string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              nodeQueue,
		ScheduleToStartTimeout: time.Minute,
		StartToCloseTimeout:    time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	if err := workflow.ExecuteActivity(ctx, "RemoveWorkdir", gitclone.RemoveWorkdirInput{DeploymentID: "dep-x"}).Get(ctx, nil); err != nil {
		return "", err
	}
	if err := workflow.ExecuteActivity(ctx, "RemoveRoute", nginx.RemoveRouteInput{AppID: "app-x"}).Get(ctx, nil); err != nil {
		return "", err
	}
	var removed docker.RemoveInstancesResult
	if err := workflow.ExecuteActivity(ctx, "RemoveInstances", docker.RemoveInstancesInput{AppID: "no-such-app-x"}).Get(ctx, &removed); err != nil {
		return "", err
	}
	// This agent runs without --allow-loopback-git: a loopback clone must be refused.
	err := workflow.ExecuteActivity(ctx, "CloneRepository", gitclone.CloneInput{
		AppID: "app-x", DeploymentID: "dep-x", GitURL: "http://127.0.0.1:9/x.git", Branch: "main", AllowLoopbackHTTP: true,
	}).Get(ctx, nil)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != gitclone.ErrTypeInvalidInput {
		return "", fmt.Errorf("loopback clone: got %v, want an InvalidInput error", err)
	}
	return "ok: " + appErr.Error(), nil
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestAgentRunsNodeActivities runs the whole agent against a Temporal dev server, through a
// real node gateway, and a fake API: it registers (getting its gateway certificate for a key
// of its own), heartbeats, serves nginx and executes activities from a workflow; its
// certificate lives seconds, and it renews it twice and keeps working without a restart; then
// it stops.
func TestAgentRunsNodeActivities(t *testing.T) {
	temporalBin, _ := filepath.Abs("../bin/temporal")
	if _, err := os.Stat(temporalBin); err != nil {
		t.Fatalf("this test needs the Temporal CLI at %s: %v (make deps installs it)", temporalBin, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  temporalBin,
		ClientOptions: &client.Options{Namespace: "default"},
		LogLevel:      "error",
		Stdout:        io.Discard,
		Stderr:        io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()

	api := newFakeAPI(t)
	// The control side encrypts payloads with the platform's keyring; the agent never gets
	// it. It has keys of its own (the fake API's /agent/keys), and the gateway re-seals its
	// tasks and answers between the two.
	keyring, err := secrets.NewKeyring("k1")
	if err != nil {
		t.Fatal(err)
	}
	api.platform = keyring
	api.ca, err = nodegateway.GenerateAuthority(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	api.certLifetime = 6 * time.Second
	gatewayAddr := startGateway(ctx, t, srv.FrontendHostPort(), api)
	dataConverter, failureConverter := codec.EncryptionConverters(keyring)
	control, err := client.Dial(client.Options{HostPort: srv.FrontendHostPort(), DataConverter: dataConverter, FailureConverter: failureConverter})
	if err != nil {
		t.Fatal(err)
	}
	defer control.Close()
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg, err := ParseConfig([]string{
		"--api-url", api.URL, "--data-dir", t.TempDir(), "--gateway-address", gatewayAddr,
		"--nginx-listen", listen, "--nginx-https-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--stop-nginx-on-exit", "--heartbeat-interval", "1s",
	}, envOf(map[string]string{"SKYPANEL_REGISTRATION_TOKEN": "reg-abc"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}

	agentCtx, stopAgent := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Run(agentCtx, cfg) }()
	defer func() {
		stopAgent()
		<-done
	}()

	// The control plane side: a workflow on its own queue calling the node's activities.
	w := worker.New(control, "agent-test-control", worker.Options{})
	w.RegisterWorkflow(nodeProbeWorkflow)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	probe := func(when string) {
		t.Helper()
		run, err := control.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "agent-test-control"}, nodeProbeWorkflow, sptemporal.NodeTaskQueue("node-1"))
		if err != nil {
			t.Fatal(err)
		}
		var result string
		if err := run.Get(ctx, &result); err != nil {
			t.Fatalf("workflow %s: %v", when, err)
		}
		if !strings.Contains(result, "--allow-loopback-git") {
			t.Errorf("result %s: %q", when, result)
		}
	}
	probe("with the registration's certificate")
	for _, name := range []string{"gateway.pem", "gateway-ca.pem"} {
		if st, err := os.Stat(filepath.Join(cfg.DataDir, name)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", name, st, err)
		}
	}
	if regs := api.registrationsSnapshot(); len(regs) != 1 || !strings.HasPrefix(regs[0].CSR, "-----BEGIN CERTIFICATE REQUEST-----") {
		t.Errorf("the registration carried no CSR: %+v", regs)
	}
	// The first certificate expired after 6 s: work still flows through connections that
	// present a renewed one.
	for deadline := time.Now().Add(30 * time.Second); api.renewalCount() < 2; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d renewals within 30 s, want 2", api.renewalCount())
		}
	}
	probe("after two renewals")

	// Registered once, heartbeating with the node token, nginx answering on its port.
	for deadline := time.Now().Add(30 * time.Second); ; {
		regs, beats, _, _ := api.counts()
		if regs == 1 && beats >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("registrations %d heartbeats %d", regs, beats)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Get("http://" + listen + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("nginx answered %d for an unknown host, want 404", resp.StatusCode)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "agent.json")); err != nil {
		t.Error(err)
	}
	// The node ran its tasks with keys of its own, rotated with each certificate renewal;
	// nothing of the platform's key is in its data dir.
	if calls := api.keyCallCount(); calls < 3 {
		t.Errorf("%d calls for the node's keys, want the first and a rotation per renewal", calls)
	}
	_, material, _ := strings.Cut(keyring.Spec(), ":")
	filepath.WalkDir(cfg.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if data, _ := os.ReadFile(path); strings.Contains(string(data), material) {
				t.Errorf("%s holds the platform's key", path)
			}
		}
		return nil
	})

	stopAgent()
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("agent did not stop")
	}
	if _, err := http.Get("http://" + listen + "/"); err == nil {
		t.Error("nginx still answering after the agent stopped with --stop-nginx-on-exit")
	}
}

// startGateway runs a node gateway in front of the frontend, with the fake API's CA and its
// view of the node's certificates, and returns its address.
func startGateway(ctx context.Context, t *testing.T, frontend string, api *fakeAPI) string {
	t.Helper()
	gw, err := nodegateway.New(nodegateway.Options{Frontend: frontend, Namespace: "default", Authority: api.ca, Standings: api,
		PlatformKeyring: api.platform, NodeKeyring: api.nodeKeyring})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- gw.Serve(serveCtx, l) }()
	t.Cleanup(func() {
		stop()
		<-served
		gw.Close() //nolint:errcheck
	})
	return l.Addr().String()
}
