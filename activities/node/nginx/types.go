// Package nginx publishes applications through the node's own nginx: one server block per app,
// written atomically, checked with `nginx -t`, reloaded, and rolled back to the last good
// config when the check fails.
package nginx

import (
	"time"

	"github.com/skypanel/skypanel/activities/contract"
)

// PublishRouteInput routes Hostname to Upstreams ("127.0.0.1:PORT"). ReleaseID is sent back in
// the X-SkyPanel-Release response header, which is how the activity knows nginx really serves
// the new release before it returns.
// For a holding page (Mode stopped or suspended) ReleaseID names the operation that put it up.
type PublishRouteInput struct {
	AppID     string
	Hostname  string
	ReleaseID string
	Upstreams []string
	// Mode is what the host name serves: the app's upstreams (RouteServe), or a page instead
	// of them (RouteStopped, RouteSuspended).
	Mode RouteMode `json:",omitempty"`
	// Stopped and Suspended said it before Mode: inputs of workflow runs started earlier and
	// route files written by an older agent carry them. Read the mode with RouteMode().
	Stopped   bool `json:",omitempty"`
	Suspended bool `json:",omitempty"`
	// Drain is how long the route change waits for nginx's old workers to finish the requests
	// they still proxy to the previous upstreams (0: DefaultDrain; at most MaxDrain).
	Drain time.Duration `json:",omitempty"`
	// MaxConnections bounds the app's concurrent client connections on the node (0:
	// DefaultMaxConnections), so one slow app cannot hold every nginx worker connection; past
	// it nginx answers 429. ReadTimeout bounds the wait for the app's answer (0:
	// DefaultReadTimeout). Both at most the Max… bounds.
	MaxConnections int           `json:",omitempty"`
	ReadTimeout    time.Duration `json:",omitempty"`
	// Domains are the app's custom host names: each is served exactly as Hostname is.
	Domains []contract.Domain `json:",omitempty"`
}

// serverNames is the server_name list: the system host name, then the custom domains.
func (in PublishRouteInput) serverNames() string {
	names := in.Hostname
	for _, d := range in.Domains {
		names += " " + d.Hostname
	}
	return names
}

// SetRouteDomainsInput replaces the custom domains of the app's route, as it is published.
type SetRouteDomainsInput struct {
	AppID   string
	Domains []contract.Domain `json:",omitempty"`
}

// SetRouteDomainsResult says whether the node had a route for the app to change.
type SetRouteDomainsResult struct {
	Changed bool
}

// InstallCertificateInput brings a domain's certificate to the node that routes its app.
type InstallCertificateInput struct {
	AppID    string
	Hostname string
	// CertificatePEM is the leaf certificate, then its chain (lego's certificate bundle).
	CertificatePEM string
	// KeySealed is the certificate's private key (PEM), sealed for this node under its own key
	// with label secrets.CertificateKey(Hostname): the plaintext key is never in the activity's
	// input, so never in Temporal's history. The node opens it (Activities.Secrets).
	KeySealed string
}

// InstallCertificateResult says whether the node serves the certificate now: false when it has
// no route with the domain (or no HTTPS listener), and the files wait for one.
type InstallCertificateResult struct {
	Served bool
}

// RemoveCertificateInput removes a domain's certificate from the node (the domain was removed).
type RemoveCertificateInput struct {
	Hostname string
}

// Per-app proxy limits.
const (
	DefaultMaxConnections = contract.DefaultMaxConnections
	MaxMaxConnections     = 2048
	DefaultReadTimeout    = contract.DefaultReadTimeoutSeconds * time.Second
	MaxReadTimeout        = time.Hour
)

// connectionLimit and readTimeout are the route's limits with their defaults.
func (in PublishRouteInput) connectionLimit() int {
	if in.MaxConnections <= 0 {
		return DefaultMaxConnections
	}
	return in.MaxConnections
}

func (in PublishRouteInput) readTimeout() time.Duration {
	if in.ReadTimeout <= 0 {
		return DefaultReadTimeout
	}
	return in.ReadTimeout
}

// RouteMode is what a route serves.
type RouteMode string

const (
	// RouteServe proxies to the app's upstreams.
	RouteServe RouteMode = ""
	// RouteStopped answers 503 "this app is stopped" (StoppedText): its owner stopped it.
	RouteStopped RouteMode = "stopped"
	// RouteSuspended answers 402 (SuspendedText): its organization's wallet cannot pay.
	RouteSuspended RouteMode = "suspended"
)

// RouteMode is the route's mode, from Mode or, for a route said the older way, its bools.
func (in PublishRouteInput) RouteMode() RouteMode {
	switch {
	case in.Mode != RouteServe:
		return in.Mode
	case in.Suspended:
		return RouteSuspended
	case in.Stopped:
		return RouteStopped
	}
	return RouteServe
}

// Serves says whether the route proxies to upstreams (rather than showing a page).
func (in PublishRouteInput) Serves() bool { return in.RouteMode() == RouteServe }

// RemoveRouteInput removes the app's server block (on stop and delete).
type RemoveRouteInput struct {
	AppID string
	// Drain: as PublishRouteInput.Drain.
	Drain time.Duration `json:",omitempty"`
}
