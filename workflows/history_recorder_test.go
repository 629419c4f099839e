package workflows

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	sptemporal "github.com/skypanel/skypanel/temporal"
)

// TestRecordHistories records a history of every workflow into testdata (see
// history_names_test.go for the file names), for TestReplayRecordedHistories. Without
// SKYPANEL_RECORD_HISTORIES=1 it only checks that it has a scenario for every workflow of All;
// recording needs SKYPANEL_RECORD_HISTORIES=1 and -v (it lists what it recorded):
//
//	SKYPANEL_RECORD_HISTORIES=1 go test -v -count=1 -run '^TestRecordHistories$' ./workflows/
//
// It starts a Temporal dev server (bin/temporal, or $SKYPANEL_TEMPORAL_CLI), runs the workflows
// of workflows.All on the control queue and fake activities (registered under the real activity
// names, on the control queue and on the fake node's queue) that answer what the real ones
// would on each workflow's usual path. $SKYPANEL_HISTORY_DIR overrides the output directory.
// A file that exists already is kept, never overwritten.
//
// The file depends on nothing but workflows.All, the activity names and their JSON fields, so
// it can be copied into a worktree of an older commit to record the histories of runs started
// before a workflow.GetVersion change (docs/testing.md).
func TestRecordHistories(t *testing.T) {
	scenarios := recordScenarios()
	for _, wf := range All {
		name := recordFuncName(wf)
		if !slices.ContainsFunc(scenarios, func(sc recordScenario) bool {
			return sc.workflow == name || slices.ContainsFunc(sc.also, func(c recordChild) bool { return c.workflow == name })
		}) {
			t.Errorf("the recorder has no scenario for %s: add one to recordScenarios", name)
		}
	}
	if os.Getenv("SKYPANEL_RECORD_HISTORIES") != "1" {
		return // records only when asked to (docs/testing.md, "Replay histories")
	}
	if !testing.Verbose() {
		t.Fatal("SKYPANEL_RECORD_HISTORIES=1 needs -v, so the files it records are listed: " +
			"SKYPANEL_RECORD_HISTORIES=1 go test -v -count=1 -run '^TestRecordHistories$' ./workflows/")
	}
	outDir := os.Getenv("SKYPANEL_HISTORY_DIR")
	if outDir == "" {
		outDir = "testdata"
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cli := os.Getenv("SKYPANEL_TEMPORAL_CLI")
	if cli == "" {
		cli = filepath.Join("..", "bin", "temporal")
	}
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("the Temporal CLI (make deps installs bin/temporal; or set SKYPANEL_TEMPORAL_CLI): %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var serverLog recordBuffer
	var attrArgs []string
	for _, name := range sptemporal.SearchAttributeNames {
		attrArgs = append(attrArgs, "--search-attribute", name+"=Keyword")
	}
	server, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  cli,
		ClientOptions: &client.Options{Namespace: "default", Logger: recordLogger},
		LogLevel:      "error",
		ExtraArgs:     attrArgs,
		Stdout:        &serverLog,
		Stderr:        &serverLog,
	})
	if err != nil {
		t.Fatalf("start the Temporal dev server %s: %v", cli, err)
	}
	defer func() {
		if err := server.Stop(); err != nil {
			t.Logf("stop the dev server: %v", err)
		}
	}()
	c := server.Client()

	fakes := &recordFakes{t: t}
	control := worker.New(c, sptemporal.ControlTaskQueue, worker.Options{})
	registered := map[string]bool{}
	for _, wf := range All {
		control.RegisterWorkflow(wf)
		registered[recordFuncName(wf)] = true
	}
	control.RegisterDynamicActivity(fakes.run, activity.DynamicRegisterOptions{})
	node := worker.New(c, sptemporal.NodeTaskQueue(recNodeID), worker.Options{})
	node.RegisterDynamicActivity(fakes.run, activity.DynamicRegisterOptions{})
	// The node a move takes the app to.
	otherNode := worker.New(c, sptemporal.NodeTaskQueue(recOtherNodeID), worker.Options{})
	otherNode.RegisterDynamicActivity(fakes.run, activity.DynamicRegisterOptions{})
	for _, w := range []worker.Worker{control, node, otherNode} {
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
	}

	replayer := worker.NewWorkflowReplayer()
	for _, wf := range All {
		replayer.RegisterWorkflow(wf)
	}
	var recorded, kept []string
	for _, sc := range scenarios {
		if !registered[sc.workflow] {
			t.Logf("%s: skipped, %s is not in this tree's workflows.All", sc.name, sc.workflow)
			continue
		}
		fakes.set(sc.fakes)
		runCtx, runCancel := context.WithTimeout(ctx, time.Minute)
		run, err := c.ExecuteWorkflow(runCtx, client.StartWorkflowOptions{
			ID: sc.id, TaskQueue: sptemporal.ControlTaskQueue, TypedSearchAttributes: sc.attrs,
		}, sc.workflow, sc.input)
		if err == nil {
			err = run.Get(runCtx, nil)
		}
		if (err != nil) != sc.fails {
			runCancel()
			t.Fatalf("%s: the run ended with %v, want failed=%v (dev server output: %s)", sc.name, err, sc.fails, serverLog.String())
		}
		for _, child := range sc.also {
			// A workflow the run started: wait until it is done, whatever its result.
			if err := c.GetWorkflow(runCtx, child.id, "").Get(runCtx, nil); runCtx.Err() != nil {
				runCancel()
				t.Fatalf("%s: %s did not close: %v", sc.name, child.id, err)
			}
		}
		if fakes.failed() {
			runCancel()
			t.FailNow() // a run that called an activity without a fake is not the usual path
		}
		for _, id := range append([]string{sc.id}, recordChildIDs(sc.also)...) {
			history, err := recordFetchHistory(runCtx, c, id)
			if err != nil {
				runCancel()
				t.Fatalf("%s: history of %s: %v", sc.name, id, err)
			}
			if err := replayer.ReplayWorkflowHistory(nil, history); err != nil {
				runCancel()
				t.Fatalf("%s: replay %s: %v", sc.name, id, err)
			}
			name, wrote, err := writeHistory(outDir, history)
			if err != nil {
				runCancel()
				t.Fatalf("%s: %v", sc.name, err)
			}
			if wrote {
				recorded = append(recorded, name)
				t.Logf("%s: recorded %s", sc.name, filepath.Join(outDir, name))
			} else {
				kept = append(kept, name)
				t.Logf("%s: %s exists already: kept", sc.name, filepath.Join(outDir, name))
			}
		}
		runCancel()
	}
	t.Logf("recorded %d new files in %s; %d histories of the same shape existed already and were kept", len(recorded), outDir, len(kept))
}

