package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/skypanel/skypanel/activities/node/buildlog"
	"github.com/skypanel/skypanel/cmd/skypanel/devharness/registry"
	"github.com/skypanel/skypanel/secrets"
)

type memSink struct {
	mu     sync.Mutex
	chunks []buildlog.Chunk
}

func (s *memSink) Append(_ context.Context, c buildlog.Chunk) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chunks = append(s.chunks, c)
	return nil
}

func (s *memSink) text(source string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	last := 0
	for _, c := range s.chunks {
		if c.Source != source {
			continue
		}
		if c.Seq <= last {
			b.WriteString(fmt.Sprintf("<<seq %d after %d>>", c.Seq, last))
		}
		last = c.Seq
		b.WriteString(c.Text)
	}
	return b.String()
}

// helloServer answers every request with "hello from <release>" on $PORT; MODE=crash makes it
// print "boom" and exit 3, MODE=deaf makes it run without listening. /write?path=P writes the
// file P and answers "wrote P" or the error (500); /home answers $HOME.
const helloServer = `package main

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

func write(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Query().Get("path")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	fmt.Fprintf(w, "wrote %s", p)
}

func main() {
	switch os.Getenv("MODE") {
	case "crash":
		fmt.Fprintln(os.Stderr, "boom")
		os.Exit(3)
	case "deaf":
		fmt.Println("not listening")
		time.Sleep(time.Hour)
	}
	fmt.Println("listening on", os.Getenv("PORT"))
	http.ListenAndServe(":"+os.Getenv("PORT"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/write":
			write(w, r)
		case "/home":
			fmt.Fprint(w, os.Getenv("HOME"))
		default:
			fmt.Fprintf(w, "hello from %s uid=%d", os.Getenv("RELEASE"), os.Getuid())
		}
	}))
}
`

var (
	helloOnce sync.Once
	helloBin  string
	helloErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if helloBin != "" {
		os.RemoveAll(filepath.Dir(helloBin))
	}
	os.Exit(code)
}

// buildHello compiles the static test server once per test binary.
func buildHello(t *testing.T) string {
	t.Helper()
	helloOnce.Do(func() {
		dir, err := os.MkdirTemp("", "skypanel-hello-")
		if err != nil {
			helloErr = err
			return
		}
		helloBin = filepath.Join(dir, "hello") // set early so TestMain removes dir
		os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n\ngo 1.21\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "main.go"), []byte(helloServer), 0o644)
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		cmd := exec.Command(goBin, "build", "-o", "hello", ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-buildvcs=false")
		if out, err := cmd.CombinedOutput(); err != nil {
			helloErr = fmt.Errorf("build hello: %v\n%s", err, out)
		}
	})
	if helloErr != nil {
		t.Fatal(helloErr)
	}
	return helloBin
}

// fixture is one test's app: unique ids, a client, and cleanup of everything labelled with it.
type fixture struct {
	a     *Activities
	ring  *secrets.Keyring // the node's key the values are sealed under
	sink  *memSink
	appID string
	orgID string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	c, err := NewClient()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("docker engine not reachable: %v", err)
	}
	suffix := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano()%1_000_000_000)
	f := &fixture{sink: &memSink{}, appID: "test-app-" + suffix, orgID: "test-org-" + suffix}
	f.ring = testKeyring(t)
	f.a = &Activities{Client: c, Logs: f.sink, NodeID: "test-node", Secrets: ringSecrets{f.ring}}
	t.Cleanup(func() {
		byApp := filters.NewArgs(filters.Arg("label", LabelApp+"="+f.appID))
		list, _ := c.ContainerList(ctx, container.ListOptions{All: true, Filters: byApp})
		for _, ctr := range list {
			c.ContainerRemove(ctx, ctr.ID, container.RemoveOptions{Force: true})
		}
		images, _ := c.ImageList(ctx, image.ListOptions{Filters: byApp})
		for _, img := range images {
			c.ImageRemove(ctx, img.ID, image.RemoveOptions{Force: true, PruneChildren: true})
		}
		c.NetworkRemove(ctx, OrgNetworkName(f.orgID))
		c.Close()
	})
	return f
}

