package docker

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A refused fork is counted in the build's cgroup or in a RUN container's cgroup under it,
// depending on the kernel: both count.
func TestForkRefusalsCountsTheBuildAndItsContainers(t *testing.T) {
	dir := t.TempDir()
	container := filepath.Join(dir, "0123abcd")
	if err := os.MkdirAll(container, 0o755); err != nil {
		t.Fatal(err)
	}
	cg := &buildCgroup{events: filepath.Join(dir, "pids.events")}
	write := func(path, body string) {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(cg.events, "max 0\n")
	write(filepath.Join(container, "pids.events"), "max 0\n")
	if n := cg.forkRefusals(); n != 0 {
		t.Fatalf("no refusal yet: %d", n)
	}
	write(filepath.Join(container, "pids.events"), "max 560\n")
	if n := cg.forkRefusals(); n != 560 {
		t.Errorf("a refusal in the container's cgroup: %d, want 560", n)
	}
	write(cg.events, "max 2\n")
	if n := cg.forkRefusals(); n != 562 {
		t.Errorf("refusals in both: %d, want 562", n)
	}
}

// A build that runs past its time limit fails, naming the limit; the plan's limit in the input
// wins over the node's own.
func TestABuildPastItsTimeLimitFailsNamingIt(t *testing.T) {
	if l := (&Activities{BuildTimeout: time.Hour}).buildLimits(BuildImageInput{TimeoutSeconds: 120}); l.timeout != 2*time.Minute {
		t.Errorf("the plan's 120 s against the node's hour: %s", l.timeout)
	}
	if l := (&Activities{}).buildLimits(BuildImageInput{}); l.timeout != DefaultBuildTimeout {
		t.Errorf("no limit named: %s, want %s", l.timeout, DefaultBuildTimeout)
	}
	f := newFixture(t)
	f.a.BuildTimeout = 3 * time.Second
	dir := contextDir(t, "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sleep\", \"60\"]\n")
	copyFile(t, "/bin/busybox", filepath.Join(dir, "busybox"))
	err := f.run(t, f.a.BuildImage, BuildImageInput{AppID: f.appID, OrgID: f.orgID, DeploymentID: "dep-slow", ContextDir: dir,
		ImageTag: "skypanel-test/" + f.appID + ":slow"}, nil)
	// The step sleeps a minute: without the limit the build would succeed.
	wantAppError(t, err, ErrTypeBuildFailed, "ran longer than its time limit of 3s")
}
