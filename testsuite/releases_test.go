package testsuite

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

type release struct {
	Version         int    `json:"version"`
	Kind            string `json:"kind"`
	Description     string `json:"description"`
	CommitSHA       string `json:"commit_sha"`
	Image           string `json:"image"`
	ImageAvailable  bool   `json:"image_available"`
	RestoredVersion *int   `json:"restored_version"`
	CreatedBy       string `json:"created_by"`
	Current         bool   `json:"current"`
	Config          struct {
		Plan     string `json:"plan"`
		MemoryMB int    `json:"memory_mb"`
	} `json:"config"`
}

func (c customer) releases(t testing.TB, appID string) []release {
	t.Helper()
	var list struct{ Items []release }
	if status, raw := platform.call(http.MethodGet, "/api/paas/applications/"+appID+"/releases", c.token, nil, &list); status != http.StatusOK {
		t.Fatalf("releases: %d %s", status, raw)
	}
	return list.Items
}

// rollback asks for release vN and waits for the workflow.
func (c customer) rollback(t testing.TB, appID string, version int) (int, string) {
	t.Helper()
	var started struct {
		WorkflowID string `json:"workflow_id"`
	}
	status, raw := platform.call(http.MethodPost, "/api/paas/applications/"+appID+"/rollback", c.token, map[string]int{"release": version}, &started)
	if status != http.StatusAccepted {
		return status, string(raw)
	}
	c.waitWorkflow(t, started.WorkflowID)
	return status, ""
}

func TestRollbackServesAnEarlierReleaseWithoutRebuilding(t *testing.T) {
	ida := newCustomer(t, uniqueName("ida")+"@example.com")
	name := uniqueName("rollme")
	host := name + ".apps.localhost"
	r := newHelloRepo(t, name, "release one")
	app := ida.createApp(t, name, r.URL)
	first := ida.deploy(t, app.ID)
	r.commitMessage("release two")
	second := ida.deploy(t, app.ID)
	if first.Status != "succeeded" || second.Status != "succeeded" {
		t.Fatalf("deploys: %+v %+v", first, second)
	}
	waitServes(t, host, "release two")

	if status, raw := ida.rollback(t, app.ID, 1); status != http.StatusAccepted {
		t.Fatalf("rollback: %d %s", status, raw)
	}
	status, body, header := platform.throughNginx(host)
	if status != http.StatusOK || body != "release one" {
		t.Fatalf("after the rollback nginx answers %d %q, want v1's text", status, body)
	}
	var deployments struct{ Items []deployment }
	platform.call(http.MethodGet, "/api/paas/applications/"+app.ID+"/deployments", ida.token, nil, &deployments)
	if len(deployments.Items) != 2 {
		t.Errorf("%d deployments after the rollback, want 2: a rollback builds nothing", len(deployments.Items))
	}

	rels := ida.releases(t, app.ID)
	if len(rels) != 3 || rels[0].Version != 3 || rels[1].Version != 2 || rels[2].Version != 1 {
		t.Fatalf("releases %+v, want v3, v2, v1", rels)
	}
	v3, v1 := rels[0], rels[2]
	if v3.Kind != "rollback" || v3.Description != "Rollback to v1" || v3.Image != v1.Image || v3.CommitSHA != v1.CommitSHA || !v3.Current {
		t.Errorf("v3 %+v, want the current rollback to v1 with v1's image", v3)
	}
	if v1.Kind != "deploy" || v1.CommitSHA != first.CommitSHA || v1.Config.Plan != "starter" || v1.Config.MemoryMB != 256 || !strings.Contains(v1.CreatedBy, "ida") {
		t.Errorf("v1 %+v", v1)
	}
	if header.Get("X-SkyPanel-Release") == first.ID {
		t.Error("the rollback is a release of its own, not the old deployment again")
	}

	t.Run("bad rollbacks are refused and change nothing", func(t *testing.T) {
		for _, c := range []struct {
			version int
			want    string
		}{{9, "no release v9"}, {3, "already the current release"}, {0, "body.release"}} {
			status, raw := ida.rollback(t, app.ID, c.version)
			if status != http.StatusUnprocessableEntity || !strings.Contains(raw, c.want) {
				t.Errorf("rollback to v%d: %d %s, want 422 %q", c.version, status, raw, c.want)
			}
		}
		if n := len(ida.releases(t, app.ID)); n != 3 {
			t.Errorf("%d releases after refused rollbacks", n)
		}
	})

	t.Run("old release images are pruned past the retention count", func(t *testing.T) {
		// The stack keeps 2 images per app: after v4, v4's and v3's (= v1's) stay; v2's goes.
		r.commitMessage("release four")
		dep := ida.deploy(t, app.ID)
		if dep.Status != "succeeded" {
			t.Fatalf("deploy v4: %+v", dep)
		}
		ida.waitWorkflow(t, dep.WorkflowID) // pruning is the deploy's last step, after "succeeded"
		byVersion := map[int]release{}
		for _, rel := range ida.releases(t, app.ID) {
			byVersion[rel.Version] = rel
		}
		if !byVersion[4].ImageAvailable || !byVersion[3].ImageAvailable || !byVersion[1].ImageAvailable || byVersion[2].ImageAvailable {
			t.Errorf("image availability v1..v4: %v %v %v %v, want true false true true", byVersion[1].ImageAvailable,
				byVersion[2].ImageAvailable, byVersion[3].ImageAvailable, byVersion[4].ImageAvailable)
		}
		if _, _, err := platform.docker.ImageInspectWithRaw(context.Background(), byVersion[2].Image); err == nil {
			t.Errorf("v2's image %s is still on the node", byVersion[2].Image)
		}
		status, raw := ida.rollback(t, app.ID, 2)
		if status != http.StatusUnprocessableEntity || !strings.Contains(raw, "retention") {
			t.Errorf("rollback to a pruned release: %d %s", status, raw)
		}
		if status, _ := ida.rollback(t, app.ID, 1); status != http.StatusAccepted {
			t.Errorf("rollback to v1, whose image is kept: %d", status)
		}
		waitServes(t, host, "release one")
	})
}
