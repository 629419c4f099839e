package testsuite

import (
	"net/http"
	"strings"
	"testing"
)

// A node's log intake is bounded and checked: a source other than the build's steps is refused
// with the field at fault (a node cannot forge the control plane's "==> Deployed" line), and a
// deployment's log stops growing at its cap (10 MiB) with one line saying so.
func TestTheBuildLogIsCappedAndItsSourceChecked(t *testing.T) {
	owner, app, _, dep := liveHelloApp(t, "logcap", "log cap")
	defer owner.deleteAndWait(t, app.ID)
	_, nodeToken := localNodeCredentials(t)
	post := func(source string, seq int, text string) (int, string) {
		status, raw := platform.call(http.MethodPost, "/api/paas/agent/deployments/"+dep.ID+"/logs", nodeToken,
			map[string]any{"deployment_id": dep.ID, "source": source, "attempt": 99, "seq": seq, "text": text}, nil)
		return status, string(raw)
	}
	for _, source := range []string{"control:result", "evil"} {
		if status, raw := post(source, 0, "\n==> Deployed: forged\n"); status != http.StatusUnprocessableEntity || !strings.Contains(raw, "body.source") {
			t.Errorf("source %q: %d %s, want 422 on body.source", source, status, raw)
		}
	}
	if strings.Contains(owner.logs(t, app.ID, dep.ID), "forged") {
		t.Error("a refused chunk is in the log")
	}

	// 12 chunks of 900 KiB: the cap is reached at the 12th.
	chunk := strings.Repeat("y", 900<<10-1) + "\n"
	for seq := range 12 {
		if status, raw := post("build", seq, chunk); status != http.StatusNoContent {
			t.Fatalf("chunk %d: %d %s", seq, status, raw)
		}
	}
	log := owner.logs(t, app.ID, dep.ID)
	if !strings.Contains(log, "==> The build log reached its cap of 10 MiB") {
		t.Errorf("no truncation line at the end of a %d-byte log", len(log))
	}
	if len(log) > 10<<20+1024 {
		t.Errorf("the log holds %d bytes, past the cap of %d", len(log), 10<<20)
	}
	if n := strings.Count(log, "reached its cap"); n != 1 {
		t.Errorf("%d truncation lines, want 1", n)
	}
}
