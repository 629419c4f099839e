package testsuite

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"

	spdocker "github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/worker-node/firewall"
)

// hostListener is the test's own TCP listener on every address of this machine: loopback, the
// Docker bridges' gateways and the machine's own interface. It counts the connections it gets.
type hostListener struct {
	port  string
	conns atomic.Int32
}

func newHostListener(t testing.TB) *hostListener {
	t.Helper()
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	h := &hostListener{port: strings.TrimPrefix(ln.Addr().String(), "0.0.0.0:")}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.conns.Add(1)
			c.Close()
		}
	}()
	// The listener works: the test itself reaches it (and the count starts from there).
	c, err := net.Dial("tcp4", "127.0.0.1:"+h.port)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	eventually(t, 5*time.Second, "the listener counts the test's own connection", func() (bool, string) {
		return h.conns.Load() == 1, ""
	})
	h.conns.Store(0)
	return h
}

// hostAddresses are the addresses of this machine a container might try, each the host's
// own: the default bridge's gateway and the machine's first non-Docker IPv4 address.
func hostAddresses(t testing.TB) []string {
	t.Helper()
	bridge, err := platform.docker.NetworkInspect(context.Background(), "bridge", network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range bridge.IPAM.Config {
		if c.Gateway != "" {
			out = append(out, c.Gateway)
		}
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagLoopback != 0 || iface.Name == "docker0" || strings.HasPrefix(iface.Name, "br-") || strings.HasPrefix(iface.Name, "veth") {
			continue
		}
		addrs, _ := iface.Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
				return append(out, p.Addr().String())
			}
		}
	}
	return out
}

