package testsuite

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
)

// extraNodePool is the tenant network pool of the nodes tests add: inside 10.0.0.0/8, apart
// from the stack's own (e2eNetworkPool). Networks are allocated engine-wide, so nodes sharing
// it never overlap.
const extraNodePool = "10.115.0.0/16"

// extraNode is a node a test adds beside the stack's local one: the real agent binary, on the
// same Docker engine, with its own data dir, nginx port and node id, reporting every second.
type extraNode struct {
	Name, ID, Region string
	NginxAddr        string
	NginxHTTPSAddr   string
	dataDir, log     string
	token            string
	cmd              *exec.Cmd
	exited           chan struct{}
}

// createNode adds a node (and its region) through the admin API: its id and registration token.
func createNode(t testing.TB, name, region string) (nodeID, registrationToken string) {
	t.Helper()
	var created struct {
		Node struct {
			ID string `json:"id"`
		} `json:"node"`
		RegistrationToken string `json:"registration_token"`
	}
	if status, raw := platform.call(http.MethodPost, "/api/paas/admin/nodes", platform.adminToken,
		map[string]any{"name": name, "region": region, "create_region": true}, &created); status != http.StatusCreated {
		t.Fatalf("add node %s: %d %s", name, status, raw)
	}
	if err := recordRunNode(created.Node.ID); err != nil {
		t.Fatal(err)
	}
	return created.Node.ID, created.RegistrationToken
}

// addNode registers a node in region through the admin API and starts its agent.
func addNode(t testing.TB, name, region string) *extraNode {
	t.Helper()
	nodeID, registrationToken := createNode(t, name, region)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	httpsPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	n := &extraNode{Name: name, ID: nodeID, Region: region, NginxAddr: fmt.Sprintf("127.0.0.1:%d", port),
		NginxHTTPSAddr: fmt.Sprintf("127.0.0.1:%d", httpsPort),
		dataDir:        filepath.Join(platform.workDir, "node-"+name), log: filepath.Join(platform.workDir, "node-"+name+".log"),
		token: registrationToken}
	n.start(t)
	eventually(t, time.Minute, "node "+name+" is online", func() (bool, string) {
		status := nodeStatus(t, n.ID)
		return status == "online", status
	})
	return n
}

// start runs the agent (again). The registration token travels in its environment.
func (n *extraNode) start(t testing.TB) {
	t.Helper()
	logFile, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	n.cmd = exec.Command(platform.agentBin,
		"--api-url", platform.apiURL,
		"--data-dir", n.dataDir,
		"--gateway-address", platform.gatewayAddr,
		"--nginx-listen", n.NginxAddr,
		"--nginx-https-listen", n.NginxHTTPSAddr,
		"--allow-loopback-git",
		"--stop-nginx-on-exit",
		"--network-pool", extraNodePool,
		"--heartbeat-interval", "1s",
	)
	n.cmd.Env = append(withoutPlatformKey(os.Environ()), "SKYPANEL_REGISTRATION_TOKEN="+n.token)
	n.cmd.Stdout, n.cmd.Stderr = logFile, logFile
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start the agent of %s: %v", n.Name, err)
	}
	exited := make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(exited) }()
	n.exited = exited
}

// stop ends the agent as systemd would (SIGTERM), waiting for it.
func (n *extraNode) stop(t testing.TB) {
	t.Helper()
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(30 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.exited
		t.Errorf("the agent of %s did not stop within 30 s of SIGTERM", n.Name)
	}
	n.cmd = nil
}

// logTail is the end of the agent's log, for failure messages.
func (n *extraNode) logTail() string {
	raw, _ := os.ReadFile(n.log)
	if len(raw) > 4000 {
		raw = raw[len(raw)-4000:]
	}
	return string(raw)
}

