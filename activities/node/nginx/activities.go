package nginx

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/secrets"
)

// Error types of the non-retryable application errors this package returns.
const (
	ErrTypeInvalidInput       = "InvalidInput"
	ErrTypeRouteConfigInvalid = "RouteConfigInvalid"
	// ErrTypeSecretUnavailable: a certificate's sealed key cannot be opened on this node (no
	// node keys, a key the node does not have, a modified value, one sealed for another host
	// name). Retrying does not help. The same type as the docker activities' sealed values.
	ErrTypeSecretUnavailable = "SecretUnavailable"
)

// Activities publishes apps through the node's Router. Register a pointer with the node's worker.
type Activities struct {
	Router *Router
	// Secrets opens the certificates' keys, which reach the node sealed under its own key
	// (worker-node's node keys); nil: InstallCertificate fails with SecretUnavailable.
	Secrets NodeSecrets
}

// NodeSecrets opens a value sealed under this node's own key, bound to label (a secrets.*
// label function's result). A certificate's key travels sealed so that its plaintext is never
// in a Temporal payload, history or log.
type NodeSecrets interface {
	Open(ctx context.Context, sealed string, label []byte) ([]byte, error)
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

// InstallCertificate opens the sealed key and installs the certificate for in.Hostname (see
// Router.InstallCertificate): once it returns, a TLS handshake for the domain gets it.
func (a *Activities) InstallCertificate(ctx context.Context, in InstallCertificateInput) (InstallCertificateResult, error) {
	// The label binds the key to its host name: validate that first.
	if err := ValidateHostname(in.Hostname); err != nil {
		return InstallCertificateResult{}, asActivityError(err)
	}
	key, err := a.openKey(ctx, in.Hostname, in.KeySealed)
	if err != nil {
		return InstallCertificateResult{}, err
	}
	defer clear(key)
	served, err := a.Router.InstallCertificate(ctx, in.AppID, in.Hostname, []byte(in.CertificatePEM), key,
		func() { activity.RecordHeartbeat(ctx, "installing the certificate of "+in.Hostname) })
	return InstallCertificateResult{Served: served}, asActivityError(err)
}

// openKey opens a certificate's key with the node's keys. Errors name the host name and the
// cause, never the key.
func (a *Activities) openKey(ctx context.Context, hostname, sealed string) ([]byte, error) {
	if a.Secrets == nil {
		return nil, temporal.NewNonRetryableApplicationError(
			"this node has no way to open the certificate's key (no node keys)", ErrTypeSecretUnavailable, nil)
	}
	key, err := a.Secrets.Open(ctx, sealed, secrets.CertificateKey(hostname))
	switch {
	case err == nil:
		return key, nil
	case errors.Is(err, secrets.ErrMalformed), errors.Is(err, secrets.ErrTampered), errors.Is(err, secrets.ErrUnknownKey):
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("the key of the certificate of %s cannot be opened on this node: %s", hostname, secrets.Explain(err)),
			ErrTypeSecretUnavailable, err)
	}
	// The node's keys could not be fetched (the API unreachable): a retry may do.
	return nil, fmt.Errorf("open the key of the certificate of %s: %w", hostname, err)
}

// RemoveCertificate stops serving in.Hostname over HTTPS and deletes its certificate
// (idempotent).
func (a *Activities) RemoveCertificate(ctx context.Context, in RemoveCertificateInput) error {
	return asActivityError(a.Router.RemoveCertificate(ctx, in.Hostname,
		func() { activity.RecordHeartbeat(ctx, "removing the certificate of "+in.Hostname) }))
}

// asActivityError makes the user's mistakes non-retryable; other failures (nginx not running, a
// slow reload) may be retried.
func asActivityError(err error) error {
	var invalid *InvalidRouteError
	var badCertificate *InvalidCertificateError
	var rejected *ConfigTestError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &invalid):
		return temporal.NewNonRetryableApplicationError(invalid.Error(), ErrTypeInvalidInput, nil)
	case errors.As(err, &badCertificate):
		return temporal.NewNonRetryableApplicationError(badCertificate.Error(), ErrTypeInvalidInput, nil)
	case errors.As(err, &rejected):
		return temporal.NewNonRetryableApplicationError(rejected.Error(), ErrTypeRouteConfigInvalid, nil)
	}
	return err
}
