// Package temporal holds SkyPanel's Temporal conventions: task queue names, workflow IDs,
// search attributes, client options and the dev-server launcher.
package temporal

import (
	"fmt"

	sdktemporal "go.temporal.io/sdk/temporal"
)

// ControlTaskQueue hosts every workflow and the control-plane activities (Postgres state).
const ControlTaskQueue = "control"

// NodeTaskQueue is the queue a node agent polls: every activity that touches that machine runs there.
func NodeTaskQueue(nodeID string) string { return "node-" + nodeID }

// Search attributes registered on the namespace so an admin finds any app's history in the UI.
const (
	SearchAttrAppID  = "SkyPanelAppID"
	SearchAttrOrgID  = "SkyPanelOrgID"
	SearchAttrNodeID = "SkyPanelNodeID"
	// SearchAttrOperation names platform-wide work: "billing", "suspend", "resume".
	SearchAttrOperation = "SkyPanelOperation"
)

// SearchAttributeNames lists the keyword search attributes the namespace must have.
var SearchAttributeNames = []string{SearchAttrAppID, SearchAttrOrgID, SearchAttrNodeID, SearchAttrOperation}

// DeployWorkflowID names the DeployApp run of one deployment. It doubles as an idempotency key:
// starting the same deployment twice finds the existing run.
func DeployWorkflowID(appID, deploymentID string) string {
	return fmt.Sprintf("deploy/%s/%s", appID, deploymentID)
}

// AppOperationWorkflowID names the run of a non-deploy operation (stop, start, restart, delete).
func AppOperationWorkflowID(operation, appID, operationID string) string {
	return fmt.Sprintf("%s/%s/%s", operation, appID, operationID)
}

// Typed keys of the search attributes, for workflows and the API.
var (
	AppIDKey     = sdktemporal.NewSearchAttributeKeyKeyword(SearchAttrAppID)
	OrgIDKey     = sdktemporal.NewSearchAttributeKeyKeyword(SearchAttrOrgID)
	NodeIDKey    = sdktemporal.NewSearchAttributeKeyKeyword(SearchAttrNodeID)
	OperationKey = sdktemporal.NewSearchAttributeKeyKeyword(SearchAttrOperation)
)

// BillingScheduleID is the Temporal Schedule that starts BillingRun every period.
const BillingScheduleID = "skypanel-billing"

// BillingRunWorkflowID names a billing run started by hand (the schedule names its own).
func BillingRunWorkflowID(runID string) string { return "billing/" + runID }

// SuspendOrganizationWorkflowID and ResumeOrganizationWorkflowID: at most one of each runs per
// organization at a time (a second start finds the running one).
func SuspendOrganizationWorkflowID(orgID string) string { return "suspend/" + orgID }
func ResumeOrganizationWorkflowID(orgID string) string  { return "resume/" + orgID }
