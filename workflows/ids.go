package workflows

import (
	"fmt"
	"time"
)

// Workflow IDs are deterministic and double as idempotency keys: starting the same operation
// twice finds the run that exists. They are built here, beside the workflows they name, and
// only the operations owner (temporal/operations), billing and the API's read-only calls use
// them.

// DeployWorkflowID names the DeployApp run of one deployment.
func DeployWorkflowID(appID, deploymentID string) string {
	return fmt.Sprintf("deploy/%s/%s", appID, deploymentID)
}

// OperationWorkflowID names the run of an app operation other than a deploy: kind is the
// operation's (stop, start, restart, delete, scale, rollback, configure, domains, suspend, resume, heal, move), or
// "instances" for the read-only listing.
func OperationWorkflowID(kind, appID, operationID string) string {
	return fmt.Sprintf("%s/%s/%s", kind, appID, operationID)
}

// BillingRunWorkflowID names a billing run started by hand (the schedule names its own).
func BillingRunWorkflowID(runID string) string { return "billing/" + runID }

// SuspendOrganizationWorkflowID and ResumeOrganizationWorkflowID: at most one of each runs per
// organization at a time (a second start finds the running one).
func SuspendOrganizationWorkflowID(orgID string) string { return "suspend/" + orgID }
func ResumeOrganizationWorkflowID(orgID string) string  { return "resume/" + orgID }

// DrainNodeWorkflowID and EvacuateNodeWorkflowID name a node's drain (its apps moved off it
// while it runs) and evacuation (moved without asking it anything): at most one of each runs
// per node at a time (a second start while one runs is refused).
func DrainNodeWorkflowID(nodeID string) string    { return "drain/" + nodeID }
func EvacuateNodeWorkflowID(nodeID string) string { return "evacuate/" + nodeID }

// CertificateWorkflowID names one issuance (or renewal) of a custom domain's certificate:
// at is when the run that started it picked the domain, so each attempt has its own ID and
// the domain's attempts list together (prefix certificate/<hostname>/).
func CertificateWorkflowID(hostname string, at time.Time) string {
	return "certificate/" + hostname + "/" + at.UTC().Format("20060102T150405Z")
}
