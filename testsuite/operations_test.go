package testsuite

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
)

// accepted is the answer to an operation request.
type accepted struct {
	OperationID  string `json:"operation_id"`
	DeploymentID string `json:"deployment_id"`
	WorkflowID   string `json:"workflow_id"`
	Status       string `json:"status"`
	Position     int    `json:"position"`
}

// queuedOperation is one entry of GET .../operations.
type queuedOperation struct {
	ID           string `json:"id"`
	Kind         string `json:"kind"`
	Status       string `json:"status"`
	Position     int    `json:"position"`
	RequestedBy  string `json:"requested_by"`
	Reason       string `json:"reason"`
	WorkflowID   string `json:"workflow_id"`
	SupersededBy string `json:"superseded_by"`
}

// request sends an operation and expects it accepted (202).
func (c customer) request(t testing.TB, method, path string, body any) accepted {
	t.Helper()
	var out accepted
	status, raw := platform.call(method, path, c.token, body, &out)
	if status != http.StatusAccepted || out.OperationID == "" || out.WorkflowID == "" {
		t.Fatalf("%s %s: %d %s, want 202 with an operation", method, path, status, raw)
	}
	return out
}

func (c customer) queue(t testing.TB, appID string) []queuedOperation {
	t.Helper()
	var list struct{ Items []queuedOperation }
	if status, raw := platform.call(http.MethodGet, "/api/paas/applications/"+appID+"/operations", c.token, nil, &list); status != http.StatusOK {
		t.Fatalf("list operations: %d %s", status, raw)
	}
	return list.Items
}

func (c customer) operationByID(t testing.TB, appID, operationID string) queuedOperation {
	t.Helper()
	var op queuedOperation
	if status, raw := platform.call(http.MethodGet, "/api/paas/applications/"+appID+"/operations/"+operationID, c.token, nil, &op); status != http.StatusOK {
		t.Fatalf("get operation: %d %s", status, raw)
	}
	return op
}

// waitOperation waits until the operation has ended and returns it.
func (c customer) waitOperation(t testing.TB, appID, operationID string) queuedOperation {
	t.Helper()
	var op queuedOperation
	eventually(t, 4*time.Minute, "operation "+operationID+" ended", func() (bool, string) {
		op = c.operationByID(t, appID, operationID)
		return op.Status != "queued" && op.Status != "running", op.Kind + " " + op.Status
	})
	return op
}

// waitIdle waits until nothing waits or runs on the app.
func (c customer) waitIdle(t testing.TB, appID string) {
	t.Helper()
	eventually(t, 4*time.Minute, "the app's queue is empty", func() (bool, string) {
		q := c.queue(t, appID)
		return len(q) == 0, describeQueue(q)
	})
}

func describeQueue(q []queuedOperation) string {
	var parts []string
	for _, o := range q {
		parts = append(parts, o.Kind+":"+o.Status)
	}
	return strings.Join(parts, " ")
}

// workflowNeverStarted reports whether Temporal has no workflow of that id.
func workflowNeverStarted(t testing.TB, workflowID string) bool {
	t.Helper()
	_, err := platform.temporal.DescribeWorkflowExecution(context.Background(), workflowID, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return true
	}
	if err != nil {
		t.Fatalf("describe %s: %v", workflowID, err)
	}
	return false
}

