package workflows

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayRecordedHistories replays every history in testdata (recorded by TestRecordHistories,
// by the e2e tests with SKYPANEL_RECORD_HISTORIES=1, or by either at an older commit: see
// docs/testing.md) against the workflows of this tree. A change to a workflow that would break
// runs already in flight fails here; guard such a change with workflow.GetVersion, and record a
// history of each side of it.
//
// It also fails when the histories do not cover the workflows: a workflow of All without a
// history, or a GetVersion change without a history of each of its sides. A history shows a side
// when it went far enough past the GetVersion call for the sides to differ (showsSide): with
// the change's Version marker it shows that version, without it the DefaultVersion side. A
// history that stopped before that point proves nothing about the change.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no recorded histories in testdata")
	}
	summaries := map[string]historySummary{}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			history, err := readHistory(file)
			if err != nil {
				t.Fatal(err)
			}
			summary, err := summarizeHistory(history)
			if err != nil {
				t.Fatal(err)
			}
			if want := summary.fileName(); filepath.Base(file) != want {
				t.Errorf("named %s, but its content names it %s (docs/testing.md: Replay histories); rename it, or fix the copy of the naming scheme that recorded it",
					filepath.Base(file), want)
			}
			summaries[filepath.Base(file)] = summary
			replayer := worker.NewWorkflowReplayer()
			for _, wf := range All {
				replayer.RegisterWorkflow(wf)
			}
			// quietLogger: the replay's error says what diverged; the SDK's log of it (with its
			// stack trace) would only bury that line.
			if err := replayer.ReplayWorkflowHistory(quietLogger, history); err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("every workflow has a history", func(t *testing.T) {
		recorded := map[string]bool{}
		for _, s := range summaries {
			recorded[s.workflowType] = true
		}
		for _, wf := range All {
			if name := recordFuncName(wf); !recorded[name] {
				t.Errorf("no recorded history of %s: record one (docs/testing.md: Replay histories)", name)
			}
		}
	})

	t.Run("every GetVersion side has a history", func(t *testing.T) {
		changes, err := versionChanges(".")
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) == 0 {
			t.Fatal("found no workflow.GetVersion call in the workflows' source: the scan is broken")
		}
		for _, c := range changes {
			var sides []int
			if c.minSupported == int(workflow.DefaultVersion) {
				sides = append(sides, c.minSupported)
				for v := 1; v <= c.maxSupported; v++ {
					sides = append(sides, v)
				}
			} else {
				for v := c.minSupported; v <= c.maxSupported; v++ {
					sides = append(sides, v)
				}
			}
			shows, known := showsSide[c.changeID]
			if !known {
				t.Errorf("%s: GetVersion(%q) has no entry in showsSide: add one, and record a history of each side of it", c.pos, c.changeID)
				continue
			}
			for _, side := range sides {
				if files := historiesOfSide(summaries, c.changeID, side, shows); len(files) == 0 {
					t.Errorf("%s: GetVersion(%q) has no recorded history of its %s side (docs/testing.md: Replay histories)",
						c.pos, c.changeID, sideName(side))
				} else if testing.Verbose() {
					t.Logf("%s, %s side: %s", c.changeID, sideName(side), strings.Join(files, ", "))
				}
			}
		}
		for id := range showsSide {
			if !slices.ContainsFunc(changes, func(c versionChange) bool { return c.changeID == id }) {
				t.Errorf("showsSide[%q]: no workflow.GetVersion(%q) in the workflows any more: remove the entry", id, id)
			}
		}
	})
}

