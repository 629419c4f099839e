package testsuite

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
)

// uniqueName keeps app names distinct across tests in one run.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1_000_000_000)
}

func waitServes(t *testing.T, host, want string) {
	t.Helper()
	eventually(t, 30*time.Second, "nginx serves "+host, func() (bool, string) {
		status, body, _ := platform.throughNginx(host)
		return status == http.StatusOK && body == want, fmt.Sprintf("%d %q", status, body)
	})
}

func TestDeployFromGitIsServedThroughNginxAndRedeploysNewCommits(t *testing.T) {
	alice := newCustomer(t, uniqueName("alice")+"@example.com")
	name := uniqueName("hello")
	r := newHelloRepo(t, name, "hello v1")
	app := alice.createApp(t, name, r.URL)
	if app.ID == "" || app.Status != "created" {
		t.Fatalf("new app: %+v", app)
	}

	first := alice.deploy(t, app.ID)
	if first.Status != "succeeded" {
		t.Fatalf("first deploy: %+v\nlogs:\n%s", first, alice.logs(t, app.ID, first.ID))
	}
	host := name + ".apps.localhost"
	status, body, header := platform.throughNginx(host)
	if status != http.StatusOK || body != "hello v1" {
		t.Fatalf("through nginx: %d %q", status, body)
	}
	if got := header.Get("X-SkyPanel-Release"); got != first.ID {
		t.Errorf("release header %q, want %q", got, first.ID)
	}
	got := alice.getApp(t, app.ID)
	if got.Status != "running" || !strings.Contains(got.URL, host) {
		t.Errorf("app after deploy: %+v", got)
	}
	if logs := alice.logs(t, app.ID, first.ID); !strings.Contains(logs, "COPY message.txt") {
		t.Errorf("build log lacks the build steps:\n%s", logs)
	}

	secondCommit := r.commitMessage("hello v2")
	second := alice.deploy(t, app.ID)
	if second.Status != "succeeded" || second.CommitSHA != secondCommit {
		t.Fatalf("second deploy: %+v (want commit %s)\nlogs:\n%s", second, secondCommit, alice.logs(t, app.ID, second.ID))
	}
	waitServes(t, host, "hello v2")
	if list := appContainers(t, app.ID); len(list) != 1 {
		t.Errorf("after the redeploy the app has %d containers, want 1 (the previous one removed)", len(list))
	}

	t.Run("history is findable by SkyPanelAppID", func(t *testing.T) {
		resp, err := platform.temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("SkyPanelAppID = %q", app.ID),
		})
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, e := range resp.Executions {
			ids[e.Execution.WorkflowId] = true
		}
		if !ids[first.WorkflowID] || !ids[second.WorkflowID] {
			t.Errorf("visibility query found %v, want %s and %s", ids, first.WorkflowID, second.WorkflowID)
		}
	})

	t.Run("the workflow code replays the real history", func(t *testing.T) {
		replayHistory(t, second.WorkflowID, "deploy_app_succeeded")
	})

	t.Run("the running container is hardened", func(t *testing.T) {
		list := appContainers(t, app.ID)
		if len(list) != 1 {
			t.Fatalf("%d containers", len(list))
		}
		info, err := platform.docker.ContainerInspect(context.Background(), list[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		hc := info.HostConfig
		if info.Config.User != "1000:1000" {
			t.Errorf("user %q", info.Config.User)
		}
		if strings.Join(hc.CapDrop, ",") != "ALL" {
			t.Errorf("cap drop %v", hc.CapDrop)
		}
		wantAdd := map[string]bool{"NET_BIND_SERVICE": true, "CHOWN": true, "SETGID": true, "SETUID": true}
		if len(hc.CapAdd) != len(wantAdd) {
			t.Errorf("cap add %v", hc.CapAdd)
		}
		for _, c := range hc.CapAdd {
			if !wantAdd[strings.TrimPrefix(c, "CAP_")] {
				t.Errorf("unexpected capability %s", c)
			}
		}
		if !strings.Contains(strings.Join(hc.SecurityOpt, ","), "no-new-privileges") {
			t.Errorf("security opts %v", hc.SecurityOpt)
		}
		if hc.PidsLimit == nil || *hc.PidsLimit != 512 {
			t.Errorf("pids limit %v", hc.PidsLimit)
		}
		if hc.Memory != 256<<20 {
			t.Errorf("memory %d, want the starter plan's 256 MiB", hc.Memory)
		}
		if hc.RestartPolicy.Name != "unless-stopped" {
			t.Errorf("restart policy %q, want unless-stopped once the instance answered", hc.RestartPolicy.Name)
		}
		if hc.NanoCPUs != 250_000_000 {
			t.Errorf("cpus %d, want the starter plan's 0.25", hc.NanoCPUs)
		}
		if string(hc.NetworkMode) != "skypanel-org-"+alice.orgID {
			t.Errorf("network %s", hc.NetworkMode)
		}
		for port, bindings := range hc.PortBindings {
			for _, b := range bindings {
				if b.HostIP != "127.0.0.1" {
					t.Errorf("port %s published on %q, want 127.0.0.1 only", port, b.HostIP)
				}
			}
		}
		if !containsEnv(info.Config.Env, "PORT=8080") {
			t.Errorf("env %v lacks PORT", info.Config.Env)
		}
		// The dockerfile runtime runs arbitrary images: writable root by default (migration 0022).
		if hc.ReadonlyRootfs || len(hc.Tmpfs) != 1 {
			t.Errorf("a dockerfile app: read-only root %v, tmpfs %v; want a writable root with /tmp", hc.ReadonlyRootfs, hc.Tmpfs)
		}
	})
}

func containsEnv(env []string, want string) bool {
	for _, e := range env {
		if e == want {
			return true
		}
	}
	return false
}

func TestBrokenBuildFailsAndThePreviousReleaseKeepsServing(t *testing.T) {
	bob, app, r, good := liveHelloApp(t, "steady", "steady v1")
	name := app.Name

	r.write("Dockerfile", "FROM scratch\nCOPY app /app\nCOPY no-such-file.txt /message.txt\nENTRYPOINT [\"/app\"]\n")
	r.commit("break the build")
	bad := bob.deploy(t, app.ID)
	if bad.Status != "failed" {
		t.Fatalf("broken deploy ended %s, want failed", bad.Status)
	}
	if bad.FailureReason == "" {
		t.Error("failed deployment has no reason")
	}
	logs := bob.logs(t, app.ID, bad.ID)
	if !strings.Contains(logs, "no-such-file.txt") {
		t.Errorf("build log does not show the build error:\n%s", logs)
	}
	replayHistory(t, bad.WorkflowID, "deploy_app_build_failed")
	status, body, _ := platform.throughNginx(name + ".apps.localhost")
	if status != http.StatusOK || body != "steady v1" {
		t.Errorf("after the failed deploy nginx answers %d %q, want the previous release", status, body)
	}
	got := bob.getApp(t, app.ID)
	if got.Status != "running" || got.CurrentDeploymentID == nil || *got.CurrentDeploymentID != good.ID {
		t.Errorf("app after failed deploy: %+v", got)
	}
}

func TestInstanceThatCrashesFailsTheDeployAndThePreviousReleaseKeepsServing(t *testing.T) {
	fay, app, r, good := liveHelloApp(t, "crashy", "crashy v1")
	name := app.Name

	r.write("Dockerfile", "FROM scratch\nCOPY app /app\nCOPY message.txt /message.txt\nENTRYPOINT [\"/app\", \"crash\"]\n")
	r.commitMessage("crashy v2")
	bad := fay.deploy(t, app.ID)
	if bad.Status != "failed" || !strings.Contains(bad.FailureReason, "exited with code 3") {
		t.Fatalf("crashing release: %+v", bad)
	}
	if logs := fay.logs(t, app.ID, bad.ID); !strings.Contains(logs, "boom: crashing on purpose") {
		t.Errorf("the deployment log lacks the app's own output:\n%s", logs)
	}
	status, body, header := platform.throughNginx(name + ".apps.localhost")
	if status != http.StatusOK || body != "crashy v1" || header.Get("X-SkyPanel-Release") != good.ID {
		t.Errorf("after the crash nginx answers %d %q (release %s), want the previous release", status, body, header.Get("X-SkyPanel-Release"))
	}
	if list := appContainers(t, app.ID); len(list) != 1 || list[0].Labels["skypanel.release"] != good.ID {
		t.Errorf("containers after the failed release: %d (the crashed one must be removed)", len(list))
	}
}

func TestLifecycleStopStartRestartDelete(t *testing.T) {
	carol, app, _, _ := liveHelloApp(t, "cycle", "cycle v1")
	host := app.Name + ".apps.localhost"

	carol.operation(t, app.ID, "stop")
	if got := carol.getApp(t, app.ID); got.Status != "stopped" {
		t.Errorf("after stop: %s", got.Status)
	}
	if status, body, _ := platform.throughNginx(host); status != http.StatusServiceUnavailable || !strings.Contains(body, "stopped") {
		t.Errorf("a stopped app answers %d %q through nginx, want a 503 saying it is stopped", status, body)
	}
	if n := len(appContainers(t, app.ID)); n != 0 {
		t.Errorf("a stopped app has %d containers", n)
	}

	carol.operation(t, app.ID, "start")
	waitServes(t, host, "cycle v1")
	before := appContainers(t, app.ID)

	carol.operation(t, app.ID, "restart")
	waitServes(t, host, "cycle v1")
	after := appContainers(t, app.ID)
	if len(before) != 1 || len(after) != 1 || before[0].ID == after[0].ID {
		t.Errorf("restart should replace the instance: before %d, after %d", len(before), len(after))
	}

	carol.operation(t, app.ID, "delete")
	if status, _ := platform.call(http.MethodGet, "/api/paas/applications/"+app.ID, carol.token, nil, nil); status != http.StatusNotFound {
		t.Errorf("deleted app answers %d", status)
	}
	if status, _, _ := platform.throughNginx(host); status != http.StatusNotFound {
		t.Errorf("deleted app answers %d through nginx", status)
	}
	if n := len(appContainers(t, app.ID)); n != 0 {
		t.Errorf("deleted app still has %d containers", n)
	}
}
