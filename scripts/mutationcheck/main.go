// Command mutationcheck proves that the tests guard what they claim to: it applies each known
// mutation (a behaviour removed from the code) to a scratch copy of the tree, runs the tests
// that guard it, and expects them to fail. A mutation the tests let through is "survived".
//
//	go run ./scripts/mutationcheck            every mutation
//	go run ./scripts/mutationcheck -list      the mutations, without running them
//	go run ./scripts/mutationcheck -only drain
//
// It never touches the working tree: the copy lives in a temporary directory. The Docker
// mutations need a Docker Engine (make deps starts one); the nginx ones need nginx.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// mutation removes one guarded behaviour: From (which must occur exactly once in File) becomes
// To, and `go test -run Run Package` must then fail.
type mutation struct {
	Name    string
	File    string
	From    string
	To      string
	Package string
	Run     string
}

var mutations = []mutation{
	{
		Name:    "route to an instance that never answered",
		File:    "workflows/rollout.go",
		From:    "errs[i] = workflow.ExecuteActivity(readyCtx, dockerActs.WaitReady, readyInput(name, started.HostPort)).Get(ctx, nil)",
		To:      "_ = workflow.ExecuteActivity(readyCtx, dockerActs.WaitReady, readyInput(name, started.HostPort)).Get(ctx, nil)",
		Package: "./workflows/", Run: "NeverAnswers|ConfigureAppThatFails",
	},
	{
		Name:    "drain the old instances although the new ones failed",
		File:    "workflows/rollout.go",
		From:    "\t\tremoveInstances(ctx, r.Target, r.Instances)\n\t\treturn err\n",
		To:      "\t\tremoveInstances(ctx, r.Target, r.Instances)\n\t\t_ = drainInstances(ctx, r.Target, r.Instances)\n\t\treturn err\n",
		Package: "./workflows/", Run: "NeverAnswers|ConfigureAppThatFails",
	},
	{
		Name:    "remove fresh instances after a scale-up",
		File:    "workflows/scale_app.go",
		From:    "err = publishRoute(ctx, t, t.ReleaseID, append(portsOf(serving), ports...))",
		To:      "err = publishRoute(ctx, t, t.ReleaseID, append(portsOf(serving), ports...))\n\t\t\tremoveInstances(ctx, t, names)",
		Package: "./workflows/", Run: "ScaleUp",
	},
	{
		Name:    "drop the settle-on-delete guard",
		File:    "workflows/app_operations.go",
		From:    `if workflow.GetVersion(ctx, "settle-on-delete", workflow.DefaultVersion, 1) == workflow.DefaultVersion {`,
		To:      `if false {`,
		Package: "./workflows/", Run: "Replay",
	},
	{
		Name:    "drop the stopped-page guard",
		File:    "workflows/app_operations.go",
		From:    `if workflow.GetVersion(ctx, "stopped-page", workflow.DefaultVersion, 1) == 1 {`,
		To:      `if true {`,
		Package: "./workflows/", Run: "Replay",
	},
	{
		Name:    "drop the prune-release-images guard",
		File:    "workflows/deploy_app.go",
		From:    `if workflow.GetVersion(ctx, "prune-release-images", workflow.DefaultVersion, 1) == 1 {`,
		To:      `if true {`,
		Package: "./workflows/", Run: "Replay",
	},
	{
		Name:    "drop the pipeline-ready guard",
		File:    "workflows/rollout.go",
		From:    `if workflow.GetVersion(ctx, "pipeline-ready", workflow.DefaultVersion, 1) == workflow.DefaultVersion {`,
		To:      `if false {`,
		Package: "./workflows/", Run: "Replay",
	},
	{
		Name:    "stop waiting for old nginx workers before stopping old instances",
		File:    "activities/node/nginx/drain.go",
		From:    "return waitGone(ctx, rl.master, rl.oldWorkers, drainLimit(drain), heartbeat)",
		To:      "return nil",
		Package: "./activities/node/nginx/", Run: "Drain",
	},
	{
		Name:    "Repoint overrides a newer release",
		File:    "activities/node/nginx/routes.go",
		From:    "err != nil || route.ReleaseID != release || !route.Serves() {",
		To:      "err != nil || !route.Serves() {",
		Package: "./activities/node/nginx/", Run: "Repoint",
	},
	{
		Name:    "reconcile routes to instances of another release",
		File:    "worker-node/reconcile.go",
		From:    `if inst.ReleaseID == release && inst.State == "running" && inst.HostPort > 0 {`,
		To:      `if inst.State == "running" && inst.HostPort > 0 {`,
		Package: "./worker-node/", Run: "Reconcile",
	},
	{
		Name:    "git inherits the agent's GIT_* environment",
		File:    "activities/node/gitclone/exec.go",
		From:    `if strings.HasPrefix(kv, "GIT_") || strings.HasPrefix(kv, "LC_ALL=")`,
		To:      `if strings.HasPrefix(kv, "LC_ALL=")`,
		Package: "./activities/node/gitclone/", Run: "GitEnv|InheritedGitConfig",
	},
	{
		Name:    "keep an organization's network after its last container left",
		File:    "activities/node/docker/remove.go",
		From:    "\ta.releaseOrgNetworks(ctx, orgs)\n",
		To:      "\t_ = orgs\n",
		Package: "./activities/node/docker/", Run: "LastContainerOfAnOrganization",
	},
	{
		Name:    "create a container without the organization's network lock",
		File:    "activities/node/docker/instance.go",
		From:    "\tl := a.networks.lock(in.OrgID)\n\tl.RLock()\n\tdefer l.RUnlock()\n\tif in.Network == OrgNetworkName(in.OrgID) {",
		To:      "\tif in.Network == OrgNetworkName(in.OrgID) {",
		Package: "./activities/node/docker/", Run: "NeverRemovedUnderAStartingInstance",
	},
	{
		Name:    "allocate a subnet another network holds",
		File:    "activities/node/docker/subnet_pool.go",
		From:    "if !t.Addr().Is4() || !t.Overlaps(p.Range) {",
		To:      "if true {",
		Package: "./activities/node/docker/", Run: "Allocate|Exhausted",
	},
	{
		Name:    "accept a pool that overlaps a host route",
		File:    "activities/node/docker/host_routes.go",
		From:    "if r.Destination.Overlaps(p.Range) {",
		To:      "if false {",
		Package: "./activities/node/docker/", Run: "PoolOverlappingAHostRoute",
	},
	{
		Name:    "a newer deploy leaves the waiting ones to build",
		File:    "db/operations.go",
		From:    "if err := endWaiting(ctx, tx, appID, op.ID, `kind = 'deploy'`",
		To:      "if err := endWaiting(ctx, tx, appID, op.ID, `false`",
		Package: "./db/", Run: "Supersedes",
	},
	{
		Name:    "a delete leaves the queue behind it to run",
		File:    "db/operations.go",
		From:    "if err := endWaiting(ctx, tx, appID, op.ID, `true`",
		To:      "if err := endWaiting(ctx, tx, appID, op.ID, `false`",
		Package: "./db/", Run: "DeleteDropsTheQueue",
	},
	{
		Name:    "an operation's turn comes without checking the app's state",
		File:    "db/operations.go",
		From:    "if refused := checkOperationAllowed(next.Kind, status, current != nil); refused != nil {",
		To:      "if refused := error(nil); refused != nil {",
		Package: "./db/", Run: "StateDoesNotAllow",
	},
	{
		Name:    "a cancel request does not stop the build",
		File:    "workflows/deploy_app.go",
		From:    "\t\tcancelBuild()\n",
		To:      "\t\t_ = cancelBuild\n",
		Package: "./workflows/", Run: "TestDeployApp",
	},
	{
		Name:    "a cancel is accepted while traffic switches",
		File:    "workflows/deploy_app.go",
		From:    "\tswitching = true\n",
		To:      "\tswitching = false\n",
		Package: "./workflows/", Run: "TestDeployApp",
	},
	{
		Name:    "heal on the first short report",
		File:    "temporal/convergence/convergence.go",
		From:    "\tif !seen || !first.After(app.ChangedAt) {\n\t\tc.shortSince[app.AppID] = app.ReportedAt\n\t\treturn nil\n\t}\n",
		To:      "\t_, _ = first, seen\n",
		Package: "./temporal/convergence/", Run: "TestChecker",
	},
	{
		Name:    "heal without end: no back-off",
		File:    "temporal/convergence/convergence.go",
		From:    "if max := c.maxHeals(); heals >= max {",
		To:      "if max := c.maxHeals(); heals >= max*100 {",
		Package: "./temporal/convergence/", Run: "TestChecker",
	},
	{
		Name:    "a heal routes only its new instances",
		File:    "workflows/heal_app.go",
		From:    "err = publishRoute(ctx, t, t.ReleaseID, append(portsOf(serving), ports...))",
		To:      "err = publishRoute(ctx, t, t.ReleaseID, ports)",
		Package: "./workflows/", Run: "TestHeal",
	},
	{
		Name:    "a heal starts the image it lost without rebuilding it",
		File:    "workflows/heal_app.go",
		From:    "\tif !present {\n",
		To:      "\tif false {\n",
		Package: "./workflows/", Run: "TestHeal",
	},
	{
		Name:    "the agent reports only the running instances",
		File:    "worker-node/reconcile.go",
		From:    "reported[i] = ReportedInstance{Name: inst.Name, ReleaseID: inst.ReleaseID, State: inst.State}",
		To:      "reported[i] = ReportedInstance{Name: inst.Name, ReleaseID: inst.ReleaseID, State: \"running\"}",
		Package: "./worker-node/", Run: "TestReconcileReports",
	},
	{
		Name:    "node liveness: a heartbeat of an online node records another online event",
		File:    "db/node_liveness.go",
		From:    "\t\tif was == \"online\" {\n",
		To:      "\t\tif false {\n",
		Package: "./db/", Run: "TestLivenessTransitions",
	},
	{
		Name:    "node liveness: concurrent sweeps each mark the node offline",
		File:    "db/node_liveness.go",
		From:    "WHERE n.liveness = 'online' AND NOT",
		To:      "WHERE NOT",
		Package: "./db/", Run: "TestLivenessTransitions",
	},
	{
		Name:    "node liveness: the offline window ignores the node's own interval",
		File:    "db/nodes.go",
		From:    "COALESCE(n.heartbeat_interval_seconds, %d)",
		To:      "%d",
		Package: "./db/", Run: "TestNodeRegistersOnce|TestLivenessTransitions",
	},
	{
		Name:    "node metrics: a point is its bucket's newest sample, not their average",
		File:    "db/node_metrics.go",
		From:    "round(avg(cpu_percent)::numeric, 2)",
		To:      "round(min(cpu_percent)::numeric, 2)",
		Package: "./db/", Run: "TestNodeMetricsAreDownsampled",
	},
	{
		Name:    "node admin: delete a node applications are placed on",
		File:    "db/node_admin.go",
		From:    "\t\tif apps > 0 {\n",
		To:      "\t\tif false {\n",
		Package: "./db/", Run: "TestDeleteNode",
	},
	{
		Name:    "registry gate: a node's token under another node's id",
		File:    "apiserver/registrygate/gate.go",
		From:    "\tcase nodeID != user:\n",
		To:      "\tcase false:\n",
		Package: "./apiserver/registrygate/", Run: "TestOnlyANodesOwnCredential",
	},
	{
		Name:    "registry gate: the node's credential forwarded to the registry",
		File:    "apiserver/registrygate/gate.go",
		From:    "\t\t\tr.Out.Header.Del(\"Authorization\")\n",
		To:      "",
		Package: "./apiserver/registrygate/", Run: "TestOnlyANodesOwnCredential",
	},
	{
		Name:    "codec: plaintext payloads decoded",
		File:    "temporal/codec/codec.go",
		From:    "\t\t\tif !c.opts.AllowPlaintext {\n",
		To:      "\t\t\tif false {\n",
		Package: "./temporal/codec/", Run: "TestDecodeRefuses|TestWorkersRefuse",
	},
	{
		Name:    "offline node: operations wait for the pickup timeout",
		File:    "workflows/app_operations.go",
		From:    "\tif t.NodeID == \"\" || t.NodeOffline == \"\" {\n",
		To:      "\tif true {\n",
		Package: "./workflows/", Run: "TestOperationsOnAnOfflineNode",
	},
	{
		Name:    "moves: a chosen destination is not reserved",
		File:    "db/placement.go",
		From:    "WHERE (a.node_id = n.id OR a.moving_to = n.id) AND a.status <> 'deleting'), 0)`",
		To:      "WHERE (a.node_id = n.id) AND a.status <> 'deleting'), 0)`",
		Package: "./db/", Run: "TestMovesReserve",
	},
	{
		Name:    "node admin: cordon or uncordon from any state",
		File:    "db/node_admin.go",
		From:    "\t\tif !slices.Contains(from, state) {\n",
		To:      "\t\tif slices.Contains(from, \"\") {\n",
		Package: "./db/", Run: "TestCordonAndUncordon",
	},
	{
		Name:    "node heartbeat: count every managed container of a shared engine",
		File:    "worker-node/agent.go",
		From:    "\t\tfilters.Arg(\"label\", docker.LabelNode+\"=\"+nodeID),\n",
		To:      "",
		Package: "./worker-node/", Run: "TestContainersAreCounted",
	},
	{
		Name:    "node heartbeat: CPU busy since boot, not since the previous heartbeat",
		File:    "worker-node/sysinfo.go",
		From:    "p := 100 * float64(cur.busy-prev.busy) / float64(cur.total-prev.total)",
		To:      "p := 100 * float64(cur.busy) / float64(cur.total)",
		Package: "./worker-node/", Run: "TestCPUPercent|TestHeartbeatReports",
	},
	{
		Name:    "node install: the script installs an agent whose checksum does not match",
		File:    "apiserver/install/install.sh",
		From:    `if [ "$actual" != "$AGENT_SHA256" ]; then`,
		To:      `if false; then`,
		Package: "./apiserver/", Run: "TestInstallScriptRefusesAWrongChecksum",
	},
	{
		Name:    "node install: the script goes on when the control plane refuses the token",
		File:    "apiserver/install/install.sh",
		From:    `if [ "$status" != 204 ]; then`,
		To:      `if false; then`,
		Package: "./apiserver/", Run: "TestInstallScriptStopsWhenTheTokenIsRefused",
	},
	{
		Name:    "node install: the token in the unit file",
		File:    "apiserver/install/install.sh",
		From:    "EnvironmentFile=$ENV_FILE",
		To:      "Environment=SKYPANEL_REGISTRATION_TOKEN=$TOKEN",
		Package: "./apiserver/", Run: "TestInstallScriptInstallsTheAgent",
	},
	{
		Name:    "node install: agent.env readable by others",
		File:    "apiserver/install/install.sh",
		From:    `chmod 0600 "$ROOT$ENV_FILE.new"`,
		To:      `chmod 0644 "$ROOT$ENV_FILE.new"`,
		Package: "./apiserver/", Run: "TestInstallScriptInstallsTheAgent",
	},
	{
		Name:    "node install: the token check ignores the region",
		File:    "apiserver/node_install.go",
		From:    "if in.Body.Region != node.Region {",
		To:      "if false {",
		Package: "./apiserver/", Run: "TestInstallCheck|TestInstallScriptStops",
	},
	{
		Name:    "node install: any string is a node host",
		File:    "apiserver/node_install.go",
		From:    `if b.Host != "" && !isNodeHost(b.Host) {`,
		To:      "if false {",
		Package: "./apiserver/", Run: "TestCreateNodeHost",
	},
	{
		Name:    "node install: an unknown region is created unasked",
		File:    "apiserver/node_install.go",
		From:    "\tif create {\n",
		To:      "\tif true {\n",
		Package: "./apiserver/", Run: "TestCreateNodeInAnUnknownRegion",
	},
	{
		Name:    "node install: the registration sends the platform keyring",
		File:    "apiserver/node_install.go",
		From:    "\t\tout.Body.NodeID, out.Body.NodeToken, out.Body.TaskQueue = node.ID, nodeToken, sptemporal.NodeTaskQueue(node.ID)\n",
		To:      "\t\tout.Body.NodeID, out.Body.NodeToken, out.Body.TaskQueue = node.ID, nodeToken+h.keyring.Spec(), sptemporal.NodeTaskQueue(node.ID)\n",
		Package: "./apiserver/", Run: "TestRegisterRefuses",
	},
	{
		Name:    "node install: an expired registration token registers",
		File:    "db/nodes.go",
		From:    "\t\tif expired {\n",
		To:      "\t\tif false {\n",
		Package: "./db/", Run: "TestExpiredRegistrationToken",
	},
	{
		Name:    "node install: a revoked node gets a registration token",
		File:    "db/nodes.go",
		From:    "if state == NodeRevoked {",
		To:      "if false {",
		Package: "./db/", Run: "TestRegistrationTokenOfAnUnknownOrRevokedNode",
	},
	{
		Name:    "node keys: a refused opening (app not placed here) is retried instead of failing",
		File:    "worker-node/node_secrets.go",
		From:    "\t\tif errors.As(err, &se) && !se.Temporary() {\n",
		To:      "\t\tif false {\n",
		Package: "./worker-node/", Run: "TestNodeSecretsOpenAppValues",
	},
	{
		Name:    "node keys: a leftover platform keyring is kept on the node",
		File:    "worker-node/registration.go",
		From:    "\tif err := os.Remove(path); err == nil {\n",
		To:      "\tif err := error(nil); err == nil {\n",
		Package: "./worker-node/", Run: "TestAnEarlierAgentsSavedKeyringIsRemoved",
	},
}

