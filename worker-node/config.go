// Package workernode is the node agent: it registers the machine with the control plane once,
// reports heartbeats, runs the node's own nginx, and runs a Temporal worker (activities only) on
// the node's task queue, executing git, Docker and nginx steps for the control plane's workflows.
package workernode

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/skypanel/skypanel/temporal/codec"

	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/activities/node/gitclone"
	"github.com/skypanel/skypanel/activities/node/nginx"
)

// Defaults of the agent's configuration.
const (
	DefaultDataDir = "/var/lib/skypanel-agent"
	// DefaultGatewayAddress is where `skypanel dev` runs the node gateway.
	DefaultGatewayAddress    = "127.0.0.1:7243"
	DefaultTemporalNamespace = "default"
	DefaultHeartbeatInterval = 10 * time.Second
	// MaxHeartbeatInterval is the longest interval the API accepts (interval_seconds).
	MaxHeartbeatInterval = time.Hour
)

// Config is the agent's configuration: flags, each with an environment fallback.
type Config struct {
	APIURL            string // --api-url, SKYPANEL_API_URL
	RegistrationToken string // --registration-token, SKYPANEL_REGISTRATION_TOKEN (first start only)
	DataDir           string // --data-dir, SKYPANEL_AGENT_DATA_DIR
	GatewayAddress    string // --gateway-address, SKYPANEL_GATEWAY_ADDRESS: the node gateway, the agent's only way to Temporal
	TemporalNamespace string // --temporal-namespace, TEMPORAL_NAMESPACE
	NginxListen       string // --nginx-listen, SKYPANEL_NGINX_LISTEN
	// NginxHTTPSListen (--nginx-https-listen, SKYPANEL_NGINX_HTTPS_LISTEN): where the node's nginx
	// takes HTTPS traffic for domains with a certificate; "" (given as "off") for none.
	NginxHTTPSListen string
	NginxBinary      string // --nginx-bin, SKYPANEL_NGINX_BIN
	AllowLoopbackGit bool   // --allow-loopback-git, SKYPANEL_ALLOW_LOOPBACK_GIT (development only)
	// AllowPlaintextPayloads (--allow-plaintext-payloads, SKYPANEL_ALLOW_PLAINTEXT_PAYLOADS=1):
	// migration only, read unencrypted task payloads instead of refusing them.
	AllowPlaintextPayloads bool
	StopNginxOnExit        bool          // --stop-nginx-on-exit, SKYPANEL_STOP_NGINX_ON_EXIT
	HeartbeatInterval      time.Duration // --heartbeat-interval, SKYPANEL_HEARTBEAT_INTERVAL
	NetworkPool            string        // --network-pool, SKYPANEL_NETWORK_POOL
	NetworkPoolSize        int           // --network-pool-size, SKYPANEL_NETWORK_POOL_SIZE
	// NoEgressRules (--no-egress-rules, SKYPANEL_NO_EGRESS_RULES): do not install the iptables
	// rules that keep tenant containers off the host and private networks.
	NoEgressRules bool
	EgressAllow   []string      // --egress-allow, SKYPANEL_EGRESS_ALLOW: CIDRs tenants may reach anyway
	MaxCloneMB    int           // --max-clone-mb, SKYPANEL_MAX_CLONE_MB: a clone past it is stopped
	BuildTimeout  time.Duration // --build-timeout, SKYPANEL_BUILD_TIMEOUT: a longer build fails
	BuildDiskMB   int           // --build-disk-mb, SKYPANEL_BUILD_DISK_MB: a build that writes more fails
	// ACMECARoots (--acme-ca-roots, SKYPANEL_ACME_CA_ROOTS) is a PEM file of extra roots the
	// node trusts for the ACME CA's own HTTPS (Pebble's under make run); empty: the system's.
	ACMECARoots string
}