// leftovers lists the containers and networks that remain on the engine labelled with the
// node.
func (n *extraNode) leftovers(t testing.TB) []string {
	t.Helper()
	ctx := context.Background()
	byNode := filters.NewArgs(filters.Arg("label", "skypanel.node="+n.ID))
	var left []string
	containers, err := platform.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: byNode})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range containers {
		left = append(left, "container "+c.Names[0])
	}
	networks, err := platform.docker.NetworkList(ctx, network.ListOptions{Filters: byNode})
	if err != nil {
		t.Fatal(err)
	}
	for _, nw := range networks {
		left = append(left, "network "+nw.Name)
	}
	return left
}

// containersOf lists the node's containers.
func (n *extraNode) containersOf(t testing.TB) []string {
	t.Helper()
	list, err := platform.docker.ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", "skypanel.node="+n.ID))})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range list {
		names = append(names, c.Names[0])
	}
	return names
}

// removeImages removes the images the node built. On one engine they are shared objects: an
// image node a built and node b pulled is the same image, labelled a, so each node's own
// deletes cannot tell; the tests remove them once every app is gone.
func (n *extraNode) removeImages(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	images, err := platform.docker.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "skypanel.node="+n.ID))})
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range images {
		if _, err := platform.docker.ImageRemove(ctx, img.ID, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
			t.Errorf("remove image %s of node %s: %v", img.ID, n.Name, err)
		}
	}
}

// retire stops the node's agent and deletes the node (its apps must be gone): the suite leaves
// no node of its own behind.
func (n *extraNode) retire(t testing.TB) {
	t.Helper()
	eventually(t, 2*time.Minute, "node "+n.Name+" holds nothing", func() (bool, string) {
		left := n.leftovers(t)
		return len(left) == 0, fmt.Sprintf("%v", left)
	})
	n.removeImages(t)
	n.stop(t)
	if status, raw := platform.call(http.MethodDelete, "/api/paas/admin/nodes/"+n.ID, platform.adminToken, nil, nil); status != http.StatusNoContent {
		t.Errorf("delete node %s: %d %s", n.Name, status, raw)
	}
}

func nodeStatus(t testing.TB, nodeID string) string {
	t.Helper()
	var nodes struct {
		Items []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}
	}
	if status, raw := platform.call(http.MethodGet, "/api/paas/admin/nodes", platform.adminToken, nil, &nodes); status != http.StatusOK {
		t.Fatalf("admin nodes: %d %s", status, raw)
	}
	for _, n := range nodes.Items {
		if n.ID == nodeID {
			return n.Status
		}
	}
	return "missing"
}

// throughNginxAt asks the nginx at addr for host.
func throughNginxAt(addr, host string) (int, string) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Host = host
	resp, err := nginxClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// createAppIn creates an app in region on plan.
func (c customer) createAppIn(t testing.TB, name, gitURL, region, plan string) (int, application, []byte) {
	t.Helper()
	var app application
	status, raw := platform.call(http.MethodPost, "/api/paas/applications", c.token, map[string]string{
		"name": name, "runtime": "dockerfile", "plan": plan, "region": region, "git_url": gitURL, "git_branch": "main",
	}, &app)
	if status == http.StatusCreated {
		remember(&created.apps, app.ID)
	}
	return status, app, raw
}

// deleteAndWait deletes an app and waits until it is gone.
func (c customer) deleteAndWait(t testing.TB, appID string) {
	t.Helper()
	op := c.request(t, http.MethodDelete, "/api/paas/applications/"+appID, nil)
	c.waitWorkflow(t, op.WorkflowID)
}

// nodeOf is the node an app is placed on.
type placedApp struct {
	application
	NodeID *string `json:"node_id"`
}

func (c customer) nodeOf(t testing.TB, appID string) string {
	t.Helper()
	var app placedApp
	if status, raw := platform.call(http.MethodGet, "/api/paas/applications/"+appID, c.token, nil, &app); status != http.StatusOK {
		t.Fatalf("get app: %d %s", status, raw)
	}
	if app.NodeID == nil {
		return ""
	}
	return *app.NodeID
}

