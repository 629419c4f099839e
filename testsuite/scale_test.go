package testsuite

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

type instance struct {
	Name       string `json:"name"`
	State      string `json:"state"`
	Health     string `json:"health"`
	Current    bool   `json:"current"`
	Restarts   int    `json:"restarts"`
	ExitCode   int    `json:"exit_code"`
	LastOutput string `json:"last_output"`
}

func (c customer) instances(t testing.TB, appID string) []instance {
	t.Helper()
	var list struct{ Items []instance }
	if status, raw := platform.call(http.MethodGet, "/api/paas/applications/"+appID+"/instances", c.token, nil, &list); status != http.StatusOK {
		t.Fatalf("instances: %d %s", status, raw)
	}
	return list.Items
}

// servingInstances asks nginx enough times to see every instance behind it and returns the
// distinct X-Instance values the app answered with.
func servingInstances(t testing.TB, host, want string, requests int) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	for range requests {
		status, body, header := platform.throughNginx(host)
		if status != http.StatusOK || body != want {
			t.Fatalf("through nginx: %d %q", status, body)
		}
		seen[header.Get("X-Instance")] = true
	}
	return seen
}

func TestScaleUpAndDownBehindNginx(t *testing.T) {
	jo, app, r, _ := liveHelloApp(t, "scaled", "scaled v1")
	host := app.Name + ".apps.localhost"

	status, raw := platform.call(http.MethodPost, "/api/paas/applications/"+app.ID+"/scale", jo.token, map[string]int{"instances": 11}, nil)
	if status != http.StatusUnprocessableEntity || !strings.Contains(string(raw), "body.instances") {
		t.Errorf("scale to 11: %d %s, want 422 on body.instances", status, raw)
	}
	status, raw = platform.call(http.MethodPost, "/api/paas/applications/"+app.ID+"/scale", jo.token, map[string]int{"instances": 0}, nil)
	if status != http.StatusUnprocessableEntity {
		t.Errorf("scale to 0: %d %s, want 422", status, raw)
	}

	jo.scale(t, app.ID, 3)
	if got := jo.getApp(t, app.ID); got.Instances != 3 {
		t.Errorf("app instances %d after scaling to 3", got.Instances)
	}
	insts := jo.instances(t, app.ID)
	if len(insts) != 3 {
		t.Fatalf("%d instances listed, want 3: %+v", len(insts), insts)
	}
	for _, inst := range insts {
		if inst.State != "running" || !inst.Current {
			t.Errorf("instance %+v", inst)
		}
	}
	if seen := servingInstances(t, host, "scaled v1", 60); len(seen) != 3 {
		t.Errorf("nginx spread 60 requests over %d instances, want 3: %v", len(seen), seen)
	}

	// A redeploy keeps the scale: three instances of the new release, the old ones gone.
	r.commitMessage("scaled v2")
	if dep := jo.deploy(t, app.ID); dep.Status != "succeeded" {
		t.Fatalf("redeploy: %+v", dep)
	}
	if seen := servingInstances(t, host, "scaled v2", 60); len(seen) != 3 {
		t.Errorf("after the redeploy nginx spreads over %d instances, want 3", len(seen))
	}
	if n := len(appContainers(t, app.ID)); n != 3 {
		t.Errorf("%d containers after the redeploy at scale 3", n)
	}

	t.Run("a killed instance is restarted and clients never see it", func(t *testing.T) {
		// SIGKILL to the container's main process from the host: a crash, as Docker sees it.
		// (`docker kill` counts as stopping it on purpose, and is not restarted.)
		victim := appContainers(t, app.ID)[0]
		info, err := platform.docker.ContainerInspect(context.Background(), victim.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(info.State.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		failures, total := 0, 0
		eventually(t, time.Minute, "the killed instance runs again", func() (bool, string) {
			for range 20 {
				total++
				if status, body, _ := platform.throughNginx(host); status != http.StatusOK || body != "scaled v2" {
					failures++
				}
			}
			info, err := platform.docker.ContainerInspect(context.Background(), victim.ID)
			if err != nil {
				return false, err.Error()
			}
			return info.State.Running && info.RestartCount > 0, fmt.Sprintf("running=%v restarts=%d", info.State.Running, info.RestartCount)
		})
		if failures > 0 {
			t.Errorf("%d of %d requests failed while an instance was down", failures, total)
		}
	})

	jo.scale(t, app.ID, 1)
	if seen := servingInstances(t, host, "scaled v2", 20); len(seen) != 1 {
		t.Errorf("after scaling to 1, %d instances answer", len(seen))
	}
	eventually(t, 30*time.Second, "the extra instances are removed", func() (bool, string) {
		n := len(appContainers(t, app.ID))
		return n == 1, fmt.Sprintf("%d containers", n)
	})
}

func (c customer) scale(t testing.TB, appID string, n int) {
	t.Helper()
	var started struct {
		WorkflowID string `json:"workflow_id"`
	}
	status, raw := platform.call(http.MethodPost, "/api/paas/applications/"+appID+"/scale", c.token, map[string]int{"instances": n}, &started)
	if status != http.StatusAccepted {
		t.Fatalf("scale to %d: %d %s", n, status, raw)
	}
	c.waitWorkflow(t, started.WorkflowID)
}