func main() {
	only := flag.String("only", "", "run only the mutations whose name contains this")
	list := flag.Bool("list", false, "list the mutations and the command that checks each")
	flag.Parse()
	selected := mutations[:0:0]
	for _, m := range mutations {
		if strings.Contains(m.Name, *only) {
			selected = append(selected, m)
		}
	}
	if *list {
		for _, m := range selected {
			fmt.Printf("- %s: %s, then go test -run '%s' %s\n", m.Name, m.File, m.Run, m.Package)
		}
		return
	}
	if err := run(selected); err != nil {
		fmt.Fprintln(os.Stderr, "mutationcheck:", err)
		os.Exit(1)
	}
}

func run(selected []mutation) error {
	scratch, err := copyTree()
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	killed := 0
	var problems []string
	for _, m := range selected {
		verdict, detail := check(scratch, m)
		fmt.Printf("%-9s %s (%s)\n", verdict, m.Name, m.File)
		if detail != "" {
			fmt.Printf("          %s\n", detail)
		}
		switch verdict {
		case "killed":
			killed++
		default:
			problems = append(problems, m.Name+": "+verdict)
		}
	}
	fmt.Printf("score: %d of %d mutations killed\n", killed, len(selected))
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// check applies m to the scratch tree, runs its tests and puts the file back.
func check(scratch string, m mutation) (string, string) {
	path := filepath.Join(scratch, m.File)
	original, err := os.ReadFile(path)
	if err != nil {
		return "error", err.Error()
	}
	if n := strings.Count(string(original), m.From); n != 1 {
		return "stale", fmt.Sprintf("the code to mutate occurs %d times (want 1): update the mutation", n)
	}
	defer os.WriteFile(path, original, 0o644) //nolint:errcheck
	if err := os.WriteFile(path, []byte(strings.Replace(string(original), m.From, m.To, 1)), 0o644); err != nil {
		return "error", err.Error()
	}
	began := time.Now()
	cmd := exec.Command("go", "test", "-count=1", "-run", m.Run, m.Package)
	cmd.Dir = scratch
	out, err := cmd.CombinedOutput()
	took := time.Since(began).Round(time.Second)
	switch {
	case strings.Contains(string(out), "[build failed]") || strings.Contains(string(out), "[setup failed]"):
		return "error", "the mutated code does not build: " + firstLines(string(out), 3)
	case err == nil:
		return "survived", fmt.Sprintf("go test -run '%s' %s passed (%s)", m.Run, m.Package, took)
	default:
		return "killed", fmt.Sprintf("%s (%s)", firstFailure(string(out)), took)
	}
}

// copyTree copies the tracked and untracked (not ignored) files of the working tree.
func copyTree() (string, error) {
	out, err := exec.Command("git", "ls-files", "-co", "--exclude-standard").Output()
	if err != nil {
		return "", fmt.Errorf("git ls-files: %w", err)
	}
	dir, err := os.MkdirTemp("", "skypanel-mutation-")
	if err != nil {
		return "", err
	}
	for _, f := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		raw, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue // deleted in the working tree
		}
		if err != nil {
			return dir, err
		}
		info, err := os.Stat(f)
		if err != nil {
			return dir, err
		}
		dst := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return dir, err
		}
		if err := os.WriteFile(dst, raw, info.Mode().Perm()); err != nil {
			return dir, err
		}
	}
	// The tests find the Temporal CLI and friends in bin/, which git ignores.
	if err := os.Symlink(filepath.Join(mustGetwd(), "bin"), filepath.Join(dir, "bin")); err != nil {
		return dir, err
	}
	return dir, nil
}

func mustGetwd() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return wd
}

// firstFailure is the first line that says what failed.
func firstFailure(out string) string {
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if strings.Contains(line, "_test.go:") {
			return truncate(line)
		}
	}
	return truncate(firstLines(out, 1))
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return truncate(strings.Join(lines, " | "))
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
