package workernode

import (
	"os/exec"
	"strings"
	"testing"
)

// The agent is its own small binary on every node: it must not link the API server's HTTP
// framework or the control plane's database driver.
func TestAgentLinksNeitherHumaNorPgx(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/skypanel/skypanel/cmd/skypanel-agent").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list returned too little to judge: %v", deps)
	}
	for _, dep := range deps {
		for _, banned := range []string{"github.com/danielgtaylor/huma", "github.com/jackc/pgx", "github.com/skypanel/skypanel/apiserver", "github.com/skypanel/skypanel/db"} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("skypanel-agent links %s", dep)
			}
		}
	}
}