// writeHistory writes the history to dir under its scheme name unless that file exists; it
// reports whether it wrote.
func writeHistory(dir string, history *historypb.History) (string, bool, error) {
	name, err := historyFileName(history)
	if err != nil {
		return "", false, err
	}
	raw, err := protojson.MarshalOptions{Indent: "  "}.Marshal(history)
	if err != nil {
		return name, false, err
	}
	// O_EXCL: an existing history, of this code or of an older one, is never overwritten.
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return name, false, nil
	}
	if err != nil {
		return name, false, err
	}
	if _, err := f.Write(raw); err != nil {
		f.Close()
		return name, false, err
	}
	return name, true, f.Close()
}

func recordFetchHistory(ctx context.Context, c client.Client, workflowID string) (*historypb.History, error) {
	iter := c.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	history := &historypb.History{}
	for iter.HasNext() {
		event, err := iter.Next()
		if err != nil {
			return nil, err
		}
		history.Events = append(history.Events, event)
	}
	return history, nil
}

// recordFuncName is the workflow type Temporal registers a workflow function under.
func recordFuncName(fn any) string {
	full := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
	return full[strings.LastIndexByte(full, '.')+1:]
}

// The fake world the recorder's workflows run in: one organization with one app on one node.
const (
	recNodeID      = "5b0f8a2e-7c1d-4e59-9a36-0d2f4c8e1a01"
	recOtherNodeID = "6c1a9b3f-8d2e-4f6a-8b47-1e3a5d9f2b09"
	recOrgID       = "c41d9e07-2b6a-4f3c-8e15-7a9b0c3d2e02"
	recOtherOrgID  = "0e7a3b5c-9d14-4c82-b6f0-1a2d3e4f5a03"
	recAppID       = "9f2c6b1a-4e3d-4a57-8c90-b1d2e3f4a504"
	recDatabaseID  = "d8b0e6f2-5a4c-4b1e-9f3d-2c7a8e9b0d15"
	recBackupID    = "e9c1f7a3-6b5d-4c2f-8a4e-3d8b9f0c1e26"
	recBackupSHA   = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
	recDeployID    = "2d4f6a8c-1b3e-4d5f-a7c9-e0f1a2b3c405"
	recPrevDeploy  = "7e9a1c3b-5d2f-4b6e-8a0c-d1e2f3a4b506"
	recOperationID = "4a6c8e0f-2b4d-4f6a-9c1e-a3b5c7d9e107"
	recUserID      = "b8d0f2a4-6c8e-4a0c-b2d4-f6a8c0e2a408"
	recImagePrefix = "skypanel/app-" + recAppID + ":"
	// recCertPickedAt is when the recorded certificates check picked its domain.
	recCertPickedAt = "2026-11-30T12:00:00Z"
)