// port of a host:port or URL.
func portOf(t testing.TB, address string) string {
	t.Helper()
	if u, err := url.Parse(address); err == nil && u.Port() != "" {
		return u.Port()
	}
	_, port, err := net.SplitHostPort(address)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// A build's RUN step cannot open a connection to the host: not to the test's listener on the
// organization network's gateway, the default bridge's gateway or the machine's own address,
// nor to the API's and Temporal's ports. The step says why each failed, and the build fails.
func TestARunStepCannotReachTheHost(t *testing.T) {
	listener := newHostListener(t)
	targets := []string{"gateway:" + listener.port, "gateway:" + portOf(t, platform.apiURL), "gateway:" + portOf(t, platform.temporalAddr)}
	for _, addr := range hostAddresses(t) {
		targets = append(targets, net.JoinHostPort(addr, listener.port))
	}
	owner := newCustomer(t, uniqueName("runprobe")+"@example.com")
	r := newHelloRepo(t, uniqueName("runprobe"), "run probe")
	r.write("Dockerfile", "FROM scratch\nCOPY app /app\nCOPY message.txt /message.txt\n"+
		"RUN [\"/app\", \"probe\", \""+strings.Join(targets, "\", \"")+"\"]\nENTRYPOINT [\"/app\"]\n")
	r.commit("a build that reaches for the host")
	app := owner.createApp(t, uniqueName("runprobe"), r.URL)
	defer owner.deleteAndWait(t, app.ID)
	dep := owner.deploy(t, app.ID)
	log := owner.logs(t, app.ID, dep.ID)
	if dep.Status != "failed" {
		t.Errorf("the build that reached for the host: %s, want failed\n%s", dep.Status, log)
	}
	for _, target := range targets {
		if !strings.Contains(log, "probe "+target+": refused") {
			t.Errorf("the build log does not show %s refused:\n%s", target, log)
		}
	}
	if n := listener.conns.Load(); n != 0 {
		t.Errorf("the host listener got %d connections from the build", n)
	}
}

// A running app reaches its own organization's containers and nothing of the host's; another
// organization's container is out of reach too. The metadata address is checked in the rules
// only: no traffic is ever sent there.
func TestAnAppReachesOnlyItsOwnOrganization(t *testing.T) {
	listener := newHostListener(t)
	owner, app, _, _ := liveHelloApp(t, "egress", "egress")
	defer owner.deleteAndWait(t, app.ID)
	sibling := owner.createApp(t, uniqueName("egress-sibling"), newHelloRepo(t, uniqueName("egress-sibling"), "sibling").URL)
	defer owner.deleteAndWait(t, sibling.ID)
	if dep := owner.deploy(t, sibling.ID); dep.Status != "succeeded" {
		t.Fatalf("deploy the sibling: %+v", dep)
	}
	stranger, strangerApp, _, _ := liveHelloApp(t, "egress-stranger", "stranger")
	defer stranger.deleteAndWait(t, strangerApp.ID)

	probe := func(to string) string {
		t.Helper()
		status, body := platform.throughNginxPath(app.Name+".apps.localhost", "/probe?to="+url.QueryEscape(to))
		if status != http.StatusOK {
			t.Fatalf("probe %s: %d %s", to, status, body)
		}
		return body
	}
	if got := probe(instanceAddress(t, sibling.ID, owner.orgID)); got != "connected" {
		t.Errorf("the same organization's container: %s, want connected", got)
	}
	if got := probe(instanceAddress(t, strangerApp.ID, stranger.orgID)); got == "connected" {
		t.Error("another organization's container answered")
	}
	targets := []string{"gateway:" + listener.port, "gateway:" + portOf(t, platform.apiURL)}
	for _, addr := range hostAddresses(t) {
		targets = append(targets, net.JoinHostPort(addr, listener.port))
	}
	for _, to := range targets {
		if got := probe(to); !strings.HasPrefix(got, "refused") {
			t.Errorf("the app reaching %s: %s, want refused", to, got)
		}
	}
	if n := listener.conns.Load(); n != 0 {
		t.Errorf("the host listener got %d connections from the app", n)
	}

	// The node's rules, as iptables lists them: the pool's packets go to its chains, and the
	// forward chain refuses the metadata address's range.
	policy := firewall.Policy{Pool: netip.MustParsePrefix(e2eNetworkPool)}
	for _, args := range [][]string{
		{"-C", "DOCKER-USER", "-s", e2eNetworkPool, "-j", policy.ForwardChain()},
		{"-C", "INPUT", "-s", e2eNetworkPool, "-j", policy.InputChain()},
		{"-C", policy.ForwardChain(), "-d", "169.254.0.0/16", "-j", "REJECT"},
	} {
		if out, err := exec.Command("iptables", append([]string{"-w", "5"}, args...)...).CombinedOutput(); err != nil {
			t.Errorf("iptables %s: %v %s", strings.Join(args, " "), err, out)
		}
	}
}

// instanceAddress is ip:port of the app's first running container on its organization's
// network, read from the engine.
func instanceAddress(t testing.TB, appID, orgID string) string {
	t.Helper()
	for _, c := range appContainers(t, appID) {
		if c.State != "running" {
			continue
		}
		info, err := platform.docker.ContainerInspect(context.Background(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		endpoint := info.NetworkSettings.Networks[spdocker.OrgNetworkName(orgID)]
		if endpoint == nil {
			t.Fatalf("container %s is not on its organization's network", c.ID)
		}
		return net.JoinHostPort(endpoint.IPAddress, envValue(info.Config.Env, "PORT"))
	}
	t.Fatalf("app %s has no running container", appID)
	return ""
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return ""
}

// dockerfileApp is a new customer's app whose repository holds the hello binary and the given
// Dockerfile; it is deployed once and the deployment and its log are returned.
func dockerfileApp(t *testing.T, owner customer, prefix, dockerfile string, extra map[string]string) (application, deployment, string) {
	t.Helper()
	name := uniqueName(prefix)
	r := newHelloRepo(t, name, prefix)
	for file, content := range extra {
		r.write(file, content)
	}
	r.write("Dockerfile", dockerfile)
	r.commit("the Dockerfile under test")
	app := owner.createApp(t, name, r.URL)
	t.Cleanup(func() { owner.deleteAndWait(t, app.ID) })
	dep := owner.deploy(t, app.ID)
	return app, dep, owner.logs(t, app.ID, dep.ID)
}

// ADD of a URL would be fetched by dockerd from the host's own network namespace, loopback
// included: the build is refused before it starts, with the line named, and the test's
// listener on the host's loopback sees no connection.
func TestADockerfileCannotFetchFromTheHostsLoopback(t *testing.T) {
	listener := newHostListener(t)
	owner := newCustomer(t, uniqueName("addurl")+"@example.com")
	for _, source := range []string{"http://127.0.0.1:" + listener.port + "/x", "\"http://localhost:" + listener.port + "/x\""} {
		_, dep, log := dockerfileApp(t, owner, "addurl", "FROM scratch\nCOPY app /app\nADD "+source+" /x\nENTRYPOINT [\"/app\"]\n", nil)
		if dep.Status != "failed" || !strings.Contains(log, "Dockerfile line 3") || !strings.Contains(log, "ADD cannot fetch URLs") {
			t.Errorf("ADD %s: %s, want failed naming line 3 and why\n%s", source, dep.Status, log)
		}
	}
	if n := listener.conns.Load(); n != 0 {
		t.Errorf("the host's loopback listener got %d connections from builds", n)
	}
}

// A build may start FROM its own organization's app image, not another organization's.
func TestFromAnotherOrganizationsAppImageIsRefused(t *testing.T) {
	owner, app, _, _ := liveHelloApp(t, "fromimg", "from image")
	defer owner.deleteAndWait(t, app.ID)
	images, err := platform.docker.ImageList(context.Background(), image.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "skypanel.app="+app.ID))})
	if err != nil || len(images) == 0 || len(images[0].RepoTags) == 0 {
		t.Fatalf("the app's image on the node: %v %+v", err, images)
	}
	ref := images[0].RepoTags[0]
	dockerfile := "FROM " + ref + "\nCOPY message.txt /message.txt\n"

	_, dep, log := dockerfileApp(t, owner, "fromimg-own", dockerfile, nil)
	if dep.Status != "succeeded" {
		t.Errorf("FROM the organization's own app image: %s\n%s", dep.Status, log)
	}
	stranger := newCustomer(t, uniqueName("fromimg-stranger")+"@example.com")
	_, dep, log = dockerfileApp(t, stranger, "fromimg-stranger", dockerfile, nil)
	if dep.Status != "failed" || !strings.Contains(log, "another organization's app image") {
		t.Errorf("FROM another organization's app image: %s, want failed saying so\n%s", dep.Status, log)
	}
}

