package docker

import (
	"os"
	"path/filepath"
	"testing"
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