// A config change, a scale and a deploy sent back to back are all accepted, wait in the app's
// queue in that order, and run in that order: the app ends at 3 instances serving the new
// commit with the new variable.
func TestConfigScaleAndDeployBackToBackRunInOrder(t *testing.T) {
	owner, app, r, _ := liveHelloApp(t, "inorder", "in order v1")
	host := app.Name + ".apps.localhost"
	r.commitMessage("in order v2")
	base := "/api/paas/applications/" + app.ID

	var config struct {
		OperationID string `json:"operation_id"`
		Status      string `json:"status"`
	}
	if status, raw := platform.call(http.MethodPut, base+"/env/GREETING", owner.token, map[string]string{"value": "hello queue"}, &config); status != http.StatusAccepted || config.OperationID == "" {
		t.Fatalf("config set: %d %s, want 202 with its rollout's operation", status, raw)
	}
	scale := owner.request(t, http.MethodPost, base+"/scale", map[string]int{"instances": 3})
	deploy := owner.request(t, http.MethodPost, base+"/deploy", nil)
	if scale.Status != "queued" || scale.Position < 1 || deploy.Position != scale.Position+1 {
		t.Errorf("behind the rollout: scale at %d, deploy at %d (%s, %s)", scale.Position, deploy.Position, scale.Status, deploy.Status)
	}
	q := owner.queue(t, app.ID)
	var ids []string
	for _, o := range q {
		ids = append(ids, o.ID)
	}
	want := []string{config.OperationID, scale.OperationID, deploy.OperationID}
	if strings.Join(ids, ",") != strings.Join(want, ",") || q[0].Status != "running" || q[0].Kind != "configure" ||
		q[1].Status != "queued" || q[1].Position != 1 || q[2].Kind != "deploy" || q[2].Position != 2 {
		t.Errorf("the queue while they wait: %s (%+v), want configure running, scale 1, deploy 2", describeQueue(q), q)
	}
	if q[0].RequestedBy == "" || !strings.Contains(q[0].RequestedBy, "@example.com") {
		t.Errorf("the queue does not say who asked: %q", q[0].RequestedBy)
	}

	var ends []queuedOperation
	for _, id := range want {
		ends = append(ends, owner.waitOperation(t, app.ID, id))
	}
	for _, op := range ends {
		if op.Status != "succeeded" {
			t.Fatalf("%s ended %s: %s", op.Kind, op.Status, op.Reason)
		}
	}
	started := func(id string) time.Time {
		var op struct {
			StartedAt  time.Time `json:"started_at"`
			FinishedAt time.Time `json:"finished_at"`
		}
		platform.call(http.MethodGet, base+"/operations/"+id, owner.token, nil, &op)
		return op.StartedAt
	}
	if a, b, c := started(want[0]), started(want[1]), started(want[2]); !a.Before(b) || !b.Before(c) {
		t.Errorf("started at %s, %s, %s: not in the order they were asked", a, b, c)
	}
	waitServes(t, host, "in order v2")
	if got := owner.getApp(t, app.ID); got.Instances != 3 || got.Status != "running" {
		t.Errorf("app %s with %d instances, want running with 3", got.Status, got.Instances)
	}
	if n := len(appContainers(t, app.ID)); n != 3 {
		t.Errorf("%d containers, want 3", n)
	}
	for range 6 { // every instance has the variable
		if status, body := platform.throughNginxPath(host, "/env/GREETING"); status != http.StatusOK || body != "hello queue" {
			t.Fatalf("GREETING through nginx: %d %q", status, body)
		}
	}
}

// Five deploys sent at an app while it deploys: each waiting one is superseded by the next, so
// only the newest builds after the running one; the superseded deployments name their
// successor, and the latest commit is served.
func TestABurstOfDeploysBuildsTwice(t *testing.T) {
	owner, app, r, first := liveHelloApp(t, "burst", "burst v1")
	host := app.Name + ".apps.localhost"
	base := "/api/paas/applications/" + app.ID
	r.commitMessage("burst v2")
	owner.request(t, http.MethodPost, base+"/deploy", nil) // the running one
	var burst []accepted
	for range 5 {
		burst = append(burst, owner.request(t, http.MethodPost, base+"/deploy", nil))
	}
	r.commitMessage("burst v3") // the newest deploy builds the branch's latest commit
	last := burst[len(burst)-1]
	if dep := owner.waitDeployment(t, app.ID, last.DeploymentID); dep.Status != "succeeded" {
		t.Fatalf("the newest deploy: %+v\n%s", dep, owner.logs(t, app.ID, last.DeploymentID))
	}
	waitServes(t, host, "burst v3")

	var list struct{ Items []deployment }
	platform.call(http.MethodGet, base+"/deployments", owner.token, nil, &list)
	built := 0
	for _, d := range list.Items {
		if d.ID != first.ID && d.CommitSHA != "" {
			built++
		}
	}
	if built > 2 {
		t.Errorf("%d deployments built after the burst, want at most 2 (the running one and the newest)", built)
	}
	for i, b := range burst[:len(burst)-1] {
		var dep struct {
			Status       string `json:"status"`
			SupersededBy string `json:"superseded_by"`
		}
		platform.call(http.MethodGet, base+"/deployments/"+b.DeploymentID, owner.token, nil, &dep)
		// The first of the burst may have started before the second arrived.
		if dep.Status == "superseded" && dep.SupersededBy != burst[i+1].DeploymentID {
			t.Errorf("deploy %d superseded by %q, want its successor %s", i+1, dep.SupersededBy, burst[i+1].DeploymentID)
		}
		if dep.Status != "superseded" && !(i == 0 && dep.Status == "succeeded") {
			t.Errorf("deploy %d of the burst ended %s, want superseded", i+1, dep.Status)
		}
		if workflowNeverStarted(t, b.WorkflowID) != (dep.Status == "superseded") {
			t.Errorf("deploy %d: %s, but its workflow started %v", i+1, dep.Status, !workflowNeverStarted(t, b.WorkflowID))
		}
	}
}

