package nginx

// Routes: one site file per app, written, checked and loaded by the master (master.go).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/skypanel/skypanel/activities/contract"
)

// Publish validates the route, writes the app's server block, checks and loads it, then waits
// until nginx answers for the host name with the release's header. heartbeat (may be nil) is
// called while it waits.
func (r *Router) Publish(ctx context.Context, in PublishRouteInput, heartbeat func()) error {
	if err := validateRoute(in); err != nil {
		return err
	}
	reloaded, err := r.publish(ctx, in)
	if err != nil {
		return err
	}
	if err := r.waitHeader(ctx, in.Hostname, ReleaseHeader, in.ReleaseID, heartbeat); err != nil {
		return err
	}
	return reloaded.drain(ctx, in.Drain, heartbeat)
}

// routePath keeps, beside an app's site file, the route it was rendered from (the name does not
// match sites/*.conf), so the node can check it against what runs.
func (r *Router) routePath(app string) string {
	return filepath.Join(r.sitesDir(), "app-"+app+".route.json")
}

func (r *Router) publish(ctx context.Context, in PublishRouteInput) (reload, error) {
	r.routeMu.Lock()
	defer r.routeMu.Unlock()
	reloaded, err := r.apply(ctx, in.AppID, r.render(in))
	if err != nil {
		return reload{}, err
	}
	return reloaded, r.saveRoute(in)
}

// render is the app's site as nginx should serve it now. A domain is served over HTTPS when
// the route says it has a certificate (TLS) and the certificate's files are on this node: a
// route published on a node that has no files yet (a new node, a moved app) must not fail
// nginx -t, and the InstallCertificate that brings them renders the route again.
func (r *Router) render(in PublishRouteInput) []byte {
	tls := map[string]bool{}
	for _, d := range in.Domains {
		if d.TLS && r.hasCertificate(d.Hostname) {
			tls[d.Hostname] = true
		}
	}
	return []byte(renderSite(r.listeners, in, tls))
}

// readRoute is the app's route as last published; found is false when the node has none.
func (r *Router) readRoute(appID string) (route PublishRouteInput, found bool, err error) {
	raw, err := os.ReadFile(r.routePath(appID))
	if errors.Is(err, fs.ErrNotExist) {
		return PublishRouteInput{}, false, nil
	}
	if err == nil {
		err = json.Unmarshal(raw, &route)
	}
	if err != nil {
		return PublishRouteInput{}, false, fmt.Errorf("read route of app %s: %w", appID, err)
	}
	return route, true, nil
}

func (r *Router) saveRoute(in PublishRouteInput) error {
	raw, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return writeFileAtomic(r.routePath(in.AppID), raw, 0o600)
}

// Routes returns every route this node serves, as last published.
func (r *Router) Routes() ([]PublishRouteInput, error) {
	paths, err := filepath.Glob(filepath.Join(r.sitesDir(), "app-*.route.json"))
	if err != nil {
		return nil, err
	}
	var routes []PublishRouteInput
	for _, path := range paths {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue // removed meanwhile
		}
		var in PublishRouteInput
		if err := json.Unmarshal(raw, &in); err != nil || validateRoute(in) != nil {
			slog.Warn("ignoring an unreadable route file", "path", path)
			continue
		}
		routes = append(routes, in)
	}
	return routes, nil
}

// Repoint replaces the upstreams of an app's route, but only while the route still serves
// release: a deploy that published another release meanwhile wins. It reports whether it
// changed anything.
func (r *Router) Repoint(ctx context.Context, appID, release string, upstreams []string) (bool, error) {
	changed, reloaded, drain, err := r.repoint(ctx, appID, release, upstreams)
	if err != nil || !changed {
		return changed, err
	}
	return true, reloaded.drain(ctx, drain, nil)
}

func (r *Router) repoint(ctx context.Context, appID, release string, upstreams []string) (bool, reload, time.Duration, error) {
	r.routeMu.Lock()
	defer r.routeMu.Unlock()
	raw, err := os.ReadFile(r.routePath(appID))
	if err != nil {
		return false, reload{}, 0, nil // the route is gone
	}
	var route PublishRouteInput
	if err := json.Unmarshal(raw, &route); err != nil || route.ReleaseID != release || !route.Serves() {
		return false, reload{}, 0, nil
	}
	route.Upstreams = upstreams
	if err := validateRoute(route); err != nil {
		return false, reload{}, 0, err
	}
	reloaded, err := r.apply(ctx, appID, r.render(route))
	if err != nil {
		return false, reload{}, 0, err
	}
	return true, reloaded, route.Drain, r.saveRoute(route)
}

