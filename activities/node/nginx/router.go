package nginx

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"
)

// Defaults for RouterOptions.
const (
	DefaultBinary       = "/usr/sbin/nginx"
	DefaultListen       = ":80"
	DefaultHTTPSListen  = ":443" // the agent's default; RouterOptions.HTTPSListen has none
	DefaultServeTimeout = 30 * time.Second
)

// RouterOptions configure the node's own nginx.
type RouterOptions struct {
	// Prefix is nginx's prefix directory (nginx -p): it holds nginx.conf, sites/, logs/, temp/
	// and run/nginx.pid. Required.
	Prefix string
	// Binary is the nginx executable; DefaultBinary when empty.
	Binary string
	// Listen is where app traffic arrives: "[IP]:PORT" (":80", "127.0.0.1:8088"); DefaultListen
	// when empty.
	Listen string
	// HTTPSListen is where HTTPS traffic arrives, "[IP]:PORT" as Listen (":443",
	// "127.0.0.1:8443"); empty: no HTTPS listener, every domain is served over plain HTTP. A
	// TLS domain's plain HTTP redirects to this port.
	HTTPSListen string
	// ServeTimeout bounds how long Publish waits for nginx to serve a new release;
	// DefaultServeTimeout when zero.
	ServeTimeout time.Duration
}

// Router owns the node's nginx master and is the one place that renders its configuration.
// Config changes are serialized: each is written, checked with nginx -t (and rolled back when the
// check fails), then loaded with a reload.
type Router struct {
	opts      RouterOptions
	listeners listeners
	mu        sync.Mutex
	// routeMu makes writing a site file and its route file one step, so Repoint never
	// overwrites a release published meanwhile, and guards the certificate files, which the
	// rendering of a site looks at. Always taken before mu.
	routeMu sync.Mutex
}

// ConfigTestError is nginx -t rejecting a configuration; the previous one was restored.
type ConfigTestError struct{ Output string }

func (e *ConfigTestError) Error() string { return "nginx rejected the configuration: " + e.Output }

// NewRouter checks the options; nothing is written until Start.
func NewRouter(opts RouterOptions) (*Router, error) {
	if opts.Prefix == "" {
		return nil, errors.New("nginx router: no prefix directory")
	}
	prefix, err := filepath.Abs(opts.Prefix)
	if err != nil {
		return nil, fmt.Errorf("nginx router: prefix: %w", err)
	}
	opts.Prefix = prefix
	if opts.Binary == "" {
		opts.Binary = DefaultBinary
	}
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	if opts.ServeTimeout <= 0 {
		opts.ServeTimeout = DefaultServeTimeout
	}
	var l listeners
	if l.http, err = parseListen(opts.Listen); err != nil {
		return nil, err
	}
	if opts.HTTPSListen != "" {
		if l.https, err = parseListen(opts.HTTPSListen); err != nil {
			return nil, fmt.Errorf("https: %w", err)
		}
		if l.https.probe == l.http.probe {
			return nil, fmt.Errorf("nginx listen address %s is given for both HTTP and HTTPS", opts.HTTPSListen)
		}
	}
	return &Router{opts: opts, listeners: l}, nil
}

// ProbeAddr is where this node reaches its nginx ("127.0.0.1:8088").
func (r *Router) ProbeAddr() string { return r.listeners.http.probe }

// HTTPSProbeAddr is where this node reaches its nginx's HTTPS listener ("127.0.0.1:8443"); ""
// without one.
func (r *Router) HTTPSProbeAddr() string { return r.listeners.https.probe }

// Prefix is nginx's prefix directory.
func (r *Router) Prefix() string { return r.opts.Prefix }

func (r *Router) confPath() string { return filepath.Join(r.opts.Prefix, "nginx.conf") }

func (r *Router) sitesDir() string { return filepath.Join(r.opts.Prefix, "sites") }

func (r *Router) pidPath() string { return filepath.Join(r.opts.Prefix, "run", "nginx.pid") }

func (r *Router) errorLog() string { return filepath.Join(r.opts.Prefix, "logs", "error.log") }

func (r *Router) sitePath(app string) string { return filepath.Join(r.sitesDir(), siteFile(app)) }
