package testsuite

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/errdefs"
)

// healWithin bounds how long the tests wait for a heal. The documented time from instances
// vanishing to serving at full count again is under 30 s (docs/architecture.md,
// "Convergence"); BenchmarkHeal measures it. This is only the tests' patience.
const healWithin = 2 * time.Minute

// removeOutOfBand removes n of the app's containers with the Engine API, as `docker rm -f`
// does: the platform is not told. It returns their names.
func removeOutOfBand(t testing.TB, appID string, n int) []string {
	t.Helper()
	list := appContainers(t, appID)
	if len(list) < n {
		t.Fatalf("app %s has %d containers, want at least %d to remove", appID, len(list), n)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Names[0] < list[j].Names[0] })
	var names []string
	for _, c := range list[:n] {
		if err := platform.docker.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true}); err != nil {
			t.Fatalf("docker rm -f %s: %v", c.Names[0], err)
		}
		names = append(names, strings.TrimPrefix(c.Names[0], "/"))
	}
	return names
}

// allOperations lists the app's operations, running, waiting and the last 50 ended.
func (c customer) allOperations(t testing.TB, appID string) []queuedOperation {
	t.Helper()
	var list struct{ Items []queuedOperation }
	if status, raw := platform.call(http.MethodGet, "/api/paas/applications/"+appID+"/operations?ended=50", c.token, nil, &list); status != http.StatusOK {
		t.Fatalf("list operations: %d %s", status, raw)
	}
	return list.Items
}

// heals lists the app's heal operations, whatever their status.
func (c customer) heals(t testing.TB, appID string) []queuedOperation {
	t.Helper()
	var heals []queuedOperation
	for _, op := range c.allOperations(t, appID) {
		if op.Kind == "heal" {
			heals = append(heals, op)
		}
	}
	return heals
}

// endedHeals waits until the app's heals have all ended and returns them.
func (c customer) endedHeals(t testing.TB, appID string) []queuedOperation {
	t.Helper()
	var heals []queuedOperation
	eventually(t, time.Minute, "the heals end", func() (bool, string) {
		heals = c.heals(t, appID)
		for _, h := range heals {
			if h.Status == "queued" || h.Status == "running" {
				return false, fmt.Sprintf("%+v", heals)
			}
		}
		return true, ""
	})
	return heals
}

// servesAt says whether the app runs exactly want healthy instances, none of them one of
// gone, and nginx answers with message.
func (c customer) servesAt(t testing.TB, app application, want int, message string, gone []string) (bool, string) {
	insts := c.instances(t, app.ID)
	healthy := 0
	for _, inst := range insts {
		for _, g := range gone {
			if inst.Name == g {
				return false, fmt.Sprintf("removed instance %s is listed: %+v", g, insts)
			}
		}
		if inst.State == "running" && inst.Health == "healthy" {
			healthy++
		}
	}
	if healthy != want || len(insts) != want {
		return false, fmt.Sprintf("%d instances, %d healthy: %+v", len(insts), healthy, insts)
	}
	status, body, _ := platform.throughNginx(app.Name + ".apps.localhost")
	if status != http.StatusOK || body != message {
		return false, fmt.Sprintf("nginx answers %d %q", status, body)
	}
	return true, ""
}

// awaitNodeReports waits until the node has reported what runs on it n more times: by then
// the control plane has compared every app with those reports at least n-1 times.
func awaitNodeReports(t testing.TB, n int) {
	t.Helper()
	last := nodeReportedAt(t)
	for i := 0; i < n; i++ {
		eventually(t, time.Minute, "the node reports again", func() (bool, string) {
			at := nodeReportedAt(t)
			if at.After(last) {
				last = at
				return true, ""
			}
			return false, "last report at " + at.String()
		})
	}
}

