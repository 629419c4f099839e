package operations

import (
	"slices"
	"testing"

	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/workflows"
)

// Every kind starts a workflow the control worker registers, under the name the worker
// registers it by, with an input that names the app and the operation.
func TestEveryKindStartsARegisteredWorkflow(t *testing.T) {
	var registered []string
	for _, wf := range workflows.All {
		registered = append(registered, workflowName(wf))
	}
	for kind := range kinds {
		op, err := New(Request{OrgID: "org", AppID: "app-1", Kind: kind, UserID: "user"})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(registered, op.WorkflowType) {
			t.Errorf("%s starts %q, which the control worker does not register", kind, op.WorkflowType)
		}
		if op.ID == "" || op.WorkflowID == "" || op.RequestedBy != "user" || op.OncePerKind {
			t.Errorf("%s: %+v", kind, op)
		}
	}
	if name := workflowName(workflows.DeployApp); name != "DeployApp" {
		t.Errorf("workflowName(DeployApp) = %q", name)
	}
	if _, err := New(Request{Kind: "reboot"}); err == nil {
		t.Error("an unknown kind was accepted")
	}
}

// The platform's suspensions are queued once per app; a user's requests always queue.
func TestBillingOperationsAreOncePerKind(t *testing.T) {
	for _, kind := range []string{db.OpSuspend, db.OpResume} {
		op, _ := New(Request{AppID: "a", Kind: kind, Via: "billing"})
		if !op.OncePerKind || op.RequestedVia != "billing" {
			t.Errorf("%s by billing: %+v", kind, op)
		}
	}
	deploy, _ := New(Request{AppID: "a", Kind: db.OpDeploy, UserID: "u"})
	if deploy.OncePerKind || deploy.WorkflowID != "deploy/a/"+deploy.ID || deploy.RequestedVia != "api" {
		t.Errorf("a user's deploy: %+v", deploy)
	}
}