func (f *fixture) run(t *testing.T, fn any, in any, out any) error {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(f.a)
	val, err := env.ExecuteActivity(fn, in)
	if err != nil {
		return err
	}
	if out != nil {
		if err := val.Get(out); err != nil {
			t.Fatal(err)
		}
	}
	return nil
}

// contextDir writes a build context holding the hello binary, busybox and dockerfile.
func contextDir(t *testing.T, dockerfile string) string {
	t.Helper()
	dir := t.TempDir()
	copyFile(t, buildHello(t), filepath.Join(dir, "hello"))
	if dockerfile != "" {
		os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644)
	}
	os.MkdirAll(filepath.Join(dir, ".git"), 0o755)
	os.WriteFile(filepath.Join(dir, ".git", "HEAD"), []byte("ref: refs/heads/main\n"), 0o644)
	return dir
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
}

func wantAppError(t *testing.T, err error, errType, msg string) {
	t.Helper()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		t.Fatalf("error %v: want an application error of type %s", err, errType)
	}
	if appErr.Type() != errType || !appErr.NonRetryable() {
		t.Fatalf("error type %q non-retryable %v (%v): want %s, non-retryable", appErr.Type(), appErr.NonRetryable(), err, errType)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Fatalf("error %q: want it to contain %q", err, msg)
	}
}

const helloDockerfile = "FROM scratch\nCOPY hello /hello\nENTRYPOINT [\"/hello\"]\n"

func (f *fixture) buildHelloImage(t *testing.T) string {
	t.Helper()
	tag := "skypanel-test/" + f.appID + ":r1"
	var res BuildImageResult
	err := f.run(t, f.a.BuildImage, BuildImageInput{AppID: f.appID, OrgID: f.orgID, DeploymentID: "dep-1", ContextDir: contextDir(t, helloDockerfile), ImageTag: tag, ReleaseID: "r1"}, &res)
	if err != nil {
		t.Fatalf("BuildImage: %v\nlog:\n%s", err, f.sink.text("build"))
	}
	if !strings.HasPrefix(res.ImageID, "sha256:") {
		t.Fatalf("image id %q", res.ImageID)
	}
	return tag
}

// start starts instance name of image tag with the plain environment; each of with changes the
// input first.
func (f *fixture) start(t *testing.T, tag, name string, plain map[string]string, with ...func(*StartInstanceInput)) (StartInstanceResult, error) {
	t.Helper()
	env := sealVars(t, f.ring, f.appID, plain)
	var net EnsureNetworkResult
	if err := f.run(t, f.a.EnsureNetwork, EnsureNetworkInput{OrgID: f.orgID}, &net); err != nil {
		t.Fatalf("EnsureNetwork: %v", err)
	}
	in := StartInstanceInput{
		AppID: f.appID, OrgID: f.orgID, ReleaseID: "r1", InstanceName: name, Image: tag, Network: net.Network,
		CPUMillis: 500, MemoryMB: 64, Port: 8000, Env: env, DeploymentID: "dep-1",
	}
	for _, change := range with {
		change(&in)
	}
	var res StartInstanceResult
	err := f.run(t, f.a.StartInstance, in, &res)
	return res, err
}