// Two nodes of a region on this machine's one engine: apps are placed on both by load and each
// serves through its own node's nginx; an app no node has room for answers 409 at create, and
// a scale past its node's room answers 409 naming the node. Each node sees only its own
// containers: deleting the apps leaves nothing of either behind.
func TestPlacementSpreadsAppsOverTwoNodesByMemory(t *testing.T) {
	region := uniqueName("twin")
	a := addNode(t, region+"-a", region)
	b := addNode(t, region+"-b", region)
	nodes := map[string]*extraNode{a.ID: a, b.ID: b}
	owner := newCustomer(t, uniqueName("twin")+"@example.com")
	var apps []application
	defer func() {
		for _, app := range apps {
			owner.deleteAndWait(t, app.ID)
		}
		for _, n := range []*extraNode{a, b} {
			n.retire(t)
		}
	}()

	perNode := map[string]int{}
	for i := range 4 {
		name := uniqueName(fmt.Sprintf("twin%d", i))
		r := newHelloRepo(t, name, "hello from "+name)
		status, app, raw := owner.createAppIn(t, name, r.URL, region, "starter")
		if status != http.StatusCreated {
			t.Fatalf("create %s: %d %s", name, status, raw)
		}
		apps = append(apps, app)
		if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
			t.Fatalf("deploy %s: %+v\n%s\nagent a:\n%s\nagent b:\n%s", name, dep, owner.logs(t, app.ID, dep.ID), a.logTail(), b.logTail())
		}
		node := nodes[owner.nodeOf(t, app.ID)]
		if node == nil {
			t.Fatalf("%s was placed on %q, not on a node of region %s", name, owner.nodeOf(t, app.ID), region)
		}
		perNode[node.ID]++
		if status, body := throughNginxAt(node.NginxAddr, app.Name+".apps.localhost"); status != http.StatusOK || body != "hello from "+name {
			t.Errorf("%s through the nginx of %s: %d %q", name, node.Name, status, body)
		}
	}
	// Both nodes offer the same memory: the apps alternate.
	if perNode[a.ID] != 2 || perNode[b.ID] != 2 {
		t.Errorf("apps per node: %s %d, %s %d; want 2 and 2", a.Name, perNode[a.ID], b.Name, perNode[b.ID])
	}

	// A plan bigger than any node: refused at create, naming the region.
	huge := createSizedPlan(t, uniqueName("huge"), 1<<20) // 1 TiB, the most a plan may have
	status, _, raw := owner.createAppIn(t, uniqueName("huge"), newHelloRepo(t, uniqueName("huge"), "x").URL, region, huge)
	if status != http.StatusConflict || !strings.Contains(string(raw), "no node of region "+region) {
		t.Errorf("an app too big for every node: %d %s, want 409 naming the region", status, raw)
	}
	// A plan of 60% of a node: one instance fits, a second does not.
	big := createSizedPlan(t, uniqueName("big"), nodeMemoryMB(t, a.ID)*6/10)
	name := uniqueName("big")
	status, app, raw := owner.createAppIn(t, name, newHelloRepo(t, name, "big").URL, region, big)
	if status != http.StatusCreated {
		t.Fatalf("create a 60%% app: %d %s", status, raw)
	}
	apps = append(apps, app)
	if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
		t.Fatalf("deploy the 60%% app: %+v", dep)
	}
	status, raw = platform.call(http.MethodPost, "/api/paas/applications/"+app.ID+"/scale", owner.token, map[string]int{"instances": 2}, nil)
	if status != http.StatusConflict || !strings.Contains(string(raw), "node "+nodes[owner.nodeOf(t, app.ID)].Name) {
		t.Errorf("scaling the 60%% app to 2: %d %s, want 409 naming its node", status, raw)
	}
}

// createSizedPlan makes a plan of memoryMB and returns its slug.
func createSizedPlan(t testing.TB, slug string, memoryMB int64) string {
	t.Helper()
	fields := map[string]any{"slug": slug, "name": slug, "cpu_millis": 250, "memory_mb": memoryMB, "price_per_hour_minor": 1}
	if status, raw := platform.call(http.MethodPost, "/api/paas/admin/plans", platform.adminToken, fields, nil); status != http.StatusCreated {
		t.Fatalf("create plan %s: %d %s", slug, status, raw)
	}
	return slug
}