func nodeReportedAt(t testing.TB) time.Time {
	t.Helper()
	var nodes struct {
		Items []struct {
			ID           string     `json:"id"`
			LastReportAt *time.Time `json:"last_report_at"`
		}
	}
	if status, raw := platform.call(http.MethodGet, "/api/paas/admin/nodes", platform.adminToken, nil, &nodes); status != http.StatusOK {
		t.Fatalf("admin nodes: %d %s", status, raw)
	}
	for _, n := range nodes.Items {
		if n.ID == platform.nodeID && n.LastReportAt != nil {
			return *n.LastReportAt
		}
	}
	return time.Time{}
}

// An app at 3 instances whose containers are all removed out of band is back at 3, serving,
// with no API call; the heal is listed with why it ran and what it did.
func TestVanishedInstancesComeBackWithoutAnAPICall(t *testing.T) {
	owner, app, _, _ := liveHelloApp(t, "vanish", "vanish v1")
	owner.scale(t, app.ID, 3)
	if ok, why := owner.servesAt(t, app, 3, "vanish v1", nil); !ok {
		t.Fatalf("before: %s", why)
	}

	removedAt := time.Now()
	gone := removeOutOfBand(t, app.ID, 3)
	eventually(t, healWithin, "the app serves again at 3 instances", func() (bool, string) {
		return owner.servesAt(t, app, 3, "vanish v1", gone)
	})
	t.Logf("all 3 instances removed: serving at 3 again %s later", time.Since(removedAt).Round(100*time.Millisecond))

	heals := owner.endedHeals(t, app.ID)
	if len(heals) != 1 {
		t.Fatalf("%d heals, want 1: %+v", len(heals), heals)
	}
	h := heals[0]
	if h.Status != "succeeded" || h.RequestedBy != "convergence" ||
		!strings.Contains(h.Reason, "0 of 3 instances running") || !strings.Contains(h.Reason, "started 3 of 3 instances from the kept image") {
		t.Errorf("heal: %+v, want succeeded, asked by convergence, saying 0 of 3 ran and 3 were started from the kept image", h)
	}
	if got := owner.getApp(t, app.ID); got.Status != "running" || got.Instances != 3 {
		t.Errorf("app after the heal: %+v, want running at 3 instances", got)
	}
}

// Removing 2 of 3 instances costs no request: nginx serves from the one left (the node's
// reconcile repoints it at once) until the heal routes to 3 again.
func TestRemovingTwoOfThreeInstancesFailsNoRequest(t *testing.T) {
	owner, app, _, _ := liveHelloApp(t, "twoofthree", "two of three")
	owner.scale(t, app.ID, 3)
	host := app.Name + ".apps.localhost"
	load := startLoadOn([]loadTarget{{host: host, body: "two of three"}}, 4)
	eventually(t, 10*time.Second, "the load is flowing", func() (bool, string) {
		return load.total.Load() > 10, fmt.Sprintf("%d requests", load.total.Load())
	})
	gone := removeOutOfBand(t, app.ID, 2)
	eventually(t, healWithin, "the app serves again at 3 instances", func() (bool, string) {
		return owner.servesAt(t, app, 3, "two of three", gone)
	})
	failed, total := load.finish(0)
	t.Logf("%d failed of %d requests while 2 of 3 instances vanished and were healed", failed, total)
	if failed != 0 {
		t.Errorf("%d of %d requests failed", failed, total)
	}
	heals := owner.endedHeals(t, app.ID)
	if len(heals) != 1 || heals[0].Status != "succeeded" || !strings.Contains(heals[0].Reason, "1 of 3 instances running") ||
		!strings.Contains(heals[0].Reason, "started 2 of 3 instances") {
		t.Errorf("heals: %+v, want one that found 1 of 3 running and started 2", heals)
	}
}