type recordScenario struct {
	name     string
	workflow string // workflow type
	id       string // workflow id, as the API names it
	input    map[string]any
	attrs    temporal.SearchAttributes
	fakes    map[string]recordFake // replaces the default fakes of these activities
	fails    bool                  // the run is meant to fail
	also     []recordChild         // workflows the run starts, to record as well
}

// recordChild is a workflow a scenario's run starts.
type recordChild struct{ workflow, id string }

func recordChildIDs(children []recordChild) []string {
	ids := make([]string, len(children))
	for i, c := range children {
		ids[i] = c.id
	}
	return ids
}

// recordFake answers one activity: its input as decoded JSON, its result encoded as JSON.
type recordFake func(in map[string]any) (any, error)

func recordScenarios() []recordScenario {
	appAttrs := temporal.NewSearchAttributes(sptemporal.AppIDKey.ValueSet(recAppID), sptemporal.OrgIDKey.ValueSet(recOrgID))
	op := func(workflow, kind string) recordScenario {
		return recordScenario{
			name: strings.ToLower(kind), workflow: workflow, id: kind + "/" + recAppID + "/" + recOperationID,
			input: map[string]any{"AppID": recAppID, "OperationID": recOperationID}, attrs: appAttrs,
		}
	}
	deploy := recordScenario{
		name: "deploy", workflow: "DeployApp", id: "deploy/" + recAppID + "/" + recDeployID,
		input: map[string]any{"AppID": recAppID, "DeploymentID": recDeployID}, attrs: appAttrs,
	}
	buildFailed := deploy
	buildFailed.name, buildFailed.fails = "deploy-build-failed", true
	buildFailed.id = "deploy/" + recAppID + "/" + recOperationID
	buildFailed.input = map[string]any{"AppID": recAppID, "DeploymentID": recOperationID}
	buildFailed.fakes = map[string]recordFake{"BuildImage": func(map[string]any) (any, error) {
		return nil, temporal.NewNonRetryableApplicationError("the build failed: RUN npm ci returned exit code 1", "BuildFailed", nil)
	}}

	scaleUp := op("ScaleApp", "scale")
	scaleUp.name = "scale-up"
	scaleUp.input["Instances"] = 3
	scaleDown := op("ScaleApp", "scale")
	scaleDown.name, scaleDown.id = "scale-down", "scale/"+recAppID+"/"+recDeployID
	scaleDown.input["Instances"] = 1
	scaleDown.fakes = map[string]recordFake{"ListInstances": func(map[string]any) (any, error) {
		return recListInstances(3), nil
	}}

	rollback := op("RollbackApp", "rollback")
	rollback.input["Version"] = 1
	rollback.input["UserID"] = recUserID

	configure := op("ConfigureApp", "configure")
	configure.input["UserID"] = recUserID
	configure.input["Description"] = "Set GREETING"

	domains := op("UpdateAppDomains", "domains")
	domains.fakes = map[string]recordFake{"LoadAppTarget": func(map[string]any) (any, error) {
		t := recTarget()
		t["Status"], t["Domains"] = "running", []map[string]any{{"Hostname": "www.example.com"}}
		return t, nil
	}}

	certificates := recordScenario{
		name: "certificates", workflow: "RenewCertificates", id: "certificates-" + recOperationID, input: map[string]any{},
		attrs: temporal.SearchAttributes{},
		also:  []recordChild{{"IssueCertificate", "certificate/www.example.com/20261130T120000Z"}},
	}

	list := op("ListAppInstances", "instances")
	list.input = map[string]any{"AppID": recAppID}
	list.attrs = temporal.SearchAttributes{}

	// Workflow IDs are spelt out (see workflows/ids.go): the recorder is copied into older
	// trees, where the builders lived elsewhere or did not exist.
	billing := recordScenario{
		name: "billing", workflow: "BillingRun", id: "billing/" + recOperationID, input: map[string]any{},
		attrs: temporal.SearchAttributes{},
		also:  []recordChild{{"SuspendOrganization", "suspend/" + recOrgID}, {"ResumeOrganization", "resume/" + recOtherOrgID}},
	}

	suspend, resume := op("SuspendApp", "suspend"), op("ResumeApp", "resume")

	// A heal of an app at 3 instances, 1 running and 1 crashing, whose image the node lost: it
	// rebuilds the image from the release's commit and starts 2.
	heal := op("HealApp", "heal")
	heal.input["Reason"] = "the node reported 1 of 3 instances running, 1 restarting, 1 missing"
	heal.fakes = map[string]recordFake{
		"PrepareHeal": func(map[string]any) (any, error) {
			plan := recTarget()
			plan["Instances"] = 3
			plan["AppStatus"], plan["GitURL"], plan["GitBranch"] = "running", "https://git.example.com/hello.git", "main"
			plan["CommitSHA"], plan["BuildLogID"] = "5f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6", recPrevDeploy
			return plan, nil
		},
		"ListInstances": func(map[string]any) (any, error) {
			list := recListInstances(2)
			crashing := list["Instances"].([]map[string]any)[1]
			crashing["state"], crashing["crashing"], crashing["exit_code"], crashing["last_output"] = "restarting", true, 4, "giving up\n"
			return list, nil
		},
		"ImagePresent": func(map[string]any) (any, error) { return false, nil },
		"PullImage":    func(map[string]any) (any, error) { return false, nil },
	}

	// A move of the running app (2 instances) off its node to the other one, and a drain of
	// the node that queues it (the fake queue answers the move's operation as succeeded).
	move := op("MoveApp", "move")
	move.input["FromNodeID"] = recNodeID
	move.fakes = map[string]recordFake{"LoadAppTarget": func(map[string]any) (any, error) {
		t := recTarget()
		t["Status"], t["Instances"] = "running", 2
		return t, nil
	}}
	drain := recordScenario{
		name: "drain", workflow: "DrainNode", id: "drain/" + recNodeID,
		input: map[string]any{"NodeID": recNodeID, "RequestedBy": recUserID},
		attrs: temporal.NewSearchAttributes(sptemporal.NodeIDKey.ValueSet(recNodeID), sptemporal.OperationKey.ValueSet("drain")),
	}

	// A PostgreSQL database provisioned on the node, and its deletion.
	dbOp := func(workflow, kind string) recordScenario {
		return recordScenario{
			name: "database-" + kind, workflow: workflow, id: "database-" + kind + "/" + recDatabaseID + "/" + recOperationID,
			input: map[string]any{"DatabaseID": recDatabaseID, "OperationID": recOperationID},
			attrs: temporal.NewSearchAttributes(sptemporal.DatabaseIDKey.ValueSet(recDatabaseID), sptemporal.OrgIDKey.ValueSet(recOrgID)),
		}
	}

	backup, restore := dbOp("BackupDatabase", "backup"), dbOp("RestoreDatabase", "restore")
	backup.input["BackupID"], restore.input["BackupID"] = recBackupID, recBackupID
	available := map[string]recordFake{"LoadDatabaseTarget": func(in map[string]any) (any, error) {
		t, _ := recDatabaseTarget()
		t["Status"] = "available"
		return t, nil
	}}
	backup.fakes, restore.fakes = available, available

	deleteFinal := dbOp("DeleteDatabase", "delete")
	deleteFinal.name, deleteFinal.input["BackupID"] = "database-delete-final", recBackupID
	deleteFinal.fakes = available

	// Billing's suspension of an available database and resumption of a suspended one.
	suspendDB, resumeDB := dbOp("SuspendDatabase", "suspend"), dbOp("ResumeDatabase", "resume")
	suspendDB.fakes = available
	resumeDB.fakes = map[string]recordFake{"LoadDatabaseTarget": func(in map[string]any) (any, error) {
		t, _ := recDatabaseTarget()
		t["Status"] = "suspended"
		return t, nil
	}}

	scheduled := recordScenario{
		name: "database-scheduled-backup", workflow: "ScheduledDatabaseBackup", id: "database-scheduled-backup/" + recDatabaseID,
		input: map[string]any{"DatabaseID": recDatabaseID},
		attrs: temporal.NewSearchAttributes(sptemporal.DatabaseIDKey.ValueSet(recDatabaseID), sptemporal.OrgIDKey.ValueSet(recOrgID)),
	}

	return []recordScenario{
		dbOp("ProvisionDatabase", "provision"), dbOp("DeleteDatabase", "delete"), deleteFinal, backup, restore, scheduled, suspendDB, resumeDB,
		deploy, buildFailed, suspend, resume,
		op("StartApp", "start"), op("RestartApp", "restart"), op("StopApp", "stop"), op("DeleteApp", "delete"),
		rollback, scaleUp, scaleDown, list, configure, billing, heal, move, drain, domains, certificates,
	}
}

