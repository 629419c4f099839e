// Package temporal holds SkyPanel's Temporal conventions: task queue names, search attributes,
// client options and the codec. Workflow IDs are built beside the workflows they name
// (workflows/ids.go).
package temporal

import (
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
	// SearchAttrDatabaseID is set on every operation of a managed database.
	SearchAttrDatabaseID = "SkyPanelDatabaseID"
	// SearchAttrOperation names platform-wide work: "billing", "suspend", "resume".
	SearchAttrOperation = "SkyPanelOperation"
)

// SearchAttributeNames lists the keyword search attributes the namespace must have.
var SearchAttributeNames = []string{SearchAttrAppID, SearchAttrOrgID, SearchAttrNodeID, SearchAttrOperation, SearchAttrDatabaseID}

// Typed keys of the search attributes, for workflows and the API.
var (
	AppIDKey      = sdktemporal.NewSearchAttributeKeyKeyword(SearchAttrAppID)
	OrgIDKey      = sdktemporal.NewSearchAttributeKeyKeyword(SearchAttrOrgID)
	NodeIDKey     = sdktemporal.NewSearchAttributeKeyKeyword(SearchAttrNodeID)
	OperationKey  = sdktemporal.NewSearchAttributeKeyKeyword(SearchAttrOperation)
	DatabaseIDKey = sdktemporal.NewSearchAttributeKeyKeyword(SearchAttrDatabaseID)
)

// CertificatesScheduleID is the Temporal Schedule that starts RenewCertificates (daily, and at
// once when a domain is added).
const CertificatesScheduleID = "skypanel-certificates"

// BillingScheduleID is the Temporal Schedule that starts BillingRun every period.
const BillingScheduleID = "skypanel-billing"