func nodeMemoryMB(t testing.TB, nodeID string) int64 {
	t.Helper()
	var nodes struct {
		Items []struct {
			ID       string `json:"id"`
			MemoryMB int64  `json:"memory_mb"`
		}
	}
	platform.call(http.MethodGet, "/api/paas/admin/nodes", platform.adminToken, nil, &nodes)
	for _, n := range nodes.Items {
		if n.ID == nodeID {
			return n.MemoryMB
		}
	}
	t.Fatalf("node %s not listed", nodeID)
	return 0
}

// nodeEvents lists a node's event kinds, newest first.
func nodeEvents(t testing.TB, nodeID string) []string {
	t.Helper()
	var events struct {
		Items []struct {
			Kind string `json:"kind"`
		}
	}
	if status, raw := platform.call(http.MethodGet, "/api/paas/admin/nodes/"+nodeID+"/events", platform.adminToken, nil, &events); status != http.StatusOK {
		t.Fatalf("node events: %d %s", status, raw)
	}
	var kinds []string
	for _, e := range events.Items {
		kinds = append(kinds, e.Kind)
	}
	return kinds
}

// A node whose agent stops is offline within 3 of its heartbeat intervals, with an event; a
// deploy of an app placed there fails at once, saying the node is offline (not after the
// 2-minute pickup timeout), and so do a restart and a scale; a delete goes through without the
// node. Started again, the node is online again, with an event, removes the deleted app's
// containers, and the app deploys.
func TestAStoppedNodeGoesOfflineAndItsDeploysFailFast(t *testing.T) {
	region := uniqueName("lone")
	n := addNode(t, region+"-a", region)
	owner := newCustomer(t, uniqueName("lone")+"@example.com")
	name := uniqueName("lone")
	r := newHelloRepo(t, name, "lone v1")
	status, app, raw := owner.createAppIn(t, name, r.URL, region, "starter")
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, raw)
	}
	defer func() {
		if nodeStatus(t, n.ID) != "online" {
			n.start(t)
			eventually(t, time.Minute, "the node is back for the cleanup", func() (bool, string) {
				s := nodeStatus(t, n.ID)
				return s == "online", s
			})
		}
		owner.deleteAndWait(t, app.ID)
		n.retire(t)
	}()
	if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
		t.Fatalf("deploy: %+v\n%s", dep, n.logTail())
	}
	// A second app on the node, to be deleted while the node is offline.
	goneName := uniqueName("lonegone")
	status, gone, raw := owner.createAppIn(t, goneName, newHelloRepo(t, goneName, "gone").URL, region, "starter")
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, raw)
	}
	if dep := owner.deploy(t, gone.ID); dep.Status != "succeeded" {
		t.Fatalf("deploy: %+v\n%s", dep, n.logTail())
	}
	// The app names the node that serves it, with the host its DNS name must point to.
	var view struct {
		NodeName string `json:"node_name"`
		NodeHost string `json:"node_host"`
	}
	if status, raw := platform.call(http.MethodGet, "/api/paas/applications/"+app.ID, owner.token, nil, &view); status != http.StatusOK || view.NodeName != n.Name || view.NodeHost == "" {
		t.Errorf("the app's view: %d %s, want node_name %s and a node_host", status, raw, n.Name)
	}

	n.stop(t)
	stopped := time.Now()
	eventually(t, time.Minute, "the node is offline, with an event", func() (bool, string) {
		s, events := nodeStatus(t, n.ID), nodeEvents(t, n.ID)
		return s == "offline" && len(events) > 0 && events[0] == "offline", fmt.Sprintf("%s, events %v", s, events)
	})
	t.Logf("agent stopped (heartbeat every 1 s): offline with its event %s later", time.Since(stopped).Round(100*time.Millisecond))

	r.commitMessage("lone v2")
	deploy := owner.request(t, http.MethodPost, "/api/paas/applications/"+app.ID+"/deploy", nil)
	dep := owner.waitDeployment(t, app.ID, deploy.DeploymentID)
	if dep.Status != "failed" || !strings.Contains(dep.FailureReason, "node "+n.Name+" is offline") {
		t.Errorf("deploy to the offline node: %+v, want failed because node %s is offline", dep, n.Name)
	}
	// A delete does not wait for the node: the records go at once, and the node removes the
	// app's containers when it is back (below).
	started := time.Now()
	owner.operation(t, gone.ID, "delete")
	if status, _ := platform.call(http.MethodGet, "/api/paas/applications/"+gone.ID, owner.token, nil, nil); status != http.StatusNotFound {
		t.Errorf("the app deleted while its node is offline: %d, want 404", status)
	}
	t.Logf("delete of an app on the offline node done %s after it was asked", time.Since(started).Round(100*time.Millisecond))
	if len(appContainers(t, gone.ID)) == 0 {
		t.Fatal("the offline node's containers of the deleted app are gone already: nothing left to check")
	}
	// Every other operation that needs the node fails at once too, not after the pickup timeout.
	for _, op := range []struct {
		path string
		body any
	}{{"restart", nil}, {"scale", map[string]int{"instances": 2}}} {
		started := time.Now()
		queued := owner.request(t, http.MethodPost, "/api/paas/applications/"+app.ID+"/"+op.path, op.body)
		ended := owner.waitOperation(t, app.ID, queued.OperationID)
		if ended.Status != "failed" || !strings.Contains(ended.Reason, "node "+n.Name+" is offline") {
			t.Errorf("%s on the offline node: %+v, want failed because node %s is offline", op.path, ended, n.Name)
		}
		t.Logf("%s on the offline node failed %s after it was asked: %s", op.path, time.Since(started).Round(100*time.Millisecond), ended.Reason)
	}

	n.start(t)
	eventually(t, time.Minute, "the node is online again, with an event", func() (bool, string) {
		s, events := nodeStatus(t, n.ID), nodeEvents(t, n.ID)
		return s == "online" && len(events) > 0 && events[0] == "online", fmt.Sprintf("%s, events %v", s, events)
	})
	eventually(t, time.Minute, "the node back removes the deleted app's containers", func() (bool, string) {
		left := appContainers(t, gone.ID)
		return len(left) == 0, fmt.Sprintf("%d containers left", len(left))
	})
	if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
		t.Errorf("deploy once the node is back: %+v", dep)
	}
	if status, body := throughNginxAt(n.NginxAddr, app.Name+".apps.localhost"); status != http.StatusOK || body != "lone v2" {
		t.Errorf("through the node's nginx: %d %q", status, body)
	}
}