// recDatabaseTarget is a PostgreSQL database as LoadDatabaseTarget returns it while it is
// provisioned.
func recDatabaseTarget() (map[string]any, error) {
	return map[string]any{"DatabaseID": recDatabaseID, "OrgID": recOrgID, "Name": "main", "NodeID": recNodeID,
		"User": "app", "DBName": "main", "PasswordSealed": "v1:k1:sealed-password", "CPUMillis": 500, "MemoryMB": 256, "StorageMB": 1024,
		"Status": "provisioning", "Engine": map[string]any{"Engine": "postgresql", "Version": "15", "Image": "postgres:15-bookworm",
			"Port": 5432, "DataDir": "/var/lib/postgresql/data", "HealthCommand": []string{"pg_isready"},
			"DumpCommand": []string{"pg_dump", "-Fc"}, "RestoreCommand": []string{"pg_restore"}, "CountCommand": []string{"psql"}}}, nil
}

// recTarget is the app as LoadAppTarget returns it: deployed, one instance serving.
func recTarget() map[string]any {
	return map[string]any{
		"AppID": recAppID, "OrgID": recOrgID, "Name": "hello", "NodeID": recNodeID,
		"Hostname": "hello.apps.localhost", "URL": "http://hello.apps.localhost:8088/",
		"CPUMillis": 250, "MemoryMB": 256, "Instances": 1, "DrainSeconds": 10,
		"Image": recImagePrefix + recPrevDeploy, "ReleaseID": recPrevDeploy,
		"CurrentInstance": "sp-hello-" + recPrevDeploy[:12], "RuntimeKind": "auto",
	}
}