// A stopped app is never healed: it has no container, and the convergence check that sees the
// node's reports starts none.
func TestAStoppedAppIsNotHealed(t *testing.T) {
	owner, app, _, _ := liveHelloApp(t, "stayput", "stay stopped")
	owner.scale(t, app.ID, 2)
	owner.operation(t, app.ID, "stop")
	// Whatever the stop left (it removes its instances itself) goes out of band too.
	for _, c := range appContainers(t, app.ID) {
		if err := platform.docker.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	// Three reports later the control plane has compared the app with two of them at least.
	awaitNodeReports(t, 3)
	if n := len(appContainers(t, app.ID)); n != 0 {
		t.Errorf("%d containers of the stopped app, want 0", n)
	}
	if heals := owner.heals(t, app.ID); len(heals) != 0 {
		t.Errorf("a stopped app was healed: %+v", heals)
	}
	if got := owner.getApp(t, app.ID); got.Status != "stopped" {
		t.Errorf("app status %q, want stopped", got.Status)
	}
	if status, _, _ := platform.throughNginx(app.Name + ".apps.localhost"); status != http.StatusServiceUnavailable {
		t.Errorf("the stopped app answers %d through nginx, want 503 (its stopped page)", status)
	}
}

// When the node lost the release's image as well as its containers, the heal pulls that
// exact digest from the platform registry; when the registry lost it too, the heal rebuilds the
// image from the release's own commit, not the branch's newest, and says which it did.
func TestAHealPullsOrRebuildsALostImage(t *testing.T) {
	owner, app, r, dep := liveHelloApp(t, "lostimage", "built from the release")
	commit, img := currentRelease(t, owner, app.ID)
	if commit == "" || !strings.Contains(img, "@sha256:") {
		t.Fatalf("the current release has commit %q, image %q: want a commit and a digest reference (deployment %+v)", commit, img, dep)
	}
	// The branch moves on without a deploy: the heal must not pick this up.
	r.commitMessage("a newer commit nobody deployed")

	gone := removeOutOfBand(t, app.ID, 1)
	removeImage(t, img)
	eventually(t, healWithin, "the app serves its release again", func() (bool, string) {
		return owner.servesAt(t, app, 1, "built from the release", gone)
	})
	heals := owner.endedHeals(t, app.ID)
	if len(heals) != 1 || heals[0].Status != "succeeded" || !strings.Contains(heals[0].Reason, "pulled from the platform registry") {
		t.Fatalf("heals: %+v, want one saying it pulled the image from the registry", heals)
	}

	// Now the registry loses it too.
	gone = removeOutOfBand(t, app.ID, 1)
	removeImage(t, img)
	deleteFromRegistry(t, img)
	eventually(t, healWithin, "the app serves its release again", func() (bool, string) {
		return owner.servesAt(t, app, 1, "built from the release", gone)
	})
	heals = owner.endedHeals(t, app.ID)
	if len(heals) != 2 || heals[0].Status != "succeeded" || !strings.Contains(heals[0].Reason, "rebuilt from commit "+commit[:7]) {
		t.Errorf("heals: %+v, want the newest saying it rebuilt from commit %s", heals, commit[:7])
	}
	// The rebuild is new bytes: the release now runs the new digest, and the registry has it.
	_, rebuilt := currentRelease(t, owner, app.ID)
	if rebuilt == img || !strings.Contains(rebuilt, "@sha256:") || !inRegistry(t, rebuilt) {
		t.Errorf("the release's image after the rebuild: %q (was %q), want a new digest the registry holds", rebuilt, img)
	}
}

// currentRelease is the app's current release's commit and image.
func currentRelease(t testing.TB, owner customer, appID string) (string, string) {
	t.Helper()
	var releases struct {
		Items []struct {
			CommitSHA string `json:"commit_sha"`
			Image     string `json:"image"`
			Current   bool   `json:"current"`
		}
	}
	if status, raw := platform.call(http.MethodGet, "/api/paas/applications/"+appID+"/releases", owner.token, nil, &releases); status != http.StatusOK {
		t.Fatalf("releases: %d %s", status, raw)
	}
	for _, rel := range releases.Items {
		if rel.Current {
			return rel.CommitSHA, rel.Image
		}
	}
	return "", ""
}

// removeImage removes an image from the engine with every name it has (`docker rmi -f` of its
// id): the node no longer holds its bytes at all.
func removeImage(t testing.TB, ref string) {
	t.Helper()
	ctx := context.Background()
	info, err := platform.docker.ImageInspect(ctx, ref)
	if errdefs.IsNotFound(err) {
		return // gone already
	}
	if err != nil {
		t.Fatalf("docker image inspect %s: %v", ref, err)
	}
	if _, err := platform.docker.ImageRemove(ctx, info.ID, image.RemoveOptions{Force: true}); err != nil {
		t.Fatalf("docker rmi -f %s (%s): %v", info.ID, ref, err)
	}
}

// registryManifestURL is the registry API URL of a digest reference host:port/repo@sha256:….
func registryManifestURL(t testing.TB, ref string) string {
	t.Helper()
	hostRepo, digest, ok := strings.Cut(ref, "@")
	host, repo, ok2 := strings.Cut(hostRepo, "/")
	if !ok || !ok2 || !strings.HasPrefix(host, "127.0.0.1:") {
		t.Fatalf("%q is not an image of the stack's loopback registry", ref)
	}
	return "http://" + host + "/v2/" + repo + "/manifests/" + digest
}

func deleteFromRegistry(t testing.TB, ref string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, registryManifestURL(t, ref), nil)
	asLocalNode(t, req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delete %s from the registry: %v %v", ref, resp, err)
	}
	resp.Body.Close()
}