// kill ends the agent with SIGKILL, as a machine that dies would.
func (n *extraNode) kill(t testing.TB) {
	t.Helper()
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.exited
	n.cmd = nil
}

// adminState is the node's admin state (active, cordoned, draining, drained, revoked).
func adminState(t testing.TB, nodeID string) string {
	t.Helper()
	var detail struct {
		Node struct {
			AdminState string `json:"admin_state"`
		} `json:"node"`
	}
	if status, raw := platform.call(http.MethodGet, "/api/paas/admin/nodes/"+nodeID, platform.adminToken, nil, &detail); status != http.StatusOK {
		t.Fatalf("admin node %s: %d %s", nodeID, status, raw)
	}
	return detail.Node.AdminState
}

// nodeWorkflow starts a drain or an evacuation and returns its workflow id.
func nodeWorkflow(t testing.TB, nodeID, action string, body any) string {
	t.Helper()
	var started struct {
		WorkflowID string `json:"workflow_id"`
	}
	if status, raw := platform.call(http.MethodPost, "/api/paas/admin/nodes/"+nodeID+"/"+action, platform.adminToken, body, &started); status != http.StatusAccepted || started.WorkflowID == "" {
		t.Fatalf("%s node %s: %d %s, want 202 with a workflow", action, nodeID, status, raw)
	}
	return started.WorkflowID
}

