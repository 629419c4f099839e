package apiserver

// Billing gates: what would make an organization run more answers 402 when its wallet cannot
// pay one billing period of what it already runs plus the request. Without them an empty or
// suspended wallet would run new apps for free until the next billing run suspends them.

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/activities/control/billing"
	"github.com/skypanel/skypanel/db"
)

// requireFunds answers 402 unless the organization's wallet pays one period of its running apps
// plus addedPerHour (price per instance-hour times instances). exclude names the app the request
// is about, whose own running cost is in addedPerHour.
func (s *Server) requireFunds(ctx context.Context, orgID string, addedPerHour int64, exclude string) error {
	f, err := s.store.CheckFunds(ctx, orgID, addedPerHour, s.billingPeriod(), exclude)
	if err != nil {
		return s.problem(ctx, "wallet", err)
	}
	if f.Enough() {
		return nil
	}
	s.log.InfoContext(ctx, "refused for funds", "org_id", orgID, "balance", f.Balance, "running_cost", f.RunningCost, "request_cost", f.RequestCost)
	return huma.NewError(http.StatusPaymentRequired, fmt.Sprintf(
		"the organization's balance (%d %s minor units) cannot pay one billing period (%s) of its running apps (%d) plus this request (%d): ask an administrator to credit the wallet",
		f.Balance, f.Currency, s.billingPeriod(), f.RunningCost, f.RequestCost))
}

// requireFundsFor gates an operation that would run the app with instances instances (its
// current count when 0): a deploy or start of an app that does not run, a scale up of one that
// does. A suspended or deleting app is left to the operation's own answer (409); fewer
// instances, or a scale of an app that does not run (it applies at its next start), never
// need funds.
func (s *Server) requireFundsFor(ctx context.Context, appID string, instances int) error {
	return s.requireFundsOf(ctx, principal(ctx).OrgID, appID, instances)
}

// requireFundsOf is requireFundsFor for an app of orgID (a push has no signed-in user).
func (s *Server) requireFundsOf(ctx context.Context, orgID, appID string, instances int) error {
	app, err := s.store.GetAppPricing(ctx, orgID, appID)
	if err != nil {
		return s.problem(ctx, "application", err)
	}
	if app.Status == db.AppSuspended || app.Status == db.AppDeleting {
		return nil
	}
	running := app.Status == db.AppRunning || app.Status == db.AppDeploying
	scaling := instances > 0
	if scaling && !running {
		return nil
	}
	if instances == 0 {
		instances = app.Instances
	}
	if running && instances <= app.Instances {
		return nil // nothing more runs: a redeploy, a restart, a scale down
	}
	return s.requireFunds(ctx, orgID, app.PricePerHourMinor*int64(instances), appID)
}

// billingPeriod is the billing run's period (billing.DefaultPeriod when unset).
func (s *Server) billingPeriod() time.Duration {
	if s.cfg.BillingPeriod <= 0 {
		return billing.DefaultPeriod
	}
	return s.cfg.BillingPeriod
}
