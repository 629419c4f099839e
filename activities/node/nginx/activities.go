package nginx

import (
	"context"
	"errors"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// Error types of the non-retryable application errors this package returns.
const (
	ErrTypeInvalidInput       = "InvalidInput"
	ErrTypeRouteConfigInvalid = "RouteConfigInvalid"
)

// Activities publishes apps through the node's Router. Register a pointer with the node's worker.
type Activities struct {
	Router *Router
}

// PublishRoute points in.Hostname at in.Upstreams and returns once nginx serves in.ReleaseID.
func (a *Activities) PublishRoute(ctx context.Context, in PublishRouteInput) error {
	err := a.Router.Publish(ctx, in, func() { activity.RecordHeartbeat(ctx, "publishing "+in.Hostname) })
	return asActivityError(err)
}

// SetRouteDomains replaces the custom domains of the app's route and returns once nginx serves
// each of them; Changed is false when the node has no route for the app.
func (a *Activities) SetRouteDomains(ctx context.Context, in SetRouteDomainsInput) (SetRouteDomainsResult, error) {
	changed, err := a.Router.SetDomains(ctx, in.AppID, in.Domains, func() { activity.RecordHeartbeat(ctx, "setting domains") })
	return SetRouteDomainsResult{Changed: changed}, asActivityError(err)
}

// RemoveRoute stops serving the app's host name (idempotent).
func (a *Activities) RemoveRoute(ctx context.Context, in RemoveRouteInput) error {
	return asActivityError(a.Router.Remove(ctx, in.AppID, in.Drain, func() { activity.RecordHeartbeat(ctx, "removing route") }))
}

// asActivityError makes the user's mistakes non-retryable; other failures (nginx not running, a
// slow reload) may be retried.
func asActivityError(err error) error {
	var invalid *InvalidRouteError
	var rejected *ConfigTestError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &invalid):
		return temporal.NewNonRetryableApplicationError(invalid.Error(), ErrTypeInvalidInput, nil)
	case errors.As(err, &rejected):
		return temporal.NewNonRetryableApplicationError(rejected.Error(), ErrTypeRouteConfigInvalid, nil)
	}
	return err
}