// showsSide tells, for each GetVersion change id, whether a history went far enough past the
// point where the workflow asks for that change's version for its sides to differ: a replay of
// it against code that took the other side fails. Such a history without the change's marker
// took the DefaultVersion side; one that stopped before proves nothing about the change.
var showsSide = map[string]func(historySummary) bool{
	// DeleteApp asks once DeleteApplicationRecord has succeeded: version 1 then settles the
	// app (SettleApp), the DefaultVersion side completes; a failed run that never settled may
	// have stopped before.
	"settle-on-delete": func(s historySummary) bool {
		return s.workflowType == "DeleteApp" && s.scheduled("DeleteApplicationRecord") &&
			(s.outcome == "completed" || s.scheduled("SettleApp"))
	},
	// StopApp asks right before its route step: version 1 publishes the stopped page
	// (PublishRoute), the DefaultVersion side removes the route (RemoveRoute).
	"stopped-page": func(s historySummary) bool {
		return s.workflowType == "StopApp" && (s.scheduled("PublishRoute") || s.scheduled("RemoveRoute"))
	},
	// DeployApp asks right before it returns its result: every completed deploy has asked.
	"prune-release-images": func(s historySummary) bool {
		return s.workflowType == "DeployApp" && s.outcome == "completed"
	},
	// DeployApp asks once PrepareDeployment has succeeded: version 1 then makes the network
	// (EnsureNetwork) beside the clone, the DefaultVersion side clones first.
	"network-during-build": func(s historySummary) bool {
		return s.workflowType == "DeployApp" && s.scheduled("CloneRepository")
	},
	// SuspendOrganization and ResumeOrganization ask once ListOrgApps has answered: version 1
	// queues each app's operation (QueueAppOperation), the DefaultVersion side locks the apps
	// (LockApp) and does the work itself.
	"queued-suspension": func(s historySummary) bool {
		return (s.workflowType == "SuspendOrganization" || s.workflowType == "ResumeOrganization") &&
			(s.scheduled("QueueAppOperation") || s.scheduled("LockApp"))
	},
	// SuspendOrganization and ResumeOrganization ask once they have queued the apps' operations
	// (on the queued-suspension=1 side only): version 1 then lists the organization's databases
	// (ListOrgDatabases) to queue theirs, the DefaultVersion side completes.
	"database-suspension": func(s historySummary) bool {
		return (s.workflowType == "SuspendOrganization" || s.workflowType == "ResumeOrganization") &&
			s.versions["queued-suspension"] == 1 && (s.outcome == "completed" || s.scheduled("ListOrgDatabases"))
	},
	// startInstances asks before it starts anything (only it schedules StartInstance), but the
	// sides differ only when instances started side by side finish apart: the old side waits
	// for every start, version 1 probes each instance as soon as it has started.
	"pipeline-ready": func(s historySummary) bool {
		return s.parallelApart["StartInstance"]
	},
}

// historiesOfSide lists the histories that show side of changeID.
func historiesOfSide(summaries map[string]historySummary, changeID string, side int, shows func(historySummary) bool) []string {
	var files []string
	for file, s := range summaries {
		v, marked := s.versions[changeID]
		if !marked {
			v = int(workflow.DefaultVersion)
		}
		if v == side && shows(s) {
			files = append(files, file)
		}
	}
	slices.Sort(files)
	return files
}

func sideName(side int) string {
	if side == int(workflow.DefaultVersion) {
		return "DefaultVersion"
	}
	return "version " + strconv.Itoa(side)
}

func readHistory(file string) (*historypb.History, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return client.HistoryFromJSON(f, client.HistoryJSONOptions{})
}

// versionChange is one workflow.GetVersion call of the workflows' source.
type versionChange struct {
	pos                        string
	changeID                   string
	minSupported, maxSupported int
}

// versionChanges finds every workflow.GetVersion call in the non-test Go files of dir. Its change
// id and versions must be literals (or workflow.DefaultVersion), so the test can read them.
func versionChanges(dir string) ([]versionChange, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	var changes []versionChange
	var problems []string
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			return nil, err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "GetVersion" {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "workflow" {
				return true
			}
			pos := fset.Position(call.Pos()).String()
			if len(call.Args) != 4 {
				problems = append(problems, pos+": GetVersion with "+strconv.Itoa(len(call.Args))+" arguments")
				return true
			}
			c := versionChange{pos: pos}
			var errs []error
			c.changeID, err = stringLiteral(call.Args[1])
			errs = append(errs, err)
			c.minSupported, err = versionLiteral(call.Args[2])
			errs = append(errs, err)
			c.maxSupported, err = versionLiteral(call.Args[3])
			errs = append(errs, err)
			for _, err := range errs {
				if err != nil {
					problems = append(problems, pos+": "+err.Error())
					return true
				}
			}
			changes = append(changes, c)
			return true
		})
	}
	if len(problems) > 0 {
		return changes, fmt.Errorf("GetVersion calls this test cannot read (use literals): %s", strings.Join(problems, "; "))
	}
	return changes, nil
}

func stringLiteral(e ast.Expr) (string, error) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", fmt.Errorf("the change id is not a string literal")
	}
	return strconv.Unquote(lit.Value)
}

func versionLiteral(e ast.Expr) (int, error) {
	if sel, ok := e.(*ast.SelectorExpr); ok && sel.Sel.Name == "DefaultVersion" {
		return int(workflow.DefaultVersion), nil
	}
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.INT {
		return 0, fmt.Errorf("a version is neither an int literal nor workflow.DefaultVersion")
	}
	return strconv.Atoi(lit.Value)
}
