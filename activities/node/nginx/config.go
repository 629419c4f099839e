package nginx

import (
	"fmt"
	"strings"
	"time"

	"github.com/skypanel/skypanel/secrets"
)

// NotServedText is the body of the 404 nginx answers for a host name no app is published at.
const NotServedText = "no app is served at this host name"

// ReleaseHeader carries the release a response came from; PublishRoute waits for it.
const ReleaseHeader = "X-SkyPanel-Release"

// GenerationHeader carries, on the default server's answers, the generation of the loaded
// configuration: after a reload the router polls until it sees the new one, because a reload
// is asynchronous (old workers keep serving the old configuration for a moment).
const GenerationHeader = "X-SkyPanel-Config-Generation"

// generationProbeHost matches no server_name (".invalid" is reserved), so the default server
// answers it.
const generationProbeHost = "config-generation.skypanel.invalid"

// renderBase is nginx.conf: one default server answering 404 for unknown hosts (and, on the
// HTTPS listener, refusing the handshake for an unknown name), and every app's server block from
// sites/. Relative paths are relative to the prefix (nginx -p), which is also the directory of
// nginx.conf, so certs/ and acme-webroot/ in the sites resolve there too.
func renderBase(l listeners) string {
	httpsDefault := ""
	if l.hasHTTPS() {
		// Without a certificate of its own, the default server would hand an unknown name the
		// first app's certificate; rejecting the handshake (nginx >= 1.19.4) names nobody.
		httpsDefault = fmt.Sprintf(`
        listen %s ssl http2 default_server;
        ssl_reject_handshake on;`, l.https.directive)
	}
	return fmt.Sprintf(`# Written by the SkyPanel agent; changes are overwritten when the agent starts.
worker_processes auto;
# Bounds how long a reload's old workers may keep serving long-lived connections (websockets).
worker_shutdown_timeout %[3]s;
pid run/nginx.pid;
error_log logs/error.log warn;

events {
    worker_connections 4096;
}

http {
    access_log logs/access.log;
    server_tokens off;

    client_body_temp_path temp/client_body;
    proxy_temp_path temp/proxy;
    fastcgi_temp_path temp/fastcgi;
    uwsgi_temp_path temp/uwsgi;
    scgi_temp_path temp/scgi;

    # A connection that has not sent a request yet (a client's spare, pre-dialed one) is not
    # idle to nginx: a reload's old worker keeps it, and keeps living, until this timeout. Short,
    # so old workers exit soon after a reload and the router's drain wait ends early.
    client_header_timeout 5s;

    server_names_hash_bucket_size 128;
    server_names_hash_max_size 8192;
    client_max_body_size 100m;

    # Modern TLS (Mozilla's "intermediate"): TLS 1.2 with forward-secret AEAD suites, and 1.3.
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
    ssl_prefer_server_ciphers off;
    ssl_session_cache shared:skypanel_ssl:10m;
    ssl_session_timeout 1d;
    # Tickets would be encrypted with a key that lives until nginx restarts: no forward secrecy.
    ssl_session_tickets off;

    # Upgrade websockets; otherwise an empty Connection header keeps upstream connections alive.
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      '';
    }

    proxy_http_version 1.1;
    proxy_set_header Host $host;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Forwarded-Host $host;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $connection_upgrade;
    # Per app: connections and time one app may hold. The key is the app, set in each of its
    # server blocks (plain and HTTPS), so all of them share the app's one limit.
    limit_conn_zone $skypanel_app zone=skypanel_app_conns:10m;
    limit_conn_status 429;
    proxy_connect_timeout 5s;
    proxy_send_timeout 60s;
    proxy_read_timeout 60s;
    # Stream bodies instead of spooling them to temp files.
    proxy_request_buffering off;
    proxy_max_temp_file_size 0;

    server {
        listen %[1]s default_server;%[4]s
        server_name _;
        default_type text/plain;
        # Declares $skypanel_app for limit_conn_zone even while no app is published (an empty
        # key is not counted).
        set $skypanel_app "";
        include generation.conf;
%[5]s
        location / {
            return 404 "%[2]s\n";
        }
    }

    include sites/*.conf;
}
`, l.http.directive, NotServedText, workerShutdownTimeout, httpsDefault, indent(acmeChallengeLocation, "    "))
}

