// Package skypanel holds no code: this test keeps the house's two sides apart. The control
// plane (API, workflows' owner, Postgres) and the node (agent, Docker, nginx, git) meet only
// through Temporal and the wire types of activities/contract.
package skypanel

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/skypanel/skypanel/"

// importRule forbids packages matching from to import (directly) packages under any of banned.
type importRule struct {
	from   string // a package, or a tree ending in /...
	banned []string
	why    string
}

var importRules = []importRule{
	{"db", []string{module + "activities", module + "workflows", module + "apiserver", module + "temporal"},
		"the database layer serves every other package and depends on none of them"},
	{"workflows", []string{"github.com/jackc/pgx", module + "db"},
		"workflow code is deterministic and reaches state only through activities"},
	{"activities/control/...", []string{module + "activities/node"},
		"control-plane activities run in the control worker, never on a node"},
	{"activities/node/...", []string{module + "activities/control", module + "db", "github.com/jackc/pgx", module + "apiserver"},
		"node activities run in the agent, which holds no database access"},
	{"apiserver", []string{module + "activities/node", module + "worker-node"},
		"the API reaches nodes through workflows, never by linking their code"},
	{"activities/contract", []string{module}, "the wire types depend on nothing of the platform"},
	{"temporal/nodegateway", []string{module + "activities", module + "workflows", module + "apiserver", module + "worker-node"},
		"the node gateway checks and forwards nodes' calls: it runs no activity, workflow or API code"},
}

type listedPackage struct {
	ImportPath string
	Imports    []string
}

func TestImportRules(t *testing.T) {
	for _, rule := range importRules {
		out, err := exec.Command("go", "list", "-json=ImportPath,Imports", "./"+rule.from).Output()
		if err != nil {
			t.Fatalf("go list ./%s: %v", rule.from, err)
		}
		dec := json.NewDecoder(strings.NewReader(string(out)))
		listed := 0
		for dec.More() {
			var p listedPackage
			if err := dec.Decode(&p); err != nil {
				t.Fatal(err)
			}
			listed++
			for _, imp := range p.Imports {
				for _, banned := range rule.banned {
					if imp == banned || strings.HasPrefix(imp, strings.TrimSuffix(banned, "/")+"/") {
						t.Errorf("%s imports %s: %s", p.ImportPath, imp, rule.why)
					}
				}
			}
		}
		if listed == 0 {
			t.Errorf("rule %s matches no package: fix the rule", rule.from)
		}
	}
}