func inRegistry(t testing.TB, ref string) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodHead, registryManifestURL(t, ref), nil)
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
	asLocalNode(t, req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD %s: %d, want 200 or 404", req.URL, resp.StatusCode)
	}
	return resp.StatusCode == http.StatusOK
}

// An app whose instances keep dying right after they answer is healed at most 3 times, then
// shows degraded with its last output, and is left alone: no heal loop. A start command that
// exits at once cannot pass a deploy's readiness gate, so the app here answers its health
// check and exits 2 s later, every time.
func TestACrashLoopIsHealedThreeTimesThenDegraded(t *testing.T) {
	t.Parallel() // mostly waits on the platform's timers: runs beside the other waiting tests, at the end
	owner := newCustomer(t, uniqueName("crashloop")+"@example.com")
	name := uniqueName("crashloop")
	r := newHelloRepo(t, name, "crashloop")
	r.write("Dockerfile", "FROM scratch\nCOPY app /app\nCOPY message.txt /message.txt\nUSER 1000:1000\n"+
		"ENTRYPOINT [\"/app\", \"serve-then-exit\", \"2s\"]\n")
	r.commit("die two seconds after starting")
	app := owner.createApp(t, name, r.URL)
	if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
		t.Fatalf("deploy: %+v\n%s", dep, owner.logs(t, app.ID, dep.ID))
	}

	var got application
	eventually(t, 5*time.Minute, "the app shows degraded", func() (bool, string) {
		got = owner.getApp(t, app.ID)
		return got.Status == "degraded", fmt.Sprintf("status %q, heals %+v", got.Status, owner.heals(t, app.ID))
	})
	if !strings.Contains(got.StatusReason, "giving up after 2s") || !strings.Contains(got.StatusReason, "3 heals") {
		t.Errorf("degraded reason %q, want the 3 heals and the app's last output", got.StatusReason)
	}
	// Left alone: three reports later (two checks at least), still 3 heals and none waiting.
	awaitNodeReports(t, 3)
	heals := owner.heals(t, app.ID)
	if len(heals) != 3 {
		t.Errorf("%d heals, want 3 (the back-off's limit): %+v", len(heals), heals)
	}
	for _, h := range heals {
		if h.Status == "queued" || h.Status == "running" {
			t.Errorf("a heal still waits or runs after the app is degraded: %+v", h)
		}
	}
	// Docker keeps restarting the last instance, and it is reported crashing with its words.
	eventually(t, 2*time.Minute, "the instance is reported crashing, with exit code 4 and its last output", func() (bool, string) {
		insts := owner.instances(t, app.ID)
		if len(insts) != 1 {
			return false, fmt.Sprintf("%d instances: %+v", len(insts), insts)
		}
		inst := insts[0]
		return inst.State == "crashing" && inst.Restarts >= 3 && inst.ExitCode == 4 &&
			strings.Contains(inst.LastOutput, "giving up after 2s"), fmt.Sprintf("%+v", inst)
	})

	// The next deploy gives it a fresh start: a working release runs, and it is no longer degraded.
	r.write("Dockerfile", "FROM scratch\nCOPY app /app\nCOPY message.txt /message.txt\nUSER 1000:1000\nENTRYPOINT [\"/app\"]\n")
	r.commitMessage("steady now")
	if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
		t.Fatalf("fixing deploy: %+v", dep)
	}
	owner.waitIdle(t, app.ID) // the deploy's operation ends just after its deployment
	if got := owner.getApp(t, app.ID); got.Status != "running" || got.StatusReason != "" {
		t.Errorf("after a deploy the app is %q (%q), want running", got.Status, got.StatusReason)
	}
}

