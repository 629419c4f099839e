package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/skypanel/skypanel/activities/contract"
	"github.com/skypanel/skypanel/activities/node/nginx"
)

// UpdateAppDomains publishes the app's custom domains, as they are now, on the node that routes
// it: whatever the route serves (the release's instances, or the stopped or suspended page)
// answers on each of them once this ends. An app its node does not route yet (never deployed,
// or not placed) gets them with the route its next deploy or start publishes.
func UpdateAppDomains(ctx workflow.Context, in AppOperationInput) (err error) {
	defer endOperation(ctx, in.AppID, &err)
	t, err := loadTarget(ctx, in.AppID)
	if err != nil {
		return err
	}
	if t.NodeID == "" {
		return nil
	}
	if err := nodeOffline(t); err != nil {
		return err
	}
	var res nginx.SetRouteDomainsResult
	nodeCtx := nodeContext(ctx, t.NodeID, 2*time.Minute, 45*time.Second, 5)
	if err := workflow.ExecuteActivity(nodeCtx, nginxActs.SetRouteDomains, nginx.SetRouteDomainsInput{
		AppID: t.AppID, Domains: t.Domains,
	}).Get(ctx, &res); err != nil {
		return err
	}
	if !res.Changed {
		workflow.GetLogger(ctx).Info("the node routes nothing for the app yet: its domains come with its next route", "app_id", t.AppID)
		return nil
	}
	// A domain the node serves now can answer the CA's challenge: the certificates schedule
	// runs at once rather than at its next daily check.
	if needsCertificate(t.Domains) {
		if err := workflow.ExecuteActivity(controlContext(ctx), certActs.TriggerCheck).Get(ctx, nil); err != nil {
			// The daily check issues it anyway: the domains are published, which is this
			// operation's work.
			workflow.GetLogger(ctx).Warn("run the certificates schedule now", "app_id", t.AppID, "error", err)
		}
	}
	return nil
}

// needsCertificate tells whether a domain has none installed yet.
func needsCertificate(domains []contract.Domain) bool {
	for _, d := range domains {
		if !d.TLS {
			return true
		}
	}
	return false
}