// Cancelling a waiting operation: it never runs. Cancelling a deploy while it builds: the
// build stops within seconds, the previous release serves throughout, and the deployment ends
// cancelled. Cancelling what cannot be cancelled answers 409.
func TestCancelAWaitingOperationAndABuildingDeploy(t *testing.T) {
	owner, app, _, _ := liveHelloApp(t, "cancel", "cancel v1")
	host := app.Name + ".apps.localhost"
	base := "/api/paas/applications/" + app.ID
	slow := sleepyBuildRepo(t, app.Name+"-slow", 90)
	if status, raw := platform.call(http.MethodPut, base, owner.token, map[string]string{"git_url": slow.URL}, nil); status != http.StatusOK {
		t.Fatalf("point the app at the slow build: %d %s", status, raw)
	}

	load := startLoadOn([]loadTarget{{host: host, body: "cancel v1"}}, 2)
	deploy := owner.request(t, http.MethodPost, base+"/deploy", nil)
	restart := owner.request(t, http.MethodPost, base+"/restart", nil)

	// The waiting restart: cancelled, it never runs.
	var cancelled struct {
		Status  string `json:"status"`
		Message string `json:"message"`
	}
	if status, raw := platform.call(http.MethodDelete, base+"/operations/"+restart.OperationID, owner.token, nil, &cancelled); status != http.StatusOK || cancelled.Status != "cancelled" {
		t.Fatalf("cancel the waiting restart: %d %s", status, raw)
	}
	if status, _ := platform.call(http.MethodDelete, base+"/operations/"+restart.OperationID, owner.token, nil, nil); status != http.StatusConflict {
		t.Errorf("cancelling it again: %d, want 409", status)
	}

	// The deploy, once its build is in its slow step.
	eventually(t, time.Minute, "the build reaches its slow step", func() (bool, string) {
		text := owner.logs(t, app.ID, deploy.DeploymentID)
		i := strings.Index(text, `"sleep"`)
		return i >= 0 && strings.Contains(text[i:], "Running in"), lastLine(text)
	})
	if status, raw := platform.call(http.MethodDelete, base+"/operations/"+deploy.OperationID, owner.token, nil, &cancelled); status != http.StatusAccepted {
		t.Fatalf("cancel the building deploy: %d %s, want 202", status, raw)
	}
	eventually(t, 30*time.Second, "the build's sleep is gone", func() (bool, string) {
		busy := buildSleeps(t)
		return busy == 0, "sleeping build steps: " + strings.Repeat("x", busy)
	})
	dep := owner.waitDeployment(t, app.ID, deploy.DeploymentID)
	if dep.Status != "cancelled" {
		t.Errorf("the cancelled deploy ended %s (%s), want cancelled", dep.Status, dep.FailureReason)
	}
	if op := owner.waitOperation(t, app.ID, deploy.OperationID); op.Status != "cancelled" {
		t.Errorf("its operation ended %s, want cancelled", op.Status)
	}
	if op := owner.operationByID(t, app.ID, restart.OperationID); op.Status != "cancelled" || !workflowNeverStarted(t, restart.WorkflowID) {
		t.Errorf("the cancelled restart: %s, and its workflow exists: %v", op.Status, !workflowNeverStarted(t, restart.WorkflowID))
	}
	if failed, total := load.finish(50); failed != 0 {
		t.Errorf("%d of %d requests failed while the deploy was cancelled: the previous release must serve throughout", failed, total)
	}
	waitServes(t, host, "cancel v1")

	// A restart that runs (or has just ended) cannot be cancelled.
	running := owner.request(t, http.MethodPost, base+"/restart", nil)
	if status, raw := platform.call(http.MethodDelete, base+"/operations/"+running.OperationID, owner.token, nil, nil); status != http.StatusConflict {
		t.Errorf("cancel a running restart: %d %s, want 409", status, raw)
	}
	owner.waitIdle(t, app.ID)
}