// SetDomains replaces the custom domains of the app's route, whatever it serves (its release,
// or its stopped or suspended page), and waits until nginx answers on each of them with the
// route's release. It reports false when the node has no route for the app: the app's next
// publish brings its domains.
func (r *Router) SetDomains(ctx context.Context, appID string, domains []contract.Domain, heartbeat func()) (bool, error) {
	route, changed, err := r.setDomains(ctx, appID, domains)
	if err != nil || !changed {
		return changed, err
	}
	for _, d := range route.Domains {
		if err := r.waitHeader(ctx, d.Hostname, ReleaseHeader, route.ReleaseID, heartbeat); err != nil {
			return true, err
		}
	}
	return true, nil
}

func (r *Router) setDomains(ctx context.Context, appID string, domains []contract.Domain) (PublishRouteInput, bool, error) {
	if err := validateSlug("app id", appID); err != nil {
		return PublishRouteInput{}, false, err
	}
	r.routeMu.Lock()
	defer r.routeMu.Unlock()
	route, found, err := r.readRoute(appID)
	if err != nil || !found {
		return PublishRouteInput{}, false, err
	}
	previous := route.Domains
	route.Domains = domains
	if err := validateRoute(route); err != nil {
		return PublishRouteInput{}, false, err
	}
	// Nothing is drained: the upstreams stay as they are.
	if _, err := r.apply(ctx, appID, r.render(route)); err != nil {
		return PublishRouteInput{}, false, err
	}
	if err := r.saveRoute(route); err != nil {
		return PublishRouteInput{}, false, err
	}
	r.removeDroppedCertificates(ctx, previous, domains)
	return route, true, nil
}

// Remove deletes the app's server block (an app with none is fine), then waits up to drain for
// the requests nginx's old workers still proxy to the app.
func (r *Router) Remove(ctx context.Context, appID string, drain time.Duration, heartbeat func()) error {
	if err := validateSlug("app id", appID); err != nil {
		return err
	}
	reloaded, err := r.remove(ctx, appID)
	if err != nil {
		return err
	}
	return reloaded.drain(ctx, drain, heartbeat)
}

func (r *Router) remove(ctx context.Context, appID string) (reload, error) {
	r.routeMu.Lock()
	defer r.routeMu.Unlock()
	reloaded, err := r.apply(ctx, appID, nil)
	if err != nil {
		return reload{}, err
	}
	if err := os.Remove(r.routePath(appID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return reload{}, fmt.Errorf("remove route of app %s: %w", appID, err)
	}
	return reloaded, nil
}

// apply replaces (content != nil) or removes the app's site file, tests the whole config and
// reloads; a config nginx rejects is rolled back and returned as *ConfigTestError.
func (r *Router) apply(ctx context.Context, appID string, content []byte) (reload, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	restore, err := r.writeSite(ctx, appID, content)
	if err != nil || restore == nil {
		return reload{}, err
	}
	reloaded, err := r.load(ctx, restore)
	if err != nil {
		return reload{}, err
	}
	slog.InfoContext(ctx, "nginx site updated", "app_id", appID, "removed", content == nil)
	return reloaded, nil
}

// writeSite replaces (content != nil) or removes the app's site file, and returns what puts the
// previous one back; restore is nil when there was nothing to do (no site to remove). The
// caller holds mu.
func (r *Router) writeSite(ctx context.Context, appID string, content []byte) (restore func(), err error) {
	path := r.sitePath(appID)
	previous, err := os.ReadFile(path)
	hadPrevious := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if content == nil && !hadPrevious {
		return nil, nil
	}
	if content != nil {
		err = writeFileAtomic(path, content, 0o644)
	} else {
		err = os.Remove(path)
	}
	if err != nil {
		return nil, fmt.Errorf("write site of app %s: %w", appID, err)
	}
	return func() {
		var err error
		if hadPrevious {
			err = writeFileAtomic(path, previous, 0o644)
		} else {
			err = os.Remove(path)
		}
		if err != nil {
			slog.ErrorContext(ctx, "restore nginx site", "app_id", appID, "err", err)
		}
	}, nil
}
