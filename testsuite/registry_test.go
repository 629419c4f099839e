package testsuite

import (
	"net/http"
	"strings"
	"testing"
)

// Every release runs by the digest of the image its build pushed to the platform registry: a
// rollback to a release whose image the node no longer holds pulls that digest and serves it;
// releases past the retention count leave the registry as they leave the node.
func TestARollbackPullsItsReleaseByDigest(t *testing.T) {
	owner, app, r, _ := liveHelloApp(t, "bydigest", "digest v1")
	_, v1 := currentRelease(t, owner, app.ID)
	if !strings.Contains(v1, "@sha256:") || !inRegistry(t, v1) {
		t.Fatalf("release 1 runs %q: want a digest reference the registry holds", v1)
	}
	r.commitMessage("digest v2")
	if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
		t.Fatalf("deploy v2: %+v", dep)
	}
	owner.waitIdle(t, app.ID)
	removeImage(t, v1) // as on a node that never ran release 1
	if status, raw := owner.rollback(t, app.ID, 1); status != http.StatusAccepted {
		t.Fatalf("rollback to 1: %d %s", status, raw)
	}
	if status, body, _ := platform.throughNginx(app.Name + ".apps.localhost"); status != http.StatusOK || body != "digest v1" {
		t.Errorf("after the rollback: %d %q, want release 1's answer", status, body)
	}
	if _, now := currentRelease(t, owner, app.ID); now != v1 {
		t.Errorf("the rollback runs %q, want release 1's digest %q", now, v1)
	}

	// The stack keeps 2 releases' images: two more deploys prune release 1's from the registry.
	for _, msg := range []string{"digest v3", "digest v4"} {
		r.commitMessage(msg)
		if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
			t.Fatalf("deploy %s: %+v", msg, dep)
		}
	}
	owner.waitIdle(t, app.ID)
	if inRegistry(t, v1) {
		t.Errorf("release 1's image %s is still in the registry after it was pruned", v1)
	}
}