// twoNodesAndAnApp adds nodes a and b in a region of their own and creates (not deploys) a
// hello app there answering answerPrefix+name: placement will put it on a, the first by name.
func twoNodesAndAnApp(t *testing.T, prefix, answerPrefix string) (a, b *extraNode, owner customer, name string, r *repo, app application) {
	t.Helper()
	region := uniqueName(prefix)
	a = addNode(t, region+"-a", region)
	b = addNode(t, region+"-b", region)
	owner = newCustomer(t, uniqueName(prefix)+"@example.com")
	name = uniqueName(prefix + "app")
	r = newHelloRepo(t, name, answerPrefix+name)
	status, app, raw := owner.createAppIn(t, name, r.URL, region, "starter")
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, raw)
	}
	return a, b, owner, name, r, app
}

// Draining a node moves each of its apps to another node of the region, in the app's queue:
// started there from the release's digest, routed by that node's nginx, and only then removed
// from the drained one. Through the destination's nginx, no request fails after the switch.
// The drained node ends drained, with nothing of the app left on it; the region's last active
// node cannot be drained.
func TestDrainMovesAppsToAnotherNodeWithoutFailedRequests(t *testing.T) {
	a, b, owner, name, r, app := twoNodesAndAnApp(t, "drain", "moving ")
	defer func() {
		owner.deleteAndWait(t, app.ID)
		a.retire(t)
		b.retire(t)
	}()
	if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
		t.Fatalf("deploy: %+v", dep)
	}
	_, builtOnA := currentRelease(t, owner, app.ID) // release 1, built on a
	r.write("v2.txt", "2")                          // release 2: the same answer, a new build
	r.commit("release 2")
	if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
		t.Fatalf("deploy 2: %+v", dep)
	}
	owner.scale(t, app.ID, 2)
	if owner.nodeOf(t, app.ID) != a.ID {
		t.Fatalf("the first app of the region is on %s, want %s (the first by name)", owner.nodeOf(t, app.ID), a.Name)
	}
	host, body := app.Name+".apps.localhost", "moving "+name

	drain := nodeWorkflow(t, a.ID, "drain", nil)
	// The switch: the destination's nginx serves the app. From then on, load through it.
	eventually(t, 2*time.Minute, "node b serves the app", func() (bool, string) {
		status, got := throughNginxAt(b.NginxAddr, host)
		return status == http.StatusOK && got == body, fmt.Sprintf("%d %q", status, got)
	})
	load := startLoadOn([]loadTarget{{host: host, body: body, addr: b.NginxAddr}}, 4)
	owner.waitWorkflow(t, drain)
	failed, total := load.finish(500)
	t.Logf("%d failed of %d requests through node b's nginx after the switch", failed, total)
	if failed != 0 {
		t.Errorf("%d of %d requests failed through the destination after the switch", failed, total)
	}
	if got := owner.nodeOf(t, app.ID); got != b.ID {
		t.Errorf("the app is on %s after the drain, want %s", got, b.Name)
	}
	if state := adminState(t, a.ID); state != "drained" {
		t.Errorf("node a is %q after the drain, want drained", state)
	}
	if events := nodeEvents(t, a.ID); len(events) == 0 || events[0] != "drained" {
		t.Errorf("node a's events %v, want drained last", events)
	}
	if left := a.containersOf(t); len(left) > 0 {
		t.Errorf("node a still holds %v", left)
	}
	if ok, why := owner.servesAtNode(t, app, b, 2, body); !ok {
		t.Errorf("on node b: %s", why)
	}
	// Release 1 was built on a; rolled back to on b, whose engine lacks it, it is pulled by
	// its digest from the platform registry.
	removeImage(t, builtOnA)
	if status, raw := owner.rollback(t, app.ID, 1); status != http.StatusAccepted {
		t.Fatalf("rollback to release 1 on b: %d %s", status, raw)
	}
	if ok, why := owner.servesAtNode(t, app, b, 2, body); !ok {
		t.Errorf("release 1 on node b: %s", why)
	}
	if _, now := currentRelease(t, owner, app.ID); now != builtOnA {
		t.Errorf("node b runs %q, want release 1's digest %q", now, builtOnA)
	}
	// b is now the region's only active node: it cannot be drained.
	status, raw := platform.call(http.MethodPost, "/api/paas/admin/nodes/"+b.ID+"/drain", platform.adminToken, nil, nil)
	if status != http.StatusConflict {
		t.Errorf("draining the region's last active node: %d %s, want 409", status, raw)
	}
	// After its maintenance, the drained node goes back into service.
	var back struct {
		AdminState string `json:"admin_state"`
	}
	if status, raw := platform.call(http.MethodPost, "/api/paas/admin/nodes/"+a.ID+"/uncordon", platform.adminToken, nil, &back); status != http.StatusOK || back.AdminState != "active" {
		t.Errorf("uncordon the drained node: %d %s, want it active", status, raw)
	}
}