// listeners are where nginx takes app traffic: plain HTTP, and HTTPS when the node has a
// listener for it.
type listeners struct {
	http  listenAddr
	https listenAddr // directive "": no HTTPS listener
}

func (l listeners) hasHTTPS() bool { return l.https.directive != "" }

// httpsRedirect is where a TLS domain's plain HTTP requests go: the same host and path on the
// HTTPS listener's port (omitted when it is 443). $host is one of the block's exact
// server_names, so the redirect cannot point anywhere else.
func (l listeners) httpsRedirect() string {
	if port := l.https.port(); port != "443" {
		return "https://$host:" + port + "$request_uri"
	}
	return "https://$host$request_uri"
}

// ACMEWebrootDir is, under the prefix, the directory ACME's HTTP-01 challenge files are
// written into (by lego's webroot provider: <webroot>/.well-known/acme-challenge/<token>).
const ACMEWebrootDir = "acme-webroot"

// acmeChallengeLocation answers ACME's HTTP-01 challenges from the webroot. Every server block
// has it, before any app location, so a CA can validate a domain whatever its app serves (its
// release, a stopped or suspended page, a redirect, or nothing yet). ^~ wins over any regex
// location; only files the agent's ACME client wrote are served.
const acmeChallengeLocation = `    location ^~ /.well-known/acme-challenge/ {
        root ` + ACMEWebrootDir + `;
        default_type text/plain;
        try_files $uri =404;
    }
`

func indent(block, prefix string) string {
	lines := strings.SplitAfter(block, "\n")
	var b strings.Builder
	for _, line := range lines {
		if line != "" && line != "\n" {
			b.WriteString(prefix)
		}
		b.WriteString(line)
	}
	return b.String()
}

// Drain bounds: how long the router waits, after a reload, for the old workers still proxying
// to an app's previous instances (PublishRouteInput.Drain, the app's drain_seconds).
// nginx's worker_shutdown_timeout is the largest, so no app's requests are cut short by nginx.
const (
	DefaultDrain          = 10 * time.Second
	MaxDrain              = 120 * time.Second
	workerShutdownTimeout = "120s"
)

func drainLimit(drain time.Duration) time.Duration {
	switch {
	case drain <= 0:
		return DefaultDrain
	case drain > MaxDrain:
		return MaxDrain
	}
	return drain
}

// renderGeneration is generation.conf, included by the default server.
func renderGeneration(generation string) string {
	return fmt.Sprintf("add_header %s %s always;\n", GenerationHeader, generation)
}

// upstreamName is the app's upstream block.
func upstreamName(appID string) string { return "skypanel-app-" + appID }

// siteFile is the app's server block file under sites/.
func siteFile(appID string) string { return "app-" + appID + ".conf" }

// StoppedText is the body of the 503 nginx answers for a stopped app, SuspendedText of the 402
// for an app its organization's wallet cannot pay for.
const (
	StoppedText   = "this app is stopped"
	SuspendedText = "this app is suspended: its organization's prepaid balance cannot pay for it"
)

// Certificate files of a domain, relative to the prefix (see Router.certDir).
const (
	certsDir     = "certs"
	fullchainPEM = "fullchain.pem"
	privkeyPEM   = "privkey.pem"
)

