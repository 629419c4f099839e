package nginx

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/skypanel/skypanel/activities/contract"
)

// InvalidRouteError says which part of a route is unacceptable; nothing was written.
type InvalidRouteError struct{ Reason string }

func (e *InvalidRouteError) Error() string { return "invalid route: " + e.Reason }

func invalid(format string, args ...any) error {
	return &InvalidRouteError{Reason: fmt.Sprintf(format, args...)}
}

// ValidateHostname accepts an RFC 1123 host name in lower case: dot-separated labels of a-z,
// 0-9 and '-', not starting or ending with '-', each at most 63 and in all at most 253
// characters, without a trailing dot or wildcard.
func ValidateHostname(host string) error {
	if host == "" {
		return invalid("the host name is empty")
	}
	if len(host) > 253 {
		return invalid("the host name is longer than 253 characters")
	}
	if strings.ToLower(host) != host {
		return invalid("the host name %q must be in lower case", host)
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" {
			return invalid("the host name %q has an empty label (two dots, or a leading or trailing dot)", host)
		}
		if len(label) > 63 {
			return invalid("the host name %q has a label longer than 63 characters", host)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return invalid("a label of host name %q starts or ends with '-'", host)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return invalid("the host name %q may contain only a-z, 0-9, '-' and '.'", host)
			}
		}
	}
	return nil
}

// validateSlug checks ids that end up in file names, upstream names and headers.
func validateSlug(what, value string) error {
	if value == "" {
		return invalid("the %s is empty", what)
	}
	if len(value) > 64 {
		return invalid("the %s is longer than 64 characters", what)
	}
	for i := 0; i < len(value); i++ {
		c := value[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return invalid("the %s %q may contain only a-z, 0-9 and '-'", what, value)
		}
	}
	return nil
}

// validateUpstream accepts exactly "127.0.0.1:PORT": instances are published on the node's
// loopback only.
func validateUpstream(u string) error {
	host, port, err := net.SplitHostPort(u)
	if err != nil || host != "127.0.0.1" {
		return invalid("upstream %q must be 127.0.0.1:PORT", u)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return invalid("upstream %q has an invalid port", u)
	}
	return nil
}

// validateRoute checks everything PublishRouteInput brings before anything is rendered.
func validateRoute(in PublishRouteInput) error {
	if err := validateSlug("app id", in.AppID); err != nil {
		return err
	}
	if err := validateSlug("release id", in.ReleaseID); err != nil {
		return err
	}
	if err := ValidateHostname(in.Hostname); err != nil {
		return err
	}
	if len(in.Domains) > contract.MaxRouteDomains {
		return invalid("%d domains: at most %d", len(in.Domains), contract.MaxRouteDomains)
	}
	seen := map[string]bool{in.Hostname: true}
	for _, d := range in.Domains {
		if err := ValidateHostname(d.Hostname); err != nil {
			return err
		}
		if seen[d.Hostname] {
			return invalid("the host name %q is named twice", d.Hostname)
		}
		seen[d.Hostname] = true
	}
	switch in.Mode {
	case RouteServe, RouteStopped, RouteSuspended:
	default:
		return invalid("unknown route mode %q", in.Mode)
	}
	if in.Mode != RouteServe && (in.Stopped || in.Suspended) {
		return invalid("a route says its mode once: Mode, or the older Stopped/Suspended")
	}
	if in.Suspended && !in.Stopped {
		return invalid("a suspended route is a stopped route")
	}
	if in.Serves() == (len(in.Upstreams) == 0) {
		return invalid("a route serves upstreams, or shows a page, never both or neither")
	}
	for _, u := range in.Upstreams {
		if err := validateUpstream(u); err != nil {
			return err
		}
	}
	if in.MaxConnections < 0 || in.MaxConnections > MaxMaxConnections {
		return invalid("max connections %d: want 1 to %d", in.MaxConnections, MaxMaxConnections)
	}
	if in.ReadTimeout < 0 || in.ReadTimeout > MaxReadTimeout || in.ReadTimeout%time.Second != 0 {
		return invalid("read timeout %s: want whole seconds up to %s", in.ReadTimeout, MaxReadTimeout)
	}
	return nil
}

// listenAddr is a parsed --nginx-listen (or --nginx-https-listen) value: what nginx's listen
// directive gets, and where this node reaches it to check a route.
type listenAddr struct {
	directive string // "80", "127.0.0.1:8088", "[::]:80"
	probe     string // "127.0.0.1:80", "127.0.0.1:8088", "[::1]:80"
}

// port is the listener's port ("443").
func (l listenAddr) port() string {
	_, port, _ := net.SplitHostPort(l.probe)
	return port
}

func parseListen(s string) (listenAddr, error) {
	if !strings.Contains(s, ":") {
		s = ":" + s
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return listenAddr{}, fmt.Errorf("nginx listen address %q: want [IP]:PORT", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return listenAddr{}, fmt.Errorf("nginx listen address %q: invalid port", s)
	}
	if host == "" {
		return listenAddr{directive: port, probe: net.JoinHostPort("127.0.0.1", port)}, nil
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return listenAddr{}, fmt.Errorf("nginx listen address %q: the host must be an IP address", s)
	}
	probe := ip
	if ip.IsUnspecified() {
		probe = net.IPv4(127, 0, 0, 1)
		if ip.To4() == nil {
			probe = net.IPv6loopback
		}
	}
	return listenAddr{directive: net.JoinHostPort(ip.String(), port), probe: net.JoinHostPort(probe.String(), port)}, nil
}

// ValidateListen checks a listen address as RouterOptions.Listen takes it ("[IP]:PORT").
func ValidateListen(s string) error {
	_, err := parseListen(s)
	return err
}
