package workernode

import (
	"errors"
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/skypanel/skypanel/activities/node/docker"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseConfigFlagsAndEnv(t *testing.T) {
	env := envOf(map[string]string{
		"SKYPANEL_API_URL":            "http://127.0.0.1:3001",
		"SKYPANEL_REGISTRATION_TOKEN": "reg-token",
		"SKYPANEL_AGENT_DATA_DIR":     "/srv/agent",
		"SKYPANEL_GATEWAY_ADDRESS":    "gateway.example.com:7243",
		"SKYPANEL_ALLOW_LOOPBACK_GIT": "true",
		"SKYPANEL_HEARTBEAT_INTERVAL": "5s",
		"SKYPANEL_EGRESS_ALLOW":       "10.20.0.0/24, 192.168.7.5/32",
	})
	c, err := ParseConfig([]string{"--data-dir", "/var/lib/x", "--nginx-listen", "127.0.0.1:8088", "--nginx-https-listen", "127.0.0.1:8443", "--stop-nginx-on-exit"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		APIURL: "http://127.0.0.1:3001", RegistrationToken: "reg-token", DataDir: "/var/lib/x",
		GatewayAddress: "gateway.example.com:7243", TemporalNamespace: "default", NginxListen: "127.0.0.1:8088", NginxHTTPSListen: "127.0.0.1:8443",
		NginxBinary: "/usr/sbin/nginx", AllowLoopbackGit: true, StopNginxOnExit: true, HeartbeatInterval: 5 * time.Second,
		NetworkPool: docker.DefaultSubnetPoolRange, NetworkPoolSize: docker.DefaultSubnetPoolSize,
		EgressAllow: []string{"10.20.0.0/24", "192.168.7.5/32"}, MaxCloneMB: 1024, BuildTimeout: 15 * time.Minute, BuildDiskMB: 10240,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("config\n got %+v\nwant %+v", c, want)
	}

	// A flag wins over the environment, false included.
	c, err = ParseConfig([]string{"--allow-loopback-git=false", "--registration-token", "flag-token"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.AllowLoopbackGit || c.RegistrationToken != "flag-token" || c.NginxListen != ":80" || c.NginxHTTPSListen != ":443" || c.DataDir != "/srv/agent" {
		t.Errorf("config %+v", c)
	}

	// The HTTPS listener comes from the environment too, and "off" means none.
	env = envOf(map[string]string{"SKYPANEL_API_URL": "https://x", "SKYPANEL_NGINX_HTTPS_LISTEN": "0.0.0.0:8443"})
	if c, err = ParseConfig(nil, env, io.Discard); err != nil || c.NginxHTTPSListen != "0.0.0.0:8443" {
		t.Errorf("https listen from env: %q %v", c.NginxHTTPSListen, err)
	}
	if c, err = ParseConfig([]string{"--nginx-https-listen", "off"}, env, io.Discard); err != nil || c.NginxHTTPSListen != "" {
		t.Errorf("--nginx-https-listen off: %q %v", c.NginxHTTPSListen, err)
	}
}

func TestParseConfigRejects(t *testing.T) {
	base := map[string]string{"SKYPANEL_API_URL": "https://panel.example.com"}
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, map[string]string{}, "--api-url"},
		{[]string{"--api-url", "ftp://x"}, base, "--api-url"},
		{[]string{"--api-url", "https://user:pw@x"}, base, "--api-url"},
		{[]string{"--data-dir", "relative"}, base, "--data-dir"},
		{[]string{"--gateway-address", "nohost"}, base, "--gateway-address"},
		{[]string{"--egress-allow", "10.0.0.0/33"}, base, "--egress-allow"},
		{[]string{"--egress-allow", "fd00::/8"}, base, "--egress-allow"},
		{[]string{"--max-clone-mb", "0"}, base, "--max-clone-mb"},
		{[]string{"--build-timeout", "10s"}, base, "--build-timeout"},
		{[]string{"--build-disk-mb", "10"}, base, "--build-disk-mb"},
		{nil, map[string]string{"SKYPANEL_API_URL": "https://x", "SKYPANEL_BUILD_DISK_MB": "lots"}, "SKYPANEL_BUILD_DISK_MB"},
		{[]string{"--gateway-address", ":7243"}, base, "--gateway-address"},
		// Agents never dial Temporal itself any more.
		{[]string{"--temporal-address", "temporal:7233"}, base, "temporal-address"},
		{[]string{"--nginx-listen", "example.com:80"}, base, "--nginx-listen"},
		{[]string{"--nginx-https-listen", "example.com:443"}, base, "--nginx-https-listen"},
		{[]string{"--nginx-https-listen", ":0"}, base, "--nginx-https-listen"},
		{[]string{"--nginx-listen", ":8443", "--nginx-https-listen", ":8443"}, base, "--nginx-https-listen must differ"},
		{[]string{"--heartbeat-interval", "10ms"}, base, "--heartbeat-interval"},
		{[]string{"--heartbeat-interval", "61m"}, base, "--heartbeat-interval"},
		{[]string{"stray"}, base, "unexpected arguments"},
		{[]string{"--network-pool", "8.8.0.0/16"}, base, "private range"},
		{[]string{"--network-pool", "10.0.0.0/8", "--network-pool-size", "30"}, base, "--network-pool"},
		{nil, map[string]string{"SKYPANEL_API_URL": "https://x", "SKYPANEL_NETWORK_POOL_SIZE": "big"}, "SKYPANEL_NETWORK_POOL_SIZE"},
		{nil, map[string]string{"SKYPANEL_API_URL": "https://x", "SKYPANEL_ALLOW_LOOPBACK_GIT": "maybe"}, "SKYPANEL_ALLOW_LOOPBACK_GIT"},
		{nil, map[string]string{"SKYPANEL_API_URL": "https://x", "SKYPANEL_HEARTBEAT_INTERVAL": "often"}, "SKYPANEL_HEARTBEAT_INTERVAL"},
	}
	for _, tt := range tests {
		_, err := ParseConfig(tt.args, envOf(tt.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseConfig(%v, %v) = %v, want an error about %s", tt.args, tt.env, err, tt.want)
		}
	}
}

// --help must not print the registration token taken from the environment. The usage must
// list the flag, or an empty (or truncated) usage would pass for one that hides the token.
func TestUsageHidesRegistrationToken(t *testing.T) {
	var usage strings.Builder
	_, err := ParseConfig([]string{"--help"}, envOf(map[string]string{"SKYPANEL_REGISTRATION_TOKEN": "s3cret-token"}), &usage)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("ParseConfig(--help) = %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(usage.String(), "-registration-token") {
		t.Fatalf("usage does not list -registration-token:\n%s", usage.String())
	}
	if strings.Contains(usage.String(), "s3cret-token") {
		t.Errorf("usage shows the token:\n%s", usage.String())
	}
}
