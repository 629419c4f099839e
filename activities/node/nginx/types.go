// Package nginx publishes applications through the node's own nginx: one server block per app,
// written atomically, checked with `nginx -t`, reloaded, and rolled back to the last good
// config when the check fails.
package nginx

import "time"

// PublishRouteInput routes Hostname to Upstreams ("127.0.0.1:PORT"). ReleaseID is sent back in
// the X-SkyPanel-Release response header, which is how the activity knows nginx really serves
// the new release before it returns.
type PublishRouteInput struct {
	AppID     string
	Hostname  string
	ReleaseID string
	Upstreams []string
	// Stopped routes the host name to a 503 "this app is stopped" page instead of upstreams.
	Stopped bool `json:",omitempty"`
	// Suspended (with Stopped) answers 402 "this app is suspended" instead: billing's page.
	Suspended bool `json:",omitempty"`
	// Drain is how long the route change waits for nginx's old workers to finish the requests
	// they still proxy to the previous upstreams (0: DefaultDrain; at most MaxDrain).
	Drain time.Duration `json:",omitempty"`
}

// RemoveRouteInput removes the app's server block (on stop and delete).
type RemoveRouteInput struct {
	AppID string
	// Drain: as PublishRouteInput.Drain.
	Drain time.Duration `json:",omitempty"`
}
