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

// renderBase is nginx.conf: one default server answering 404 for unknown hosts, and every
// app's server block from sites/. Relative paths are relative to the prefix (nginx -p).
func renderBase(listen listenAddr) string {
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
    # Per app (each server block sets its own): connections and time one app may hold.
    limit_conn_zone $server_name zone=skypanel_app_conns:10m;
    limit_conn_status 429;
    proxy_connect_timeout 5s;
    proxy_send_timeout 60s;
    proxy_read_timeout 60s;
    # Stream bodies instead of spooling them to temp files.
    proxy_request_buffering off;
    proxy_max_temp_file_size 0;

    server {
        listen %[1]s default_server;
        server_name _;
        default_type text/plain;
        include generation.conf;
        return 404 "%[2]s\n";
    }

    include sites/*.conf;
}
`, listen.directive, NotServedText, workerShutdownTimeout)
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

// renderSite is one app's upstream and server block. Every value in it was validated by
// validateRoute, so nothing a user typed can add a directive.
func renderSite(listen listenAddr, in PublishRouteInput) string {
	switch in.RouteMode() {
	case RouteSuspended:
		return fmt.Sprintf(`# app %[1]s, suspended for payment. Written by the SkyPanel agent.
server {
    listen %[2]s;
    server_name %[3]s;
    default_type text/plain;
    add_header %[4]s %[5]s always;
    return 402 "%[6]s\n";
}
`, in.AppID, listen.directive, in.serverNames(), ReleaseHeader, in.ReleaseID, SuspendedText)
	case RouteStopped:
		return fmt.Sprintf(`# app %[1]s, stopped. Written by the SkyPanel agent.
server {
    listen %[2]s;
    server_name %[3]s;
    default_type text/plain;
    add_header %[4]s %[5]s always;
    add_header Retry-After 60 always;
    return 503 "%[6]s\n";
}
`, in.AppID, listen.directive, in.serverNames(), ReleaseHeader, in.ReleaseID, StoppedText)
	}
	var servers strings.Builder
	for _, u := range dedupe(in.Upstreams) {
		fmt.Fprintf(&servers, "    server %s max_fails=1 fail_timeout=5s;\n", u)
	}
	name := upstreamName(in.AppID)
	return fmt.Sprintf(`# app %[1]s, release %[2]s. Written by the SkyPanel agent.
upstream %[3]s {
%[4]s    keepalive 16;
}

server {
    listen %[5]s;
    server_name %[6]s;
    # The release header is the platform's: an app cannot forge it.
    proxy_hide_header %[7]s;
    add_header %[7]s %[2]s always;
    # This app's share of the node: past it, 429 for this app only.
    limit_conn skypanel_app_conns %[8]d;
    proxy_read_timeout %[9]ds;

    location / {
        proxy_pass http://%[3]s;
    }
}
`, in.AppID, in.ReleaseID, name, servers.String(), listen.directive, in.serverNames(), ReleaseHeader,
		in.connectionLimit(), int(in.readTimeout()/time.Second))
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