// A heal queued while a deploy builds waits for it, then finds the deploy's instances: no
// duplicate instances and no lost deploy.
func TestAHealQueuedBehindADeployWaitsAndSeesItsResult(t *testing.T) {
	t.Parallel() // mostly waits on the platform's timers: runs beside the other waiting tests, at the end
	owner, app, r, _ := liveHelloApp(t, "healbehind", "before the deploy")
	owner.scale(t, app.ID, 2)
	// The next build sleeps long enough for the convergence check to see the app short.
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static is not installed (make deps installs it): %v", err)
	}
	r.write("busybox", string(busybox))
	r.write("Dockerfile", "FROM scratch\nCOPY busybox /bin/busybox\nCOPY message.txt /message.txt\n"+
		"RUN [\"/bin/busybox\", \"sleep\", \"30\"]\nCOPY app /app\nENTRYPOINT [\"/app\"]\n")
	r.commitMessage("after the deploy")
	deploy := owner.request(t, http.MethodPost, "/api/paas/applications/"+app.ID+"/deploy", nil)
	eventually(t, time.Minute, "the deploy runs", func() (bool, string) {
		op := owner.operationByID(t, app.ID, deploy.OperationID)
		return op.Status == "running", op.Status
	})
	gone := removeOutOfBand(t, app.ID, 2)

	var heal queuedOperation
	eventually(t, time.Minute, "a heal waits behind the deploy", func() (bool, string) {
		q := owner.queue(t, app.ID)
		for _, op := range q {
			if op.Kind == "heal" {
				heal = op
				return op.Status == "queued" && op.Position >= 1, describeQueue(q)
			}
		}
		return false, describeQueue(q)
	})
	if dep := owner.waitDeployment(t, app.ID, deploy.DeploymentID); dep.Status != "succeeded" {
		t.Fatalf("the deploy: %+v", dep)
	}
	heal = owner.waitOperation(t, app.ID, heal.ID)
	if heal.Status != "succeeded" || !strings.Contains(heal.Reason, "nothing was missing any more") {
		t.Errorf("heal: %+v, want succeeded, finding nothing missing after the deploy", heal)
	}
	if ok, why := owner.servesAt(t, app, 2, "after the deploy", gone); !ok {
		t.Errorf("after the deploy and the heal: %s", why)
	}
	got := owner.getApp(t, app.ID)
	if got.CurrentDeploymentID == nil || *got.CurrentDeploymentID != deploy.DeploymentID {
		t.Errorf("current deployment %v, want the deploy %s", got.CurrentDeploymentID, deploy.DeploymentID)
	}
	for _, c := range appContainers(t, app.ID) {
		if c.Labels["skypanel.release"] != deploy.DeploymentID {
			t.Errorf("container %s of release %s, want only the deploy's", c.Names[0], c.Labels["skypanel.release"])
		}
	}
}
