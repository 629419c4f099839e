package testsuite

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// slowBuildApp makes an app whose build has a step that takes seconds, and starts its deploy;
// it returns once the build is inside that step.
func slowBuildApp(t *testing.T, prefix string) (customer, application, *repo, string) {
	t.Helper()
	owner := newCustomer(t, uniqueName(prefix)+"@example.com")
	name := uniqueName(prefix)
	r := slowBuildRepo(t, name)
	app := owner.createApp(t, name, r.URL)
	var started struct {
		DeploymentID string `json:"deployment_id"`
	}
	if status, raw := platform.call(http.MethodPost, "/api/paas/applications/"+app.ID+"/deploy", owner.token, nil, &started); status != http.StatusAccepted {
		t.Fatalf("deploy: %d %s", status, raw)
	}
	eventually(t, time.Minute, "the build reaches its slow step", func() (bool, string) {
		_, raw := platform.call(http.MethodGet, "/api/paas/applications/"+app.ID+"/deployments/"+started.DeploymentID+"/logs", owner.token, nil, nil)
		text := string(raw)
		slow := strings.Index(text, `"sleep"`)
		return slow >= 0 && strings.Contains(text[slow:], "Running in"), lastLine(text)
	})
	return owner, app, r, started.DeploymentID
}

// TestDeployResumesAfterThePlatformRestartsMidBuild stops the whole platform as Ctrl-C does
// (API, worker, Temporal dev server, agent and its nginx) while a deployment is building,
// starts it again on the same data, and expects the same deployment to finish. The agent drains
// its running build before it exits; the workflow then continues from the next step after the
// restart, without cloning or building again.
func TestDeployResumesAfterThePlatformRestartsMidBuild(t *testing.T) {
	gus, app, r, deploymentID := slowBuildApp(t, "durable")

	if err := platform.terminate(); err != nil {
		t.Fatalf("the platform did not stop cleanly: %v", err)
	}
	for _, addr := range []string{strings.TrimPrefix(platform.apiURL, "http://"), platform.nginxAddr} {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still answers after the platform stopped", addr)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := platform.launch(ctx); err != nil {
		t.Fatalf("restart the platform: %v", err)
	}

	expectResumed(t, gus, app, r, deploymentID, 1)
}

// TestBuildIsRetriedWhenTheNodeAgentDiesMidBuild kills the node agent with SIGKILL in the
// middle of a build, as a crash would. The build's heartbeats stop, Temporal times the attempt
// out and schedules it again on the node's queue, and the agent that comes back (`skypanel dev`
// restarts it, as systemd does on a real node) builds it: the deployment succeeds without a new
// clone.
func TestBuildIsRetriedWhenTheNodeAgentDiesMidBuild(t *testing.T) {
	hal, app, r, deploymentID := slowBuildApp(t, "crashnode")

	agentPID := findProcess(t, "skypanel-agent", platform.dataDir)
	if err := syscall.Kill(agentPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if status, body, _ := platform.throughNginx("nothing-here.apps.localhost"); status != http.StatusNotFound || !strings.Contains(body, "no app") {
		t.Errorf("the node's nginx must keep serving while its agent is down: %d %q", status, body)
	}
	eventually(t, time.Minute, "the agent is started again", func() (bool, string) {
		pid, ok := lookupProcess("skypanel-agent", platform.dataDir)
		return ok && pid != agentPID, "not yet"
	})

	expectResumed(t, hal, app, r, deploymentID, 2) // the crashed attempt, then its retry
}

// expectResumed checks that an interrupted deployment finished as the same deployment: it
// succeeded, the repository was cloned once (the workflow resumed rather than starting over),
// the image built builds times, and the app serves its message.
func expectResumed(t *testing.T, owner customer, app application, r *repo, deploymentID string, builds int) {
	t.Helper()
	dep := owner.waitDeployment(t, app.ID, deploymentID)
	logs := owner.logs(t, app.ID, deploymentID)
	if dep.Status != "succeeded" {
		t.Fatalf("the interrupted deployment ended %s: %s\n%s", dep.Status, dep.FailureReason, logs)
	}
	if clones, built := strings.Count(logs, "Cloning "+r.URL), strings.Count(logs, "Building image"); clones != 1 || built != builds {
		t.Errorf("cloned %d and built %d times, want 1 clone and %d builds:\n%s", clones, built, builds, logs)
	}
	waitServes(t, app.Name+".apps.localhost", app.Name)
}

// findProcess returns the pid of the process named name whose command line mentions marker.
func findProcess(t testing.TB, name, marker string) int {
	t.Helper()
	pid, ok := lookupProcess(name, marker)
	if !ok {
		t.Fatalf("no %s process for %s", name, marker)
	}
	return pid
}

func lookupProcess(name, marker string) (int, bool) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		args := processArgs(pid)
		if len(args) > 0 && filepath.Base(args[0]) == name && strings.Contains(strings.Join(args, " "), marker) {
			return pid, true
		}
	}
	return 0, false
}

func lastLine(text string) string {
	text = strings.TrimSpace(text)
	if i := strings.LastIndexByte(text, '\n'); i >= 0 {
		return text[i+1:]
	}
	return text
}

// processArgs is a process's command line, nil when it is gone.
func processArgs(pid int) []string {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil || len(raw) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
}
