package testsuite

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestInstanceThatKeepsDyingIsReportedCrashing deploys an app that answers its health check,
// then exits with code 4 two seconds later, every time Docker restarts it. The deploy succeeds
// (it was healthy), Docker keeps restarting it, and GET .../instances reports it as crashing
// with the exit code and its last words.
func TestInstanceThatKeepsDyingIsReportedCrashing(t *testing.T) {
	owner := newCustomer(t, uniqueName("flaky")+"@example.com")
	name := uniqueName("flaky")
	r := newHelloRepo(t, name, "flaky")
	r.write("Dockerfile", "FROM scratch\nCOPY app /app\nCOPY message.txt /message.txt\nUSER 1000:1000\n"+
		"ENTRYPOINT [\"/app\", \"serve-then-exit\", \"2s\"]\n")
	r.commit("die two seconds after starting")
	app := owner.createApp(t, name, r.URL)
	if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
		t.Fatalf("deploy: %+v\n%s", dep, owner.logs(t, app.ID, dep.ID))
	}

	var last []instance
	eventually(t, 90*time.Second, "the instance is reported crashing, with exit code 4 and its last output", func() (bool, string) {
		last = owner.instances(t, app.ID)
		if len(last) != 1 {
			return false, fmt.Sprintf("%d instances: %+v", len(last), last)
		}
		inst := last[0]
		return inst.State == "crashing" && inst.Restarts >= 3 && inst.ExitCode == 4 &&
				strings.Contains(inst.LastOutput, "giving up after 2s"),
			fmt.Sprintf("%+v", inst)
	})
	if last[0].Health != "down" {
		t.Errorf("a crashing instance that exited reports health %q, want down", last[0].Health)
	}

	// A healthy app, for contrast: running, healthy, not crashing.
	healthyOwner, healthyApp, _, _ := liveHelloApp(t, "steady", "steady")
	insts := healthyOwner.instances(t, healthyApp.ID)
	if len(insts) != 1 || insts[0].State != "running" || insts[0].Health != "healthy" || insts[0].LastOutput != "" {
		t.Errorf("a steady app's instances: %+v, want one running, healthy, without last output", insts)
	}
	if status, _, _ := platform.throughNginx(healthyApp.Name + ".apps.localhost"); status != http.StatusOK {
		t.Errorf("the steady app answers %d", status)
	}
}