// A fork bomb stops at the build's process limit and a step that allocates past the build's
// memory is killed, each build failing with the limit named, while an app on the same node
// answers every request.
func TestBuildLimitsStopAForkBombAndAMemoryHog(t *testing.T) {
	owner, app, _, _ := liveHelloApp(t, "neighbour", "neighbour")
	defer owner.deleteAndWait(t, app.ID)
	load := startLoad(app.Name+".apps.localhost", 2)
	eventually(t, 10*time.Second, "the load is flowing", func() (bool, string) {
		return load.total.Load() > 10, ""
	})
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static is not installed (make deps installs it): %v", err)
	}
	tenant := newCustomer(t, uniqueName("hog")+"@example.com")
	_, dep, log := dockerfileApp(t, tenant, "forkbomb", "FROM scratch\nCOPY busybox /bin/busybox\n"+
		"RUN [\"/bin/busybox\", \"sh\", \"-c\", \"b() { b | b & }; b; /bin/busybox sleep 600\"]\n", map[string]string{"busybox": string(busybox)})
	if dep.Status != "failed" || !strings.Contains(log, "process limit of") {
		t.Errorf("fork bomb: %s, want failed naming the process limit\n%s", dep.Status, tail(log, 20))
	}
	_, dep, log = dockerfileApp(t, tenant, "memhog", "FROM scratch\nCOPY app /app\nRUN [\"/app\", \"alloc\", \"3072\"]\n", nil)
	if dep.Status != "failed" || !strings.Contains(log, "memory limit of") {
		t.Errorf("memory hog: %s, want failed naming the memory limit\n%s", dep.Status, tail(log, 20))
	}
	failed, total := load.finish(100)
	if failed != 0 {
		t.Errorf("the neighbour app failed %d of %d requests during the builds", failed, total)
	}
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}