// servesAtNode says whether the app runs want instances and answers body through n's nginx.
func (c customer) servesAtNode(t testing.TB, app application, n *extraNode, want int, body string) (bool, string) {
	insts := c.instances(t, app.ID)
	healthy := 0
	for _, inst := range insts {
		if inst.State == "running" && inst.Health == "healthy" {
			healthy++
		}
	}
	if healthy != want || len(insts) != want {
		return false, fmt.Sprintf("%d instances, %d healthy: %+v", len(insts), healthy, insts)
	}
	if status, got := throughNginxAt(n.NginxAddr, app.Name+".apps.localhost"); status != http.StatusOK || got != body {
		return false, fmt.Sprintf("through node %s: %d %q", n.Name, status, got)
	}
	return true, ""
}

// A node that dies for good is evacuated without asking it: its apps start on another node of
// the region from their releases' digests. An online node is not evacuated without force. When
// the dead node's agent comes back, it removes the apps that now live elsewhere instead of
// serving stale releases.
func TestEvacuateADeadNodeAndItsReturnCleansUp(t *testing.T) {
	a, b, owner, name, _, app := twoNodesAndAnApp(t, "evac", "evacuated ")
	defer func() {
		if nodeStatus(t, a.ID) != "online" {
			a.start(t)
		}
		owner.deleteAndWait(t, app.ID)
		a.retire(t)
		b.retire(t)
	}()
	if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
		t.Fatalf("deploy: %+v", dep)
	}
	if owner.nodeOf(t, app.ID) != a.ID {
		t.Fatalf("the app is on %s, want %s", owner.nodeOf(t, app.ID), a.Name)
	}
	host, body := app.Name+".apps.localhost", "evacuated "+name

	status, raw := platform.call(http.MethodPost, "/api/paas/admin/nodes/"+a.ID+"/evacuate", platform.adminToken, map[string]bool{"force": false}, nil)
	if status != http.StatusConflict {
		t.Errorf("evacuating an online node without force: %d %s, want 409", status, raw)
	}

	a.kill(t)
	eventually(t, time.Minute, "node a is offline", func() (bool, string) {
		s := nodeStatus(t, a.ID)
		return s == "offline", s
	})
	owner.waitWorkflow(t, nodeWorkflow(t, a.ID, "evacuate", map[string]bool{"force": false}))
	if got := owner.nodeOf(t, app.ID); got != b.ID {
		t.Fatalf("the app is on %s after the evacuation, want %s", got, b.Name)
	}
	if status, got := throughNginxAt(b.NginxAddr, host); status != http.StatusOK || got != body {
		t.Errorf("through node b after the evacuation: %d %q", status, got)
	}
	// The dead node's containers are still on the engine (nobody could ask it).
	if left := a.containersOf(t); len(left) == 0 {
		t.Error("the evacuation touched the dead node")
	}

	a.start(t)
	eventually(t, 2*time.Minute, "node a removes the app it no longer holds", func() (bool, string) {
		left := a.containersOf(t)
		return len(left) == 0, fmt.Sprintf("%v", left)
	})
	if status, got := throughNginxAt(a.NginxAddr, host); status == http.StatusOK && got == body {
		t.Errorf("node a still serves the app: %d %q", status, got)
	}
}

// withoutPlatformKey is env without the platform keyring's variables: a node never holds it.
func withoutPlatformKey(env []string) []string {
	kept := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "SKYPANEL_SECRET_KEY") {
			kept = append(kept, kv)
		}
	}
	return kept
}