func recListInstances(n int) map[string]any {
	instances := make([]map[string]any, n)
	for i := range instances {
		name := "sp-hello-" + recPrevDeploy[:12]
		if i > 0 {
			name += fmt.Sprintf("-%d", i+1)
		}
		instances[i] = map[string]any{
			"name": name, "release_id": recPrevDeploy, "state": "running", "host_port": 49100 + i, "healthy": true,
		}
	}
	return map[string]any{"Instances": instances}
}

// recInstanceDelay makes the nth instance of an operation (sp-hello-<12 characters of the
// operation id>-<n>) take (n-1)*step: instances started or probed side by side finish one after
// the other, each in its own workflow task, as real ones do. Only such a history tells starting
// every instance then probing every one (before pipeline-ready) from probing each as soon as it
// has started; and the steps (300 ms a start, 100 ms a probe) keep every completion apart, so a
// re-record has the same workflow tasks, hence the same name.
func recInstanceDelay(name string, step time.Duration) {
	if rest := strings.TrimPrefix(name, "sp-hello-"); len(rest) > 13 && rest[12] == '-' {
		if n, err := strconv.Atoi(rest[13:]); err == nil && n > 1 {
			time.Sleep(time.Duration(n-1) * step)
		}
	}
}

// recordFakes answers every activity the workflows call, the way the real ones do on the
// usual path. An activity it does not know fails the recording.
type recordFakes struct {
	t         *testing.T
	mu        sync.Mutex
	overrides map[string]recordFake
	nextPort  atomic.Int32
	unknown   []string
}

func (f *recordFakes) set(overrides map[string]recordFake) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.overrides = overrides
}

func (f *recordFakes) failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.unknown) > 0
}