// renderSite is one app's upstream and server blocks. Every value in it was validated by
// validateRoute, so nothing a user typed can add a directive. The domains in tls (each with its
// certificate installed, and the node with an HTTPS listener) are served over HTTPS, one server
// block each with its own certificate, and their plain HTTP redirects there; every other name
// is served over plain HTTP.
func renderSite(l listeners, in PublishRouteInput, tls map[string]bool) string {
	plainNames, tlsNames := []string{in.Hostname}, []string(nil)
	for _, d := range in.Domains {
		if tls[d.Hostname] && l.hasHTTPS() {
			tlsNames = append(tlsNames, d.Hostname)
		} else {
			plainNames = append(plainNames, d.Hostname)
		}
	}
	var b strings.Builder
	body := renderServerBody(in)
	switch in.RouteMode() {
	case RouteSuspended:
		fmt.Fprintf(&b, "# app %s, suspended for payment. Written by the SkyPanel agent.\n", in.AppID)
	case RouteStopped:
		fmt.Fprintf(&b, "# app %s, stopped. Written by the SkyPanel agent.\n", in.AppID)
	default:
		fmt.Fprintf(&b, "# app %s, release %s. Written by the SkyPanel agent.\n", in.AppID, in.ReleaseID)
		var servers strings.Builder
		for _, u := range dedupe(in.Upstreams) {
			fmt.Fprintf(&servers, "    server %s max_fails=1 fail_timeout=5s;\n", u)
		}
		fmt.Fprintf(&b, "upstream %s {\n%s    keepalive 16;\n}\n", upstreamName(in.AppID), servers.String())
	}
	fmt.Fprintf(&b, "\nserver {\n    listen %s;\n    server_name %s;\n%s}\n", l.http.directive, strings.Join(plainNames, " "), body)
	if len(tlsNames) == 0 {
		return b.String()
	}
	// The redirect carries the release header too: route verification (PublishRoute,
	// SetRouteDomains) asks over plain HTTP.
	fmt.Fprintf(&b, `
# Plain HTTP of the domains served over HTTPS: redirected, except ACME's challenges.
server {
    listen %[1]s;
    server_name %[2]s;
    add_header %[3]s %[4]s always;
%[5]s
    location / {
        return 301 %[6]s;
    }
}
`, l.http.directive, strings.Join(tlsNames, " "), ReleaseHeader, in.ReleaseID, acmeChallengeLocation, l.httpsRedirect())
	for _, host := range tlsNames {
		dir := certsDir + "/" + host + "/"
		fmt.Fprintf(&b, `
server {
    listen %[1]s ssl http2;
    server_name %[2]s;
    ssl_certificate %[3]s;
    ssl_certificate_key %[4]s;
%[5]s}
`, l.https.directive, host, dir+fullchainPEM, dir+privkeyPEM, body)
	}
	return b.String()
}

// renderServerBody is what each of the app's server blocks serves, after listen and
// server_name: its upstreams or its page, with the release header, and the ACME challenges.
// A page is answered from location / rather than by a server-level return, which would run
// before any location and so before the challenges.
func renderServerBody(in PublishRouteInput) string {
	switch in.RouteMode() {
	case RouteSuspended:
		return fmt.Sprintf(`    default_type text/plain;
    add_header %[1]s %[2]s always;
%[3]s
    location / {
        return 402 "%[4]s\n";
    }
`, ReleaseHeader, in.ReleaseID, acmeChallengeLocation, SuspendedText)
	case RouteStopped:
		return fmt.Sprintf(`    default_type text/plain;
    add_header %[1]s %[2]s always;
    add_header Retry-After 60 always;
%[3]s
    location / {
        return 503 "%[4]s\n";
    }
`, ReleaseHeader, in.ReleaseID, acmeChallengeLocation, StoppedText)
	}
	return fmt.Sprintf(`    # The release header is the platform's: an app cannot forge it.
    proxy_hide_header %[1]s;
    add_header %[1]s %[2]s always;
    # This app's share of the node: past it, 429 for this app only.
    set $skypanel_app %[3]s;
    limit_conn skypanel_app_conns %[4]d;
    proxy_read_timeout %[5]ds;
%[6]s
    location / {
        proxy_pass http://%[7]s;
    }
`, ReleaseHeader, in.ReleaseID, in.AppID, in.connectionLimit(), int(in.readTimeout()/time.Second),
		acmeChallengeLocation, upstreamName(in.AppID))
}

func dedupe(values []string) []string {
	seen := make(map[string]bool, len(values))
	var out []string
	for _, v := range values {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// writeFileAtomic replaces path with data: readers (nginx -t, a reload) see the old file or the
// new one, never half of it. The temp file's name does not match sites/*.conf.
var writeFileAtomic = secrets.WriteFileAtomic