// buildSleeps counts the build steps running busybox sleep on the engine (the slow build's RUN
// step runs in a container of its own while the image builds).
func buildSleeps(t testing.TB) int {
	t.Helper()
	list, err := platform.docker.ContainerList(context.Background(), container.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range list {
		if c.State == "running" && strings.Contains(c.Command, "sleep") {
			n++
		}
	}
	return n
}

// A delete behind waiting operations cancels them: none of them runs, and nothing more is
// accepted after it.
func TestDeleteDropsTheQueueBehindIt(t *testing.T) {
	owner, app, _, _ := liveHelloApp(t, "dropq", "drop v1")
	base := "/api/paas/applications/" + app.ID
	owner.request(t, http.MethodPost, base+"/restart", nil) // runs at once
	scale := owner.request(t, http.MethodPost, base+"/scale", map[string]int{"instances": 2})
	deploy := owner.request(t, http.MethodPost, base+"/deploy", nil)
	del := owner.request(t, http.MethodDelete, base, nil)
	if status, raw := platform.call(http.MethodPost, base+"/restart", owner.token, nil, nil); status != http.StatusConflict || !strings.Contains(string(raw), "deleted") {
		t.Errorf("an operation after the delete: %d %s, want 409", status, raw)
	}
	for _, a := range []accepted{scale, deploy} {
		op := owner.operationByID(t, app.ID, a.OperationID)
		if op.Status != "cancelled" || op.Reason == "" {
			t.Errorf("%s behind the delete: %s %q, want cancelled with the reason", op.Kind, op.Status, op.Reason)
		}
	}
	owner.waitWorkflow(t, del.WorkflowID)
	if status, _ := platform.call(http.MethodGet, base, owner.token, nil, nil); status != http.StatusNotFound {
		t.Errorf("deleted app answers %d", status)
	}
	for _, a := range []accepted{scale, deploy} {
		if !workflowNeverStarted(t, a.WorkflowID) {
			t.Errorf("%s ran after being cancelled by the delete", a.WorkflowID)
		}
	}
}

// The API and the control worker stop while operations wait (the whole control plane, as a
// restart does): after it comes back, each waiting operation runs, once.
func TestQueuedOperationsRunOnceAfterTheControlPlaneRestarts(t *testing.T) {
	owner, app, _, _ := slowBuildApp(t, "restartq")
	base := "/api/paas/applications/" + app.ID
	scale := owner.request(t, http.MethodPost, base+"/scale", map[string]int{"instances": 2})
	restart := owner.request(t, http.MethodPost, base+"/restart", nil)
	if err := platform.terminate(); err != nil {
		t.Fatalf("the platform did not stop cleanly: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := platform.launch(ctx); err != nil {
		t.Fatalf("restart the platform: %v", err)
	}
	for _, a := range []accepted{scale, restart} {
		if op := owner.waitOperation(t, app.ID, a.OperationID); op.Status != "succeeded" {
			t.Errorf("%s after the restart: %s %s", op.Kind, op.Status, op.Reason)
		}
		// Exactly once: one run of its workflow.
		runs := workflowRuns(t, a.WorkflowID)
		if runs != 1 {
			t.Errorf("%s ran %d times, want once", a.WorkflowID, runs)
		}
	}
	if got := owner.getApp(t, app.ID); got.Instances != 2 || got.Status != "running" {
		t.Errorf("app %s with %d instances, want running with 2", got.Status, got.Instances)
	}
}

// workflowRuns counts the runs Temporal has of a workflow id.
func workflowRuns(t testing.TB, workflowID string) int {
	t.Helper()
	resp, err := platform.temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
		Query: "WorkflowId = '" + workflowID + "'",
	})
	if err != nil {
		t.Fatalf("list runs of %s: %v", workflowID, err)
	}
	return len(resp.Executions)
}