// ParseConfig reads the agent's flags from args, falling back to getenv for unset flags, and
// validates the result.
func ParseConfig(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("skypanel-agent", flag.ContinueOnError)
	fs.SetOutput(usage)
	env := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	fs.StringVar(&c.APIURL, "api-url", env("SKYPANEL_API_URL", ""), "control plane base URL, e.g. https://panel.example.com (env SKYPANEL_API_URL)")
	// No env default for the token: flag usage would print it.
	fs.StringVar(&c.RegistrationToken, "registration-token", "", "one-time node registration token, needed on first start only; prefer the env var (env SKYPANEL_REGISTRATION_TOKEN)")
	fs.StringVar(&c.DataDir, "data-dir", env("SKYPANEL_AGENT_DATA_DIR", DefaultDataDir), "agent state: credentials, builds, nginx prefix (env SKYPANEL_AGENT_DATA_DIR)")
	fs.StringVar(&c.GatewayAddress, "gateway-address", env("SKYPANEL_GATEWAY_ADDRESS", DefaultGatewayAddress),
		"the control plane's node gateway, host:port: the agent reaches Temporal only through it, with its own certificate (env SKYPANEL_GATEWAY_ADDRESS)")
	fs.StringVar(&c.TemporalNamespace, "temporal-namespace", env("TEMPORAL_NAMESPACE", DefaultTemporalNamespace), "Temporal namespace (env TEMPORAL_NAMESPACE)")
	fs.StringVar(&c.NginxListen, "nginx-listen", env("SKYPANEL_NGINX_LISTEN", nginx.DefaultListen), "where the node's nginx takes app traffic, [IP]:PORT (env SKYPANEL_NGINX_LISTEN)")
	fs.StringVar(&c.NginxHTTPSListen, "nginx-https-listen", env("SKYPANEL_NGINX_HTTPS_LISTEN", nginx.DefaultHTTPSListen),
		"where the node's nginx takes HTTPS traffic, [IP]:PORT, or off (env SKYPANEL_NGINX_HTTPS_LISTEN)")
	fs.StringVar(&c.NetworkPool, "network-pool", env("SKYPANEL_NETWORK_POOL", docker.DefaultSubnetPoolRange),
		"private IPv4 range the organizations' networks on this node get their subnets from; must not overlap the host's routes (env SKYPANEL_NETWORK_POOL)")
	fs.StringVar(&c.NginxBinary, "nginx-bin", env("SKYPANEL_NGINX_BIN", nginx.DefaultBinary), "nginx executable (env SKYPANEL_NGINX_BIN)")

	boolDefault := func(key string) (bool, error) {
		v := getenv(key)
		if v == "" {
			return false, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("%s=%q: want true or false", key, v)
		}
		return b, nil
	}
	allowLoopback, err := boolDefault("SKYPANEL_ALLOW_LOOPBACK_GIT")
	if err != nil {
		return c, err
	}
	stopNginx, err := boolDefault("SKYPANEL_STOP_NGINX_ON_EXIT")
	if err != nil {
		return c, err
	}
	noEgress, err := boolDefault("SKYPANEL_NO_EGRESS_RULES")
	if err != nil {
		return c, err
	}
	fs.BoolVar(&c.NoEgressRules, "no-egress-rules", noEgress,
		"do not install the iptables rules that keep apps and builds off the host and private networks; only when the host's firewall does this (env SKYPANEL_NO_EGRESS_RULES)")
	egressAllow := env("SKYPANEL_EGRESS_ALLOW", "")
	fs.StringVar(&egressAllow, "egress-allow", egressAllow,
		"comma-separated CIDRs that apps and builds may reach although private, e.g. a package proxy (env SKYPANEL_EGRESS_ALLOW)")
	maxClone := int(gitclone.DefaultMaxCloneBytes >> 20)
	if v := getenv("SKYPANEL_MAX_CLONE_MB"); v != "" {
		if maxClone, err = strconv.Atoi(v); err != nil {
			return c, fmt.Errorf("SKYPANEL_MAX_CLONE_MB=%q: want a number of MiB such as 1024", v)
		}
	}
	fs.IntVar(&c.MaxCloneMB, "max-clone-mb", maxClone, "largest repository clone (history and checkout) in MiB; a larger one fails its deploy (env SKYPANEL_MAX_CLONE_MB)")
	buildTimeout := docker.DefaultBuildTimeout
	if v := getenv("SKYPANEL_BUILD_TIMEOUT"); v != "" {
		if buildTimeout, err = time.ParseDuration(v); err != nil {
			return c, fmt.Errorf("SKYPANEL_BUILD_TIMEOUT=%q: want a duration such as 15m", v)
		}
	}
	fs.DurationVar(&c.BuildTimeout, "build-timeout", buildTimeout, "how long one build may run; a longer one fails naming this limit (env SKYPANEL_BUILD_TIMEOUT)")
	buildDisk := docker.DefaultBuildDiskMB
	if v := getenv("SKYPANEL_BUILD_DISK_MB"); v != "" {
		if buildDisk, err = strconv.Atoi(v); err != nil {
			return c, fmt.Errorf("SKYPANEL_BUILD_DISK_MB=%q: want a number of MiB such as 10240", v)
		}
	}
	fs.StringVar(&c.ACMECARoots, "acme-ca-roots", env("SKYPANEL_ACME_CA_ROOTS", ""),
		"a PEM file of extra CA roots to trust for the ACME CA's API, e.g. a test CA's (env SKYPANEL_ACME_CA_ROOTS)")
	fs.IntVar(&c.BuildDiskMB, "build-disk-mb", buildDisk, "how much disk one build may fill in MiB, its context and layers, when its plan names no limit; a build that writes more fails naming this limit (env SKYPANEL_BUILD_DISK_MB)")
	poolSize := docker.DefaultSubnetPoolSize
	if v := getenv("SKYPANEL_NETWORK_POOL_SIZE"); v != "" {
		if poolSize, err = strconv.Atoi(strings.TrimPrefix(v, "/")); err != nil {
			return c, fmt.Errorf("SKYPANEL_NETWORK_POOL_SIZE=%q: want a prefix length such as 26", v)
		}
	}
	fs.IntVar(&c.NetworkPoolSize, "network-pool-size", poolSize, "prefix length of each organization's subnet, e.g. 26 for 62 addresses (env SKYPANEL_NETWORK_POOL_SIZE)")
	interval := DefaultHeartbeatInterval
	if v := getenv("SKYPANEL_HEARTBEAT_INTERVAL"); v != "" {
		if interval, err = time.ParseDuration(v); err != nil {
			return c, fmt.Errorf("SKYPANEL_HEARTBEAT_INTERVAL=%q: want a duration such as 10s", v)
		}
	}
	fs.BoolVar(&c.AllowPlaintextPayloads, "allow-plaintext-payloads", os.Getenv(codec.AllowPlaintextEnv) == "1",
		"migration only: run tasks whose payloads are not encrypted instead of refusing them (env "+codec.AllowPlaintextEnv+"=1)")
	fs.BoolVar(&c.AllowLoopbackGit, "allow-loopback-git", allowLoopback, "development only: clone from http(s)://localhost or loopback IPs when a deployment asks to (env SKYPANEL_ALLOW_LOOPBACK_GIT)")
	fs.BoolVar(&c.StopNginxOnExit, "stop-nginx-on-exit", stopNginx, "stop the node's nginx when the agent exits; by default it keeps serving (env SKYPANEL_STOP_NGINX_ON_EXIT)")
	fs.DurationVar(&c.HeartbeatInterval, "heartbeat-interval", interval, "how often the agent reports to the control plane (env SKYPANEL_HEARTBEAT_INTERVAL)")

	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.RegistrationToken == "" {
		c.RegistrationToken = getenv("SKYPANEL_REGISTRATION_TOKEN")
	}
	for _, cidr := range strings.Split(egressAllow, ",") {
		if cidr = strings.TrimSpace(cidr); cidr != "" {
			c.EgressAllow = append(c.EgressAllow, cidr)
		}
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if c.NginxHTTPSListen == "off" {
		c.NginxHTTPSListen = ""
	}
	return c, c.Validate()
}

// Validate checks the configuration. The registration token is checked when it is needed
// (no saved credentials), not here.
func (c Config) Validate() error {
	var errs []error
	if c.APIURL == "" {
		errs = append(errs, errors.New("--api-url (SKYPANEL_API_URL) is required"))
	} else if u, err := url.Parse(c.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("--api-url %q: want http(s)://host[:port][/path] without credentials or query", c.APIURL))
	}
	if c.DataDir == "" || !filepath.IsAbs(c.DataDir) {
		errs = append(errs, fmt.Errorf("--data-dir %q: want an absolute path", c.DataDir))
	}
	if host, port, err := net.SplitHostPort(c.GatewayAddress); err != nil || host == "" || port == "" {
		errs = append(errs, fmt.Errorf("--gateway-address %q: want host:port", c.GatewayAddress))
	}
	if c.TemporalNamespace == "" {
		errs = append(errs, errors.New("--temporal-namespace must not be empty"))
	}
	if err := nginx.ValidateListen(c.NginxListen); err != nil {
		errs = append(errs, fmt.Errorf("--nginx-listen: %w", err))
	}
	if c.NginxHTTPSListen != "" {
		if err := nginx.ValidateListen(c.NginxHTTPSListen); err != nil {
			errs = append(errs, fmt.Errorf("--nginx-https-listen: %w", err))
		} else if c.NginxHTTPSListen == c.NginxListen {
			errs = append(errs, errors.New("--nginx-https-listen must differ from --nginx-listen"))
		}
	}
	if c.NginxBinary == "" {
		errs = append(errs, errors.New("--nginx-bin must not be empty"))
	}
	if _, err := c.SubnetPool(); err != nil {
		errs = append(errs, fmt.Errorf("--network-pool/--network-pool-size: %w", err))
	}
	if c.BuildTimeout < time.Minute || c.BuildTimeout > 2*time.Hour {
		errs = append(errs, fmt.Errorf("--build-timeout %s: want 1m to 2h", c.BuildTimeout))
	}
	if c.ACMECARoots != "" {
		if _, err := c.ACMERootPool(); err != nil {
			errs = append(errs, fmt.Errorf("--acme-ca-roots: %w", err))
		}
	}
	if c.BuildDiskMB < 64 {
		errs = append(errs, fmt.Errorf("--build-disk-mb %d: want at least 64", c.BuildDiskMB))
	}
	if c.MaxCloneMB < 1 {
		errs = append(errs, fmt.Errorf("--max-clone-mb %d: want at least 1", c.MaxCloneMB))
	}
	for _, cidr := range c.EgressAllow {
		if p, err := netip.ParsePrefix(cidr); err != nil || !p.Addr().Is4() {
			errs = append(errs, fmt.Errorf("--egress-allow %q: want IPv4 CIDRs such as 10.20.0.0/24", cidr))
		}
	}
	if c.HeartbeatInterval < time.Second || c.HeartbeatInterval > MaxHeartbeatInterval {
		errs = append(errs, fmt.Errorf("--heartbeat-interval %s: want 1s to %s", c.HeartbeatInterval, MaxHeartbeatInterval))
	}
	return errors.Join(errs...)
}

// SubnetPool is the tenant network pool of the node.
func (c Config) SubnetPool() (docker.SubnetPool, error) {
	return docker.ParseSubnetPool(c.NetworkPool, c.NetworkPoolSize)
}

// Layout of the data directory.
func (c Config) credentialsPath() string { return filepath.Join(c.DataDir, "agent.json") }
func (c Config) gatewayCertPath() string { return filepath.Join(c.DataDir, "gateway.pem") }
func (c Config) gatewayCAPath() string   { return filepath.Join(c.DataDir, "gateway-ca.pem") }
func (c Config) buildsDir() string       { return filepath.Join(c.DataDir, "builds") }
func (c Config) nginxPrefix() string     { return filepath.Join(c.DataDir, "nginx") }

// ACMERootPool is the system's roots plus those of --acme-ca-roots (nil when none are named).
func (c Config) ACMERootPool() (*x509.CertPool, error) {
	if c.ACMECARoots == "" {
		return nil, nil
	}
	raw, err := os.ReadFile(c.ACMECARoots)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(raw) {
		return nil, fmt.Errorf("%s holds no PEM certificate", c.ACMECARoots)
	}
	return pool, nil
}