func (f *recordFakes) run(ctx context.Context, args converter.EncodedValues) (any, error) {
	name := activity.GetInfo(ctx).ActivityType.Name
	in := map[string]any{}
	if args.HasValues() {
		if err := args.Get(&in); err != nil {
			return nil, temporal.NewNonRetryableApplicationError("decode the input of "+name+": "+err.Error(), "FakeInput", err)
		}
	}
	f.mu.Lock()
	fake, ok := f.overrides[name]
	if !ok {
		fake, ok = f.defaults()[name]
	}
	if !ok {
		f.unknown = append(f.unknown, name)
		f.t.Errorf("the recorder has no fake activity %s: add one to recordFakes.defaults", name)
	}
	f.mu.Unlock()
	if !ok {
		return nil, temporal.NewNonRetryableApplicationError("no fake activity "+name, "NoFake", nil)
	}
	return fake(in)
}

// defaults is every activity's fake; call with f.mu held.
func (f *recordFakes) defaults() map[string]recordFake {
	none := func(map[string]any) (any, error) { return nil, nil }
	return map[string]recordFake{
		// store (control queue)
		"PrepareDeployment": func(in map[string]any) (any, error) {
			plan := recTarget()
			plan["GitURL"], plan["GitBranch"] = "https://git.example.com/hello.git", "main"
			plan["ImageTag"] = recImagePrefix + fmt.Sprint(in["DeploymentID"])
			return plan, nil
		},
		"LoadAppTarget": func(map[string]any) (any, error) { return recTarget(), nil },
		"PrepareRollback": func(map[string]any) (any, error) {
			plan := recTarget()
			plan["Image"], plan["CommitSHA"] = recImagePrefix+recPrevDeploy, "5f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6"
			return plan, nil
		},
		"PruneReleaseImages": func(map[string]any) (any, error) {
			return map[string]any{"Images": []string{recImagePrefix + "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"}}, nil
		},
		"ListOrgApps":       func(map[string]any) (any, error) { return []string{recAppID}, nil },
		"LockApp":           func(map[string]any) (any, error) { return true, nil },
		"QueueAppOperation": func(map[string]any) (any, error) { return recOperationID, nil },
		"ChooseMoveDestination": func(map[string]any) (any, error) {
			return map[string]any{"NodeID": recOtherNodeID, "NodeName": "worker-2", "FromName": "worker-1"}, nil
		},
		"SwitchAppNode":  func(map[string]any) (any, error) { return true, nil },
		"BeginNodeDrain": none, "FinishNodeDrain": none,
		"ListNodeApps": func(map[string]any) (any, error) {
			return []map[string]any{{"OrgID": recOrgID, "AppID": recAppID, "Name": "hello"}}, nil
		},
		"QueueMove": func(map[string]any) (any, error) { return map[string]any{"OperationID": recOperationID}, nil },
		"ReadOperationState": func(map[string]any) (any, error) {
			return map[string]any{"Status": "succeeded", "Reason": "moved from node worker-1 to node worker-2 (1 instance of release " + recPrevDeploy + ", from its image)"}, nil
		},
		"LoadDatabaseTarget": func(map[string]any) (any, error) { return recDatabaseTarget() },
		"SetDatabaseStatus":  none, "ReleaseDatabaseOperation": none,
		"StartBackup": none, "FailBackup": none, "VerifyBackup": none,
		"EnsureBackupSchedule": none, "DeleteBackupSchedule": none,
		"QueueScheduledBackup": func(map[string]any) (any, error) { return recOperationID, nil },
		"PruneBackups":         func(map[string]any) (any, error) { return 1, nil },
		"PrepareRestore": func(map[string]any) (any, error) {
			return map[string]any{"SizeBytes": 2048, "SHA256": recBackupSHA}, nil
		},
		"BackupDatabase": func(map[string]any) (any, error) {
			return map[string]any{"SizeBytes": 2048, "SHA256": recBackupSHA}, nil
		},
		"RestoreDatabase": func(map[string]any) (any, error) { return map[string]any{"Restored": 3}, nil },
		"StartDatabase": func(map[string]any) (any, error) {
			return map[string]any{"ContainerID": "d0d0" + strings.Repeat("0", 60), "Host": "skypanel-db-" + recDatabaseID}, nil
		},
		"WaitDatabaseHealthy": none, "RemoveDatabase": none, "StopDatabase": none,
		"ListOrgDatabases":       func(map[string]any) (any, error) { return []string{recDatabaseID}, nil },
		"QueueDatabaseOperation": func(map[string]any) (any, error) { return recOperationID, nil },
		"RecordBuild":            none, "CompleteDeployment": none, "FailDeployment": none, "ReleaseOperation": none,
		"MarkAppRunning": none, "MarkAppStopped": none, "MarkAppSuspended": none, "DeleteApplicationRecord": none,
		"CompleteRollback": none, "SetInstanceCount": none, "CompleteConfigRelease": none, "ReplaceReleaseImage": none,
		// billing (control queue)
		"ChargeDuePeriods": func(in map[string]any) (any, error) {
			now, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(in["Now"]))
			return map[string]any{"Periods": 1, "Charges": 1, "BilledUntil": now.Truncate(time.Hour)}, nil
		},
		"WalletStandings": func(map[string]any) (any, error) {
			return map[string]any{"Suspend": []string{recOrgID}, "Resume": []string{recOtherOrgID}}, nil
		},
		"SettleApp": none,
		// git, docker and nginx (the node's queue)
		"CloneRepository": func(in map[string]any) (any, error) {
			return map[string]any{"Dir": "/var/lib/skypanel/builds/" + fmt.Sprint(in["DeploymentID"]), "CommitSHA": "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3"}, nil
		},
		"RemoveWorkdir": none,
		"BuildImage": func(map[string]any) (any, error) {
			return map[string]any{"ImageID": "sha256:3c2b1a09f8e7d6c5b4a3928170f6e5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c"}, nil
		},
		"EnsureNetwork": func(in map[string]any) (any, error) {
			return map[string]any{"Network": "skypanel-org-" + fmt.Sprint(in["OrgID"])}, nil
		},
		"StartInstance": func(in map[string]any) (any, error) {
			name := fmt.Sprint(in["InstanceName"])
			recInstanceDelay(name, 300*time.Millisecond)
			port := f.nextPort.Add(1)
			return map[string]any{"ContainerID": fmt.Sprintf("c0ffee%058d", port), "InstanceName": name, "HostPort": 49200 + port}, nil
		},
		"WaitReady": func(in map[string]any) (any, error) {
			recInstanceDelay(fmt.Sprint(in["InstanceName"]), 100*time.Millisecond)
			return nil, nil
		},
		"ListInstances": func(map[string]any) (any, error) { return recListInstances(1), nil },
		"ImagePresent":  func(map[string]any) (any, error) { return true, nil },
		"PullImage":     func(map[string]any) (any, error) { return true, nil },
		"RemoveInstances": func(map[string]any) (any, error) {
			return map[string]any{"Removed": []string{"sp-hello-" + recPrevDeploy[:12]}}, nil
		},
		"RemoveAppImages": none, "RemoveImages": none,
		"PublishRoute": none, "RemoveRoute": none,
		"SetRouteDomains": func(map[string]any) (any, error) { return map[string]any{"Changed": true}, nil },
		"TriggerCheck":    none,
		"CertificatesDue": func(map[string]any) (any, error) {
			return map[string]any{"Domains": []map[string]any{{"Hostname": "www.example.com", "AppID": recAppID, "NodeID": recNodeID, "PickedAt": recCertPickedAt}}}, nil
		},
		"PrepareCertificate": func(map[string]any) (any, error) {
			return map[string]any{"Hostname": "www.example.com", "AppID": recAppID, "NodeID": recNodeID, "DirectoryURL": "https://ca.example/dir",
				"AccountKeySealed": "v1:k1:sealed-account", "CertKeySealed": "v1:k1:sealed-cert"}, nil
		},
		"ObtainCertificate": func(map[string]any) (any, error) {
			return map[string]any{"CertificatePEM": "-----BEGIN CERTIFICATE-----", "Serial": "ab12", "AccountURI": "https://ca.example/acct/1",
				"NotBefore": "2026-11-30T00:00:00Z", "NotAfter": "2027-02-28T00:00:00Z", "KeySealedForNode": "v1:n1:node-sealed"}, nil
		},
		"RecordCertificate":  none,
		"InstallCertificate": func(map[string]any) (any, error) { return map[string]any{"Served": true}, nil },
	}
}

// recordLogger keeps the SDK's log lines (one per activity and workflow task) out of the
// recorder's output.
var recordLogger = log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))

// recordBuffer keeps the dev server's output for an error message; the server writes it while
// the test may read it.
type recordBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *recordBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *recordBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