func TestBuildStartWaitRemove(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tag := f.buildHelloImage(t)
	buildLog := f.sink.text("build")
	if !strings.Contains(buildLog, "COPY hello /hello") || strings.Contains(buildLog, "<<seq") {
		t.Errorf("build log lacks the build's steps or is out of order:\n%s", buildLog)
	}
	img, err := f.a.Client.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if l := img.Config.Labels; l[LabelManaged] != "true" || l[LabelApp] != f.appID || l[LabelRelease] != "r1" {
		t.Errorf("image labels %v", l)
	}

	// The network is idempotent.
	var n1, n2 EnsureNetworkResult
	if err := f.run(t, f.a.EnsureNetwork, EnsureNetworkInput{OrgID: f.orgID}, &n1); err != nil {
		t.Fatal(err)
	}
	if err := f.run(t, f.a.EnsureNetwork, EnsureNetworkInput{OrgID: f.orgID}, &n2); err != nil {
		t.Fatal(err)
	}
	if n1.Network != OrgNetworkName(f.orgID) || n2 != n1 {
		t.Fatalf("networks %v %v", n1, n2)
	}

	name := f.appID + "-web-1"
	res, err := f.start(t, tag, name, map[string]string{"RELEASE": "r1", "PORT": "1"})
	if err != nil {
		t.Fatalf("StartInstance: %v", err)
	}
	again, err := f.start(t, tag, name, map[string]string{"RELEASE": "r1"})
	if err != nil {
		t.Fatalf("second StartInstance: %v", err)
	}
	if again.ContainerID != res.ContainerID || again.HostPort != res.HostPort {
		t.Errorf("second start made a new container: %+v then %+v", res, again)
	}

	info, err := f.a.Client.ContainerInspect(ctx, res.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	checkHardening(t, info, n1.Network, res.HostPort)
	if l := info.Config.Labels; l[LabelApp] != f.appID || l[LabelOrg] != f.orgID || l[LabelRelease] != "r1" || l[LabelNode] != "test-node" || l[LabelManaged] != "true" {
		t.Errorf("container labels %v", l)
	}

	if info.HostConfig.RestartPolicy.Name != container.RestartPolicyDisabled {
		t.Errorf("restart policy before ready: %v", info.HostConfig.RestartPolicy)
	}
	if err := f.run(t, f.a.WaitReady, WaitReadyInput{InstanceName: name, HostPort: res.HostPort, Timeout: 30 * time.Second}, nil); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	if ready, err := f.a.Client.ContainerInspect(ctx, res.ContainerID); err != nil || ready.HostConfig.RestartPolicy.Name != container.RestartPolicyUnlessStopped {
		t.Errorf("restart policy once ready: %v %v", ready.HostConfig.RestartPolicy, err)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", res.HostPort))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello from r1 uid=1000" {
		t.Errorf("body %q", body)
	}

	// Keep spares the named instance; a second call with no Keep removes it.
	var removed RemoveInstancesResult
	if err := f.run(t, f.a.RemoveInstances, RemoveInstancesInput{AppID: f.appID, Keep: []string{name}}, &removed); err != nil {
		t.Fatal(err)
	}
	if len(removed.Removed) != 0 {
		t.Errorf("removed %v despite Keep", removed.Removed)
	}
	if err := f.run(t, f.a.RemoveInstances, RemoveInstancesInput{AppID: f.appID, GracePeriod: time.Second}, &removed); err != nil {
		t.Fatal(err)
	}
	if len(removed.Removed) != 1 || removed.Removed[0] != name {
		t.Errorf("removed %v, want [%s]", removed.Removed, name)
	}
	if _, err := f.a.Client.ContainerInspect(ctx, name); !errdefs.IsNotFound(err) {
		t.Errorf("container still there: %v", err)
	}
	if err := f.run(t, f.a.RemoveInstances, RemoveInstancesInput{AppID: f.appID}, &removed); err != nil || len(removed.Removed) != 0 {
		t.Errorf("second RemoveInstances: %v %v", removed.Removed, err)
	}

	if err := f.run(t, f.a.RemoveAppImages, RemoveAppImagesInput{AppID: f.appID}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Client.ImageInspect(ctx, tag); !errdefs.IsNotFound(err) {
		t.Errorf("image still there: %v", err)
	}
}

func checkHardening(t *testing.T, info container.InspectResponse, network string, hostPort int) {
	t.Helper()
	hc := info.HostConfig
	if info.Config.User != "1000:1000" {
		t.Errorf("user %q", info.Config.User)
	}
	if fmt.Sprint(hc.CapDrop) != "[ALL]" {
		t.Errorf("cap drop %v", hc.CapDrop)
	}
	capAdd := append([]string(nil), hc.CapAdd...)
	for i := range capAdd {
		capAdd[i] = strings.TrimPrefix(capAdd[i], "CAP_")
	}
	sort.Strings(capAdd)
	if fmt.Sprint(capAdd) != "[CHOWN NET_BIND_SERVICE SETGID SETUID]" {
		t.Errorf("cap add %v", hc.CapAdd)
	}
	if fmt.Sprint(hc.SecurityOpt) != "[no-new-privileges]" {
		t.Errorf("security opt %v", hc.SecurityOpt)
	}
	if hc.PidsLimit == nil || *hc.PidsLimit != 512 {
		t.Errorf("pids limit %v", hc.PidsLimit)
	}
	if hc.Memory != 64<<20 || hc.MemorySwap != 64<<20 {
		t.Errorf("memory %d swap %d", hc.Memory, hc.MemorySwap)
	}
	if hc.NanoCPUs != 500_000_000 {
		t.Errorf("nano cpus %d", hc.NanoCPUs)
	}
	if len(hc.Ulimits) != 1 || hc.Ulimits[0].Name != "nofile" || hc.Ulimits[0].Soft != instanceOpenFiles() || hc.Ulimits[0].Hard > InstanceOpenFiles {
		t.Errorf("ulimits %v, want nofile %d", hc.Ulimits, instanceOpenFiles())
	}
	if opts := hc.Tmpfs["/tmp"]; !strings.Contains(opts, "size=32m") || !strings.Contains(opts, "nosuid") {
		t.Errorf("/tmp mount %q, want a bounded tmpfs (half of 64 MiB)", opts)
	}
	if hc.LogConfig.Type != "json-file" || hc.LogConfig.Config["max-size"] == "" || hc.LogConfig.Config["max-file"] == "" {
		t.Errorf("log config %v", hc.LogConfig)
	}
	if string(hc.NetworkMode) != network {
		t.Errorf("network mode %q, want %q", hc.NetworkMode, network)
	}
	if _, ok := info.NetworkSettings.Networks[network]; !ok {
		t.Errorf("not attached to %s: %v", network, info.NetworkSettings.Networks)
	}
	if hc.Init == nil || !*hc.Init {
		t.Errorf("no init process: an app without a SIGTERM handler would only stop when killed")
	}
	if hc.Privileged || len(hc.Binds) > 0 || len(hc.Mounts) > 0 {
		t.Errorf("privileged %v binds %v mounts %v", hc.Privileged, hc.Binds, hc.Mounts)
	}
	bindings := hc.PortBindings["8000/tcp"]
	if len(bindings) != 1 || bindings[0].HostIP != "127.0.0.1" || bindings[0].HostPort != "" {
		t.Errorf("port bindings %v: want 127.0.0.1 with an ephemeral port", hc.PortBindings)
	}
	for port, published := range info.NetworkSettings.Ports {
		for _, b := range published {
			if b.HostIP != "127.0.0.1" {
				t.Errorf("%s published on %s", port, b.HostIP)
			}
		}
	}
	if hostPort <= 0 {
		t.Errorf("host port %d", hostPort)
	}
	env := strings.Join(info.Config.Env, " ")
	if !strings.Contains(env, "PORT=8000") || strings.Contains(env, "PORT=1 ") || strings.HasSuffix(env, "PORT=1") {
		t.Errorf("env %v: want PORT=8000 only", info.Config.Env)
	}
}

// TestReadOnlyRootLeavesOnlyTmpAndTheWritablePaths: an instance of a read-only runtime cannot
// write its root, and can write /tmp, each of its runtime's writable paths and its HOME; the
// same image under a runtime that did not build it runs writable.
func TestReadOnlyRootLeavesOnlyTmpAndTheWritablePaths(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tag := f.buildHelloImage(t)
	img, err := f.a.Client.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if builtBy, ok := img.Config.Labels[LabelBuildpack]; !ok || builtBy != "" {
		t.Fatalf("an image built from a Dockerfile has %s=%q (set: %v), want it set and empty", LabelBuildpack, builtBy, ok)
	}

	readOnly := func(in *StartInstanceInput) {
		in.RuntimeKind = "dockerfile"
		in.RootFS = RootFS{ReadOnly: true, Writable: []string{"/var/cache/app"}}
	}
	ro := f.startReady(t, tag, f.appID+"-ro", readOnly)
	info, err := f.a.Client.ContainerInspect(ctx, ro.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	if !info.HostConfig.ReadonlyRootfs {
		t.Error("the instance's root filesystem is writable")
	}
	if opts := info.HostConfig.Tmpfs["/var/cache/app"]; !strings.Contains(opts, "size=32m") || !strings.Contains(opts, "nosuid") {
		t.Errorf("/var/cache/app mount %q, want a bounded tmpfs like /tmp", opts)
	}
	if status, body := get(t, ro.HostPort, "/write?path=/planted"); status != http.StatusInternalServerError || !strings.Contains(body, "read-only file system") {
		t.Errorf("writing to / answered %d %q, want a read-only file system error", status, body)
	}
	for _, p := range []string{"/tmp/scratch", "/var/cache/app/cached"} {
		if status, body := get(t, ro.HostPort, "/write?path="+p); status != http.StatusOK {
			t.Errorf("writing %s answered %d %q", p, status, body)
		}
	}
	if _, home := get(t, ro.HostPort, "/home"); home != "/tmp" {
		t.Errorf("HOME is %q, want /tmp", home)
	}

	// The same image started for a node app (a runtime change not deployed yet): writable.
	moved := f.startReady(t, tag, f.appID+"-rw", func(in *StartInstanceInput) {
		readOnly(in)
		in.RuntimeKind = "node"
	})
	if info, err := f.a.Client.ContainerInspect(ctx, moved.ContainerID); err != nil || info.HostConfig.ReadonlyRootfs || len(info.HostConfig.Tmpfs) != 1 {
		t.Errorf("an image another runtime built: read-only %v, tmpfs %v (%v)", info.HostConfig.ReadonlyRootfs, info.HostConfig.Tmpfs, err)
	}
	if status, body := get(t, moved.HostPort, "/write?path=/planted"); strings.Contains(body, "read-only file system") {
		t.Errorf("writing to / of a writable root answered %d %q", status, body)
	}
	if _, home := get(t, moved.HostPort, "/home"); home == "/tmp" {
		t.Error("HOME moved to /tmp on a writable root")
	}
}

// startReady starts an instance and waits until it answers.
func (f *fixture) startReady(t *testing.T, tag, name string, with ...func(*StartInstanceInput)) StartInstanceResult {
	t.Helper()
	res, err := f.start(t, tag, name, map[string]string{"RELEASE": "r1"}, with...)
	if err != nil {
		t.Fatalf("StartInstance %s: %v", name, err)
	}
	if err := f.run(t, f.a.WaitReady, WaitReadyInput{InstanceName: name, HostPort: res.HostPort, Timeout: 30 * time.Second}, nil); err != nil {
		t.Fatalf("WaitReady %s: %v", name, err)
	}
	return res
}

// get answers the status and body of GET path on the instance's loopback port.
func get(t *testing.T, hostPort int, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", hostPort, path))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

func TestInstanceExited(t *testing.T) {
	f := newFixture(t)
	tag := f.buildHelloImage(t)
	name := f.appID + "-web-1"
	res, err := f.start(t, tag, name, map[string]string{"MODE": "crash"})
	if err == nil {
		err = f.run(t, f.a.WaitReady, WaitReadyInput{InstanceName: name, HostPort: res.HostPort, Timeout: time.Minute, DeploymentID: "dep-1"}, nil)
	}
	wantAppError(t, err, ErrTypeInstanceExited, "exited with code 3")
	startLog := f.sink.text("start")
	if !strings.Contains(startLog, "boom") || !strings.Contains(startLog, "exited with code 3") {
		t.Errorf("start log lacks the app's output:\n%s", startLog)
	}
}

func TestInstanceNotReady(t *testing.T) {
	f := newFixture(t)
	tag := f.buildHelloImage(t)
	name := f.appID + "-web-1"
	res, err := f.start(t, tag, name, map[string]string{"MODE": "deaf"})
	if err != nil {
		t.Fatalf("StartInstance: %v", err)
	}
	err = f.run(t, f.a.WaitReady, WaitReadyInput{InstanceName: name, HostPort: res.HostPort, Timeout: time.Second, DeploymentID: "dep-1"}, nil)
	wantAppError(t, err, ErrTypeInstanceNotReady, "must listen on 0.0.0.0 at the port given in $PORT (8000)")
	if log := f.sink.text("start"); !strings.Contains(log, "not listening") {
		t.Errorf("start log lacks the app's output:\n%s", log)
	}
}

func TestBuildFailures(t *testing.T) {
	f := newFixture(t)

	// A base image with a shell, labelled with the test's app so cleanup removes it. Each failing
	// Dockerfile fails at its first step after FROM, so no intermediate image is left behind.
	baseDir := t.TempDir()
	copyFile(t, "/bin/busybox", filepath.Join(baseDir, "busybox"))
	os.WriteFile(filepath.Join(baseDir, "Dockerfile"), []byte("FROM scratch\nCOPY busybox /bin/busybox\n"), 0o644)
	base := "skypanel-test/" + f.appID + ":base"
	if err := f.run(t, f.a.BuildImage, BuildImageInput{AppID: f.appID, OrgID: f.orgID, DeploymentID: "dep-0", ContextDir: baseDir, ImageTag: base}, nil); err != nil {
		t.Fatalf("build base image: %v", err)
	}

	tests := []struct {
		name       string
		dockerfile string
		want       string
	}{
		{"missing file", "FROM scratch\nCOPY missing.txt /x\n", "missing.txt"},
		{"failing RUN", "FROM " + base + "\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo step-output; exit 7\"]\n", "returned a non-zero code: 7"},
		{"unknown instruction", "FROM scratch\nFROBNICATE x\n", "unknown instruction: FROBNICATE"},
		{"no Dockerfile", "", "no Dockerfile at its root"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.sink = &memSink{}
			f.a.Logs = f.sink
			dir := contextDir(t, tt.dockerfile)
			tag := fmt.Sprintf("skypanel-test/%s:fail%d", f.appID, i)
			err := f.run(t, f.a.BuildImage, BuildImageInput{AppID: f.appID, OrgID: f.orgID, DeploymentID: "dep-1", ContextDir: dir, ImageTag: tag}, nil)
			wantAppError(t, err, ErrTypeBuildFailed, tt.want)
			log := f.sink.text("build")
			if !strings.Contains(strings.ToLower(log), strings.ToLower(tt.want)) {
				t.Errorf("build log lacks Docker's error %q:\n%s", tt.want, log)
			}
			if strings.Contains(tt.dockerfile, "step-output;") && !strings.Contains(log, "step-output\n") {
				t.Errorf("build log lacks the step's output:\n%s", log)
			}
		})
	}
}

func TestStartInstanceRejectsBadInput(t *testing.T) {
	f := newFixture(t)
	base := StartInstanceInput{AppID: f.appID, OrgID: f.orgID, ReleaseID: "r1", InstanceName: "x-1", Image: "img:1", CPUMillis: 100, MemoryMB: 64, Port: 8000}
	bad := []func(*StartInstanceInput){
		func(in *StartInstanceInput) { in.InstanceName = "../x" },
		func(in *StartInstanceInput) { in.AppID = "a b" },
		func(in *StartInstanceInput) { in.Port = 0 },
		func(in *StartInstanceInput) { in.Env = []SealedVar{{Key: "lower", Sealed: "v1:k:x"}} },
		func(in *StartInstanceInput) { in.Env = []SealedVar{{Key: "A=B", Sealed: "v1:k:x"}} },
		func(in *StartInstanceInput) {
			in.Env = []SealedVar{{Key: "A", Sealed: "v1:k:x"}, {Key: "A", Sealed: "v1:k:y"}}
		},
		func(in *StartInstanceInput) { in.Image = "--privileged" },
		func(in *StartInstanceInput) { in.RootFS = RootFS{ReadOnly: true, Writable: []string{"/proc/sys"}} },
		func(in *StartInstanceInput) { in.RootFS = RootFS{ReadOnly: true, Writable: []string{"/var/../etc"}} },
		func(in *StartInstanceInput) {
			in.StackRootFS = map[string]RootFS{"php": {ReadOnly: true, Writable: []string{"/"}}}
		},
	}
	for i, mutate := range bad {
		in := base
		mutate(&in)
		err := f.run(t, f.a.StartInstance, in, nil)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != ErrTypeInvalidInput {
			t.Errorf("case %d: %v, want InvalidInput", i, err)
		}
	}
}

// ringSecrets opens values with one keyring: the node's keys as the API would have re-sealed
// them under, without the API.
type ringSecrets struct{ ring *secrets.Keyring }

func (r ringSecrets) OpenEnv(_ context.Context, appID string, vars []SealedVar) (map[string]string, error) {
	return OpenSealed(r.ring, appID, vars)
}

func testKeyring(t *testing.T) *secrets.Keyring {
	t.Helper()
	ring, err := secrets.NewKeyring("k1")
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

// sealVars seals plain values for appID, as the API stores them.
func sealVars(t *testing.T, ring *secrets.Keyring, appID string, plain map[string]string) []SealedVar {
	t.Helper()
	keys := make([]string, 0, len(plain))
	for k := range plain {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var vars []SealedVar
	for _, k := range keys {
		sealed, err := ring.Encrypt([]byte(plain[k]), secrets.AppEnvValue(appID, k))
		if err != nil {
			t.Fatal(err)
		}
		vars = append(vars, SealedVar{Key: k, Sealed: sealed})
	}
	return vars
}

// A value sealed for another app, or under a key the node lacks, never starts a container: the
// start fails with a non-retryable error naming the variable and not the value.
func TestStartInstanceFailsClosedOnForeignSealedValues(t *testing.T) {
	f := newFixture(t)
	tag := f.buildHelloImage(t)
	var net EnsureNetworkResult
	if err := f.run(t, f.a.EnsureNetwork, EnsureNetworkInput{OrgID: f.orgID}, &net); err != nil {
		t.Fatal(err)
	}
	otherApp := sealVars(t, f.ring, "another-app", map[string]string{"TOKEN": "s3cr3t-value"})
	otherKey := sealVars(t, testKeyring(t), f.appID, map[string]string{"TOKEN": "s3cr3t-value"})
	for name, env := range map[string][]SealedVar{"sealed for another app": otherApp, "sealed under another key": otherKey} {
		err := f.run(t, f.a.StartInstance, StartInstanceInput{
			AppID: f.appID, OrgID: f.orgID, ReleaseID: "r1", InstanceName: f.appID + "-sealed", Image: tag, Network: net.Network,
			CPUMillis: 500, MemoryMB: 64, Port: 8000, Env: env,
		}, nil)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != ErrTypeSecretUnavailable || !appErr.NonRetryable() {
			t.Errorf("%s: %v, want a non-retryable SecretUnavailable", name, err)
		}
		if err != nil && (strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "TOKEN")) {
			t.Errorf("%s: the error should name TOKEN and not its value: %v", name, err)
		}
	}
	if _, err := f.a.Client.ContainerInspect(context.Background(), f.appID+"-sealed"); err == nil {
		t.Error("a container was created with an environment the node could not open")
	}
	if networkExists(t, f, net.Network) {
		t.Error("the network made for an instance that could not be created was kept, with no container of the organization on it")
	}
}

// Two agents on one engine (two nodes in the e2e suite, a node being replaced): each lists,
// reports and removes only the containers and images of its own node, even of the same app.
func TestTwoNodesOnOneEngineLeaveEachOthersContainersAlone(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tag := f.buildHelloImage(t)
	mine := f.appID + "-web-1"
	if _, err := f.start(t, tag, mine, map[string]string{"RELEASE": "r1"}); err != nil {
		t.Fatal(err)
	}
	other := *f
	other.a = &Activities{Client: f.a.Client, Logs: f.sink, NodeID: "other-node", Secrets: ringSecrets{f.ring}}
	theirs := f.appID + "-web-2"
	if _, err := other.start(t, tag, theirs, map[string]string{"RELEASE": "r1"}); err != nil {
		t.Fatal(err)
	}

	var list ListInstancesResult
	if err := f.run(t, f.a.ListInstances, ListInstancesInput{AppID: f.appID}, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Instances) != 1 || list.Instances[0].Name != mine {
		t.Errorf("node test-node lists %+v, want only %s", list.Instances, mine)
	}
	byApp, err := NewHousekeeping(f.a).InstancesByApp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := byApp[f.appID]; len(got) != 1 || got[0].Name != mine {
		t.Errorf("node test-node's housekeeping sees %+v, want only %s", got, mine)
	}
	// Removing every instance of the app on test-node leaves other-node's running.
	if err := f.run(t, f.a.RemoveInstances, RemoveInstancesInput{AppID: f.appID}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Client.ContainerInspect(ctx, mine); err == nil {
		t.Errorf("%s was not removed", mine)
	}
	if info, err := f.a.Client.ContainerInspect(ctx, theirs); err != nil || !info.State.Running {
		t.Errorf("other-node's %s was touched: %v", theirs, err)
	}
	// The image was built by test-node: other-node does not remove it.
	if err := other.run(t, other.a.RemoveAppImages, RemoveAppImagesInput{AppID: f.appID}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Client.ImageInspect(ctx, tag); err != nil {
		t.Errorf("other-node removed test-node's image: %v", err)
	}
}

// A build pushed to the platform registry answers its digest reference; a node without the
// image pulls exactly that digest when it starts an instance; PullImage answers false for an
// image the registry does not hold.
func TestPushedImageIsPulledByDigestWhenMissing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	reg, err := registry.Start(ctx, registry.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Stop(context.Background())
	tag := reg.Addr() + "/skypanel-test/" + f.appID + ":r1"
	var res BuildImageResult
	err = f.run(t, f.a.BuildImage, BuildImageInput{AppID: f.appID, OrgID: f.orgID, DeploymentID: "dep-1", ContextDir: contextDir(t, helloDockerfile),
		ImageTag: tag, ReleaseID: "r1", Push: true}, &res)
	if err != nil {
		t.Fatalf("BuildImage: %v\nlog:\n%s", err, f.sink.text("build"))
	}
	wantPrefix := reg.Addr() + "/skypanel-test/" + f.appID + "@sha256:"
	if !strings.HasPrefix(res.ImageRef, wantPrefix) || !strings.Contains(f.sink.text("build"), "Pushed "+res.ImageRef) {
		t.Fatalf("image ref %q, want %s…, logged as pushed", res.ImageRef, wantPrefix)
	}

	// The node loses the image: starting the release pulls it by digest.
	if _, err := f.a.Client.ImageRemove(ctx, res.ImageID, image.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	started, err := f.start(t, res.ImageRef, f.appID+"-web-1", map[string]string{"RELEASE": "r1"})
	if err != nil {
		t.Fatalf("StartInstance from the registry: %v", err)
	}
	info, err := f.a.Client.ContainerInspect(ctx, started.ContainerID)
	if err != nil || info.Image != res.ImageID {
		t.Errorf("the instance runs image %q (%v), want the pushed %s", info.Image, err, res.ImageID)
	}

	var pulled bool
	unknown := reg.Addr() + "/skypanel-test/" + f.appID + "@sha256:" + strings.Repeat("0", 64)
	if err := f.run(t, f.a.PullImage, PullImageInput{AppID: f.appID, Image: unknown}, &pulled); err != nil || pulled {
		t.Errorf("PullImage of a digest the registry lacks: %v %v, want false without error", pulled, err)
	}
	if err := f.run(t, f.a.PullImage, PullImageInput{AppID: f.appID, Image: "--help"}, &pulled); err == nil {
		t.Error("PullImage accepted an option as an image")
	}
}
