// Package registrygate fronts the platform registry for the nodes. The registry itself (CNCF
// distribution 2.8, Debian's docker-registry) reads its htpasswd file once, at start: a
// credential removed from it would keep working until a restart. So the registry listens where
// only the control plane reaches it, and the gate is what nodes talk to. Each request must
// carry a node's own credential (HTTP Basic: the node id and its node token, the one the agent
// uses on the API); the gate checks it against Postgres on every request and proxies what
// passes. A revoked or deleted node's token stops opening the registry at once.
package registrygate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
)

// Realm is the Basic realm of the gate's challenge.
const Realm = "SkyPanel registry"

// ErrUnknownCredential is what an Authenticator answers for a token that is no node's (or a
// revoked node's); any other error is the gate's own trouble (503).
var ErrUnknownCredential = errors.New("unknown node credential")

// Authenticator resolves a node token to its node id.
type Authenticator func(ctx context.Context, token string) (nodeID string, err error)

// Gate is the nodes' way into the registry.
type Gate struct {
	authenticate Authenticator
	proxy        *httputil.ReverseProxy
	log          *slog.Logger
}

// New fronts the registry at upstream (http://host:port) with authenticate.
func New(upstream string, authenticate Authenticator, log *slog.Logger) (*Gate, error) {
	target, err := url.Parse(upstream)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return nil, fmt.Errorf("registry gate: upstream %q is not an http(s) URL", upstream)
	}
	if authenticate == nil {
		return nil, errors.New("registry gate: no authenticator")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			// The registry builds upload locations from the Host it is asked for: the node's,
			// so they point back at the gate.
			r.Out.Host = r.In.Host
			r.SetXForwarded()
			r.Out.Header.Del("Authorization")
		},
		// Layers stream through as they come, never buffered whole.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Error("registry gate: upstream", "error", err, "method", r.Method, "path", r.URL.Path)
			writeError(w, http.StatusBadGateway, "UNAVAILABLE", "the platform registry is not reachable")
		},
	}
	return &Gate{authenticate: authenticate, proxy: proxy, log: log}, nil
}

// ServeHTTP answers the registry API (/v2/…) for authenticated nodes.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.URL.Path != "/v2" && !strings.HasPrefix(r.URL.Path, "/v2/") {
		writeError(w, http.StatusNotFound, "NAME_UNKNOWN", "only the registry API (/v2/) is served here")
		return
	}
	user, token, ok := r.BasicAuth()
	if !ok || user == "" || token == "" {
		g.challenge(w, "a node credential is required: the node id as user name, its node token as password")
		return
	}
	nodeID, err := g.authenticate(r.Context(), token)
	switch {
	case errors.Is(err, ErrUnknownCredential):
		g.log.Warn("registry gate: refused credential", "user", user, "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
		g.challenge(w, "the node credential is not valid (revoked, or not a node's)")
		return
	case err != nil:
		g.log.Error("registry gate: authenticate", "error", err)
		writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "the credential could not be checked; try again")
		return
	case nodeID != user:
		// A token of one node presented as another's: refused like an unknown one.
		g.log.Warn("registry gate: credential of another node", "user", user, "node_id", nodeID, "remote", r.RemoteAddr)
		g.challenge(w, "the node credential is not valid (revoked, or not a node's)")
		return
	}
	g.proxy.ServeHTTP(w, r)
}

func (g *Gate) challenge(w http.ResponseWriter, message string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="`+Realm+`"`)
	writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", message)
}

// writeError answers in the registry API's error format, which Docker shows to whoever pulls.
func writeError(w http.ResponseWriter, status int, code, message string) {
	type apiError struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(struct { //nolint:errcheck // the client went away
		Errors []apiError `json:"errors"`
	}{[]apiError{{code, message}}})
}