// An organization that can no longer pay while its app deploys: billing's suspension waits in
// the app's turn behind the running deploy, and suspends the app once the deploy has ended.
func TestSuspensionWaitsForTheRunningDeploy(t *testing.T) {
	owner := newCustomer(t, uniqueName("suspq")+"@example.com")
	plan := createPlan(t, uniqueName("repriced"), "Repriced", 1)
	slug := plan.Slug
	if status, raw := credit(t, owner.orgID, 1000, "suspq-"+slug); status != http.StatusCreated {
		t.Fatalf("credit: %d %s", status, raw)
	}
	name := uniqueName("suspq")
	r := newHelloRepo(t, name, "suspq v1")
	var app application
	if status, raw := platform.call(http.MethodPost, "/api/paas/applications", owner.token, map[string]string{
		"name": name, "runtime": "dockerfile", "plan": plan.Slug, "region": "local", "git_url": r.URL, "git_branch": "main",
	}, &app); status != http.StatusCreated {
		t.Fatalf("create app: %d %s", status, raw)
	}
	remember(&created.apps, app.ID)
	if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
		t.Fatalf("first deploy: %+v", dep)
	}
	owner.waitIdle(t, app.ID)
	base := "/api/paas/applications/" + app.ID
	slow := sleepyBuildRepo(t, name+"-slow", 8)
	if status, raw := platform.call(http.MethodPut, base, owner.token, map[string]string{"git_url": slow.URL}, nil); status != http.StatusOK {
		t.Fatalf("point the app at the slow build: %d %s", status, raw)
	}
	deploy := owner.request(t, http.MethodPost, base+"/deploy", nil)

	// The plan now costs more than the wallet holds for one period: the next billing run
	// suspends the organization while the deploy builds.
	if status, raw := platform.call(http.MethodPut, "/api/paas/admin/plans/"+plan.ID, platform.adminToken,
		planFields(slug, "Repriced", 100_000_000), nil); status != http.StatusOK {
		t.Fatalf("reprice: %d %s", status, raw)
	}
	var suspend queuedOperation
	eventually(t, 30*time.Second, "billing's suspension waits behind the deploy", func() (bool, string) {
		q := owner.queue(t, app.ID)
		for _, o := range q {
			if o.Kind == "suspend" {
				suspend = o
			}
		}
		return suspend.ID != "", describeQueue(q)
	})
	if suspend.Status != "queued" || suspend.RequestedBy != "billing" {
		t.Errorf("the suspension: %s by %q, want queued by billing", suspend.Status, suspend.RequestedBy)
	}
	if op := owner.operationByID(t, app.ID, deploy.OperationID); op.Status != "running" {
		t.Fatalf("the deploy is %s while the suspension waits, want running", op.Status)
	}
	if dep := owner.waitDeployment(t, app.ID, deploy.DeploymentID); dep.Status != "succeeded" {
		t.Errorf("the deploy ahead of the suspension: %s %s", dep.Status, dep.FailureReason)
	}
	if op := owner.waitOperation(t, app.ID, suspend.ID); op.Status != "succeeded" {
		t.Fatalf("the suspension: %s %s", op.Status, op.Reason)
	}
	var times struct {
		StartedAt  time.Time `json:"started_at"`
		FinishedAt time.Time `json:"finished_at"`
	}
	var deployTimes = times
	platform.call(http.MethodGet, base+"/operations/"+suspend.ID, owner.token, nil, &times)
	platform.call(http.MethodGet, base+"/operations/"+deploy.OperationID, owner.token, nil, &deployTimes)
	if times.StartedAt.Before(deployTimes.FinishedAt) {
		t.Errorf("the suspension started at %s, before the deploy ended at %s", times.StartedAt, deployTimes.FinishedAt)
	}
	host := app.Name + ".apps.localhost"
	if status, _, _ := platform.throughNginx(host); status != http.StatusPaymentRequired {
		t.Errorf("nginx answers %d for the suspended app, want 402", status)
	}
	if got := owner.getApp(t, app.ID); got.Status != "suspended" {
		t.Errorf("app %s, want suspended", got.Status)
	}
}

// Twenty operations may wait behind the running one; the next is refused with a problem that
// says so, and changes nothing.
func TestAFullQueueAnswers429(t *testing.T) {
	owner, app, _, _ := slowBuildApp(t, "fullq")
	base := "/api/paas/applications/" + app.ID
	for i := range 20 {
		if a := owner.request(t, http.MethodPost, base+"/restart", nil); a.Position != i+1 {
			t.Fatalf("restart %d waits at %d", i+1, a.Position)
		}
	}
	status, raw := platform.call(http.MethodPost, base+"/scale", owner.token, map[string]int{"instances": 2}, nil)
	if status != http.StatusTooManyRequests || !strings.Contains(string(raw), `"status":429`) || !strings.Contains(string(raw), "20 operations already wait") {
		t.Errorf("the 21st waiting operation: %d %s, want a 429 problem saying 20 wait", status, raw)
	}
	if q := owner.queue(t, app.ID); len(q) != 21 {
		t.Errorf("%d operations listed after the refusal, want 21 (the running deploy and 20 restarts)", len(q))
	}
	// A delete is still taken, and drops them all.
	del := owner.request(t, http.MethodDelete, base, nil)
	if q := owner.queue(t, app.ID); len(q) != 2 || q[1].Kind != "delete" {
		t.Errorf("after the delete: %s, want the running deploy and the delete", describeQueue(q))
	}
	owner.waitWorkflow(t, del.WorkflowID)
}
