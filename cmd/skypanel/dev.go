package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/apiserver"
	"github.com/skypanel/skypanel/cmd/skypanel/devharness/acmeca"
	"github.com/skypanel/skypanel/cmd/skypanel/devharness/devserver"
	"github.com/skypanel/skypanel/cmd/skypanel/devharness/localcluster"
	"github.com/skypanel/skypanel/cmd/skypanel/devharness/registry"
	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
)

// devConfig is `skypanel dev`: everything on this machine, state under DataDir.
type devConfig struct {
	controlConfig
	DataDir      string
	APIAddr      string
	TemporalCLI  string
	TemporalIP   string
	TemporalPort int
	UIPort       int
	NginxListen  string
	// NginxHTTPSListen is the local node's HTTPS listener (--nginx-https-listen), by default
	// 127.0.0.1:<--nginx-https-port>.
	NginxHTTPSListen string
	NginxHTTPSPort   int
	AgentBin         string
	NetworkPool      string
	PoolSize         int
	NodeName         string
	Region           string
	RegistryPort     int
	GatewayPort      int
	// NoACMECA: no Pebble; custom domains stay on HTTP unless --acme-directory names a CA.
	NoACMECA bool
}

const localNodeName, localRegion = "local", "local"

func runDev(ctx context.Context, log *slog.Logger, args []string) error {
	cfg, err := parseDevConfig(args)
	if err != nil {
		return err
	}
	stack := &devStack{cfg: cfg, log: log}
	defer stack.shutdown()
	if err := stack.start(ctx); err != nil {
		return err
	}
	stack.printBanner()
	select {
	case <-ctx.Done():
		log.Info("shutting down")
		return nil
	case err := <-stack.failed:
		return err
	}
}

func parseDevConfig(args []string) (devConfig, error) {
	var cfg devConfig
	fs := flag.NewFlagSet("dev", flag.ExitOnError)
	nginxPort := envInt("SKYPANEL_NGINX_PORT", 8088)
	cfg.bind(fs, nginxPort)
	fs.StringVar(&cfg.DataDir, "data-dir", envOr("SKYPANEL_DATA_DIR", ".data"), "where all state lives (SKYPANEL_DATA_DIR)")
	fs.StringVar(&cfg.APIAddr, "api-addr", envOr("SKYPANEL_API_ADDR", "127.0.0.1:8080"), "API listen address (SKYPANEL_API_ADDR)")
	fs.StringVar(&cfg.TemporalCLI, "temporal-cli", envOr("TEMPORAL_CLI", ""), "temporal CLI binary (default ./bin/temporal or PATH)")
	fs.StringVar(&cfg.TemporalIP, "temporal-ip", "127.0.0.1", "address the Temporal dev server binds")
	fs.IntVar(&cfg.TemporalPort, "temporal-port", envInt("SKYPANEL_TEMPORAL_PORT", 7233), "Temporal frontend port, 0 for a free one")
	fs.IntVar(&cfg.RegistryPort, "registry-port", envInt("SKYPANEL_REGISTRY_PORT", 5000), "the platform registry's port on 127.0.0.1 (its gate: nodes push and pull there with their own credential), 0 for a free one; not started when --registry names one")
	fs.IntVar(&cfg.GatewayPort, "node-gateway-port", envInt("SKYPANEL_NODE_GATEWAY_PORT", DefaultNodeGatewayPort),
		"the node gateway's port on 127.0.0.1, 0 for a free one: the agents reach Temporal only through it (SKYPANEL_NODE_GATEWAY_PORT)")
	fs.IntVar(&cfg.UIPort, "ui-port", envInt("SKYPANEL_TEMPORAL_UI_PORT", 8233), "Temporal Web UI port, 0 for a free one")
	fs.StringVar(&cfg.NginxListen, "nginx-listen", "", "the local node's nginx listen address (default 127.0.0.1:<app-public-port>)")
	fs.IntVar(&cfg.NginxHTTPSPort, "nginx-https-port", envInt("SKYPANEL_NGINX_HTTPS_PORT", 8443), "the local node's nginx HTTPS port on 127.0.0.1, for custom domains with a certificate (SKYPANEL_NGINX_HTTPS_PORT)")
	fs.StringVar(&cfg.NginxHTTPSListen, "nginx-https-listen", "", "the local node's nginx HTTPS listen address (default 127.0.0.1:<nginx-https-port>)")
	fs.StringVar(&cfg.AgentBin, "agent-bin", envOr("SKYPANEL_AGENT_BIN", ""), "skypanel-agent binary (default: beside this binary)")
	fs.StringVar(&cfg.NetworkPool, "network-pool", envOr("SKYPANEL_NETWORK_POOL", docker.DefaultSubnetPoolRange), "the local node's tenant network pool, a private IPv4 range (SKYPANEL_NETWORK_POOL)")
	fs.IntVar(&cfg.PoolSize, "network-pool-size", envInt("SKYPANEL_NETWORK_POOL_SIZE", docker.DefaultSubnetPoolSize), "prefix length of each organization's subnet (SKYPANEL_NETWORK_POOL_SIZE)")
	fs.BoolVar(&cfg.NoACMECA, "no-acme-ca", os.Getenv("SKYPANEL_NO_ACME_CA") == "1",
		"do not run Pebble as the ACME CA of custom domains (SKYPANEL_NO_ACME_CA=1)")
	// Locally the CA is Pebble, which has no rate limits: a failed certificate is retried within
	// seconds, and the check runs every minute.
	if os.Getenv("SKYPANEL_ACME_RETRY_BASE") == "" {
		fs.Set("acme-retry-base", "10s") //nolint:errcheck // a valid duration
	}
	if os.Getenv("SKYPANEL_CERTIFICATE_CHECK_INTERVAL") == "" {
		fs.Set("certificate-check-interval", "1m") //nolint:errcheck // a valid duration
	}
	fs.Parse(args) //nolint:errcheck // ExitOnError
	cfg.NodeName, cfg.Region, cfg.AllowLoopbackGit = localNodeName, localRegion, true
	if cfg.NginxListen == "" {
		cfg.NginxListen = "127.0.0.1:" + strconv.Itoa(cfg.AppPublicPort)
	}
	if cfg.NginxHTTPSListen == "" {
		cfg.NginxHTTPSListen = "127.0.0.1:" + strconv.Itoa(cfg.NginxHTTPSPort)
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return cfg, err
	}
	cfg.DataDir = dataDir
	if os.Getenv("SKYPANEL_BACKUP_DIR") == "" && !flagGiven(fs, "backup-dir") {
		cfg.BackupDir = filepath.Join(dataDir, "backups")
	}
	if cfg.SecretKeyFile == "" {
		cfg.SecretKeyFile = filepath.Join(dataDir, "secret.key")
	}
	if err := cfg.loadBackupStores(); err != nil {
		return cfg, err
	}
	if cfg.AgentBin == "" {
		cfg.AgentBin = besideThisBinary("skypanel-agent")
	}
	if _, err := os.Stat(cfg.AgentBin); err != nil {
		return cfg, fmt.Errorf("agent binary %s: %w (run `make build`)", cfg.AgentBin, err)
	}
	return cfg, nil
}

// devStack is every part `skypanel dev` runs, stopped in reverse order.
type devStack struct {
	cfg       devConfig
	log       *slog.Logger
	stops     []func(context.Context)
	failed    chan error
	uiURL     string
	apiURL    string
	tokenFile string
	// gatewayAddr is the node gateway's address, where every agent dials Temporal.
	gatewayAddr string
	// acmeRoots is the PEM file of the local ACME CA's listener, which the agent trusts.
	acmeRoots string
}

// startACMECA runs Pebble as the CA of the custom domains' certificates, validating on the
// local node's nginx, unless a CA is named (--acme-directory) or none is wanted (--no-acme-ca).
// The root it issues under is written to <data-dir>/acme-root.pem, for clients (curl --cacert).
func (s *devStack) startACMECA(ctx context.Context) error {
	cfg := &s.cfg
	if cfg.ACME.DirectoryURL != "" || cfg.NoACMECA {
		return nil
	}
	_, port, err := net.SplitHostPort(cfg.NginxListen)
	if err != nil {
		return fmt.Errorf("nginx listen address %q: %w", cfg.NginxListen, err)
	}
	httpPort, _ := strconv.Atoi(port)
	ca, err := acmeca.Start(ctx, acmeca.Options{BinDir: filepath.Dir(besideThisBinary("pebble")), Dir: filepath.Join(cfg.DataDir, "acme-ca"), HTTPPort: httpPort, Log: s.log})
	if err != nil {
		return fmt.Errorf("start the ACME CA (Pebble; --no-acme-ca runs without): %w", err)
	}
	s.onShutdown(func(ctx context.Context) {
		if err := ca.Stop(ctx); err != nil {
			s.log.Error("stop the ACME CA", "error", err)
		}
	})
	root, err := ca.RootPEM(ctx)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.DataDir, "acme-root.pem"), root, 0o644); err != nil {
		return fmt.Errorf("write the ACME CA's root: %w", err)
	}
	cfg.ACME.DirectoryURL, s.acmeRoots = ca.DirectoryURL(), ca.ListenerCAFile()
	return nil
}

func (s *devStack) onShutdown(stop func(context.Context)) { s.stops = append(s.stops, stop) }

func (s *devStack) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i](ctx)
	}
}

func (s *devStack) start(ctx context.Context) error {
	cfg := &s.cfg
	s.failed = make(chan error, 4)
	// 0711: started by root, the local node's nginx workers run as an unprivileged user and
	// must traverse to the ACME challenges under node-local/nginx; nobody else can list it.
	if err := os.MkdirAll(cfg.DataDir, 0o711); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	// Locally the keyring lives in the data dir, made on the first start (production requires
	// SKYPANEL_SECRET_KEY).
	if err := cfg.loadKeyring(s.log, true); err != nil {
		return err
	}
	// The gateway's port is taken first: Postgres and Temporal's dev server take free ports
	// (the dev server several beside its own), and one of them could be this one.
	gatewayListener, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.GatewayPort)))
	if err != nil {
		return fmt.Errorf("node gateway: listen on 127.0.0.1:%d: %w", cfg.GatewayPort, err)
	}
	s.onShutdown(func(context.Context) { gatewayListener.Close() })
	s.gatewayAddr = gatewayListener.Addr().String()

	if cfg.DatabaseURL == "" {
		s.log.Info("starting local Postgres cluster", "dir", filepath.Join(cfg.DataDir, "postgres"))
		pg, err := localcluster.Start(ctx, localcluster.Options{Dir: filepath.Join(cfg.DataDir, "postgres")})
		if err != nil {
			return fmt.Errorf("start Postgres: %w", err)
		}
		s.onShutdown(func(ctx context.Context) {
			if err := pg.Stop(ctx); err != nil {
				s.log.Error("stop Postgres", "error", err)
			}
		})
		cfg.DatabaseURL = pg.DSN()
	}

	s.log.Info("starting Temporal dev server")
	ts, err := devserver.Start(ctx, devserver.Options{
		CLIPath: cfg.TemporalCLI, DBFile: filepath.Join(cfg.DataDir, "temporal.db"),
		IP: cfg.TemporalIP, Port: cfg.TemporalPort, UIPort: cfg.UIPort,
		LogFile: filepath.Join(cfg.DataDir, "temporal.log"), Logger: s.log,
		// The Web UI decodes payloads through the API's codec endpoint (administrators only).
		CodecEndpoint: strings.TrimSuffix(loopbackURL(cfg.APIAddr)+codecEndpointPath, "/"),
	})
	if err != nil {
		return fmt.Errorf("start Temporal: %w", err)
	}
	s.onShutdown(func(ctx context.Context) {
		if err := ts.Stop(ctx); err != nil {
			s.log.Error("stop Temporal", "error", err)
		}
	})
	cfg.TemporalAddress, cfg.TemporalNamespace, s.uiURL = ts.Address(), ts.Namespace(), ts.UIURL()

	// The platform registry: builds push there, nodes pull by digest (docs/architecture.md).
	// Nodes reach it through the registry gate (started with the API, below), which checks
	// each node's credential; the registry itself takes a free loopback port.
	var gateListener net.Listener
	if cfg.Registry == "" {
		gateListener, err = listenRegistryGate(cfg.RegistryPort, filepath.Join(cfg.DataDir, "registry-gate.port"))
		if err != nil {
			return err
		}
		s.onShutdown(func(context.Context) { gateListener.Close() })
		reg, err := registry.Start(ctx, registry.Options{Dir: filepath.Join(cfg.DataDir, "registry"), Port: 0, Log: s.log})
		if err != nil {
			return fmt.Errorf("start the platform registry: %w", err)
		}
		s.onShutdown(func(ctx context.Context) {
			if err := reg.Stop(ctx); err != nil {
				s.log.Error("stop the registry", "error", err)
			}
		})
		cfg.Registry, cfg.RegistryUpstream = gateListener.Addr().String(), "http://"+reg.Addr()
	}

	if err := s.startACMECA(ctx); err != nil {
		return err
	}

	st, closeDB, err := openStore(ctx, s.log, cfg.controlConfig)
	if err != nil {
		return err
	}
	s.onShutdown(func(context.Context) { closeDB() })
	// After a rotation (skypanel secrets rotate) the stored secrets move to the new key here.
	if _, err := reencryptSecrets(ctx, s.log, st, cfg.keyring); err != nil {
		return err
	}
	s.tokenFile = filepath.Join(cfg.DataDir, "admin.token")
	if err := ensureAdminToken(ctx, st, s.tokenFile); err != nil {
		return err
	}
	tc, err := dialTemporal(ctx, s.log, cfg.controlConfig)
	if err != nil {
		return err
	}
	s.onShutdown(func(context.Context) { tc.Close() })

	// The node gateway: the agents' only way to Temporal. The API and the control worker
	// reach the dev server directly.
	gateway, err := newNodeGateway(ctx, s.log, cfg.controlConfig, st, gatewayListener, gatewayHosts(nil, s.gatewayAddr))
	if err != nil {
		return err
	}
	s.runUntilShutdown(ctx, "node gateway", gateway.serve)

	listener, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.APIAddr, err)
	}
	s.apiURL = "http://" + listener.Addr().String()
	if err := cfg.loadGitHub(s.apiURL); err != nil {
		return err
	}
	s.runUntilShutdown(ctx, "API", func(ctx context.Context) error {
		apiCfg := apiserver.Config{AllowLoopbackGit: true, Keyring: cfg.keyring, Backups: cfg.backupStore(), MinBackupInterval: cfg.MinBackupInterval, CodecOrigins: uiOrigins(s.uiURL), BillingPeriod: cfg.BillingPeriod,
			// Nodes added here reach this machine's API and its node gateway.
			NodeInstall: apiserver.NodeInstall{PublicURL: s.apiURL, PublicGatewayAddress: s.gatewayAddr,
				AgentBinary: cfg.AgentBin, RegistrationTokenTTL: apiserver.DefaultRegistrationTokenTTL},
			NodeCA: gateway.ca, NodeGateway: gateway.gateway, NodeKeys: gateway.keys, PlatformDomain: cfg.PlatformDomain,
			GitHub: cfg.GitHub, GitHubWebhookSecret: cfg.githubWebhookSecret, FrontendURL: cfg.FrontendURL}
		api := apiserver.New(apiCfg, st, tc, s.log)
		defer api.Close()
		return serveAPI(ctx, s.log, api, listener)
	})
	if gateListener != nil {
		gate := registryGateConfig{Upstream: cfg.RegistryUpstream}
		s.runUntilShutdown(ctx, "registry gate", func(ctx context.Context) error {
			return serveRegistryGate(ctx, s.log, st, gate, gateListener)
		})
	}
	s.runUntilShutdown(ctx, "control worker", func(ctx context.Context) error {
		return runControlWorker(ctx, s.log, cfg.controlConfig, st, tc)
	})
	if err := s.startAgent(ctx, st); err != nil {
		return err
	}
	return s.waitForNode(ctx, st)
}

// runUntilShutdown runs part in the background; shutdown cancels it and waits for it.
func (s *devStack) runUntilShutdown(ctx context.Context, name string, part func(context.Context) error) {
	partCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := part(partCtx); err != nil {
			s.failed <- fmt.Errorf("%s: %w", name, err)
		}
	}()
	s.onShutdown(func(ctx context.Context) {
		cancel()
		select {
		case <-done:
		case <-ctx.Done():
		}
	})
}

// startAgent runs the real agent binary as the local node and supervises it as systemd would
// on a real node: an agent that dies is started again (its apps keep serving meanwhile, and
// Temporal retries the work it was doing). The registration token travels in the child's
// environment, never on its command line (which `ps` shows).
func (s *devStack) startAgent(ctx context.Context, st *db.Store) error {
	cfg := s.cfg
	agentDir := filepath.Join(cfg.DataDir, "node-"+cfg.NodeName)
	registrationToken, err := s.localNodeRegistration(ctx, st, agentDir)
	if err != nil {
		return err
	}
	newCommand := func() *exec.Cmd {
		cmd := exec.Command(cfg.AgentBin,
			"--api-url", s.apiURL,
			"--data-dir", agentDir,
			"--gateway-address", s.gatewayAddr,
			"--temporal-namespace", cfg.TemporalNamespace,
			"--nginx-listen", cfg.NginxListen,
			"--nginx-https-listen", cfg.NginxHTTPSListen,
			"--allow-loopback-git",
			"--stop-nginx-on-exit",
			"--network-pool", cfg.NetworkPool,
			"--network-pool-size", strconv.Itoa(cfg.PoolSize),
		)
		if s.acmeRoots != "" {
			cmd.Args = append(cmd.Args, "--acme-ca-roots", s.acmeRoots)
		}
		// The node holds keys of its own, never the platform's: not even through this
		// process's environment.
		cmd.Env = append(withoutPlatformKey(os.Environ()), "SKYPANEL_REGISTRATION_TOKEN="+registrationToken)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		return cmd
	}
	first := newCommand()
	if err := first.Start(); err != nil {
		return fmt.Errorf("start agent: %w", err)
	}
	stopping, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.superviseAgent(stopping, first, newCommand)
	}()
	s.onShutdown(func(ctx context.Context) {
		stop()
		select {
		case <-done:
		case <-ctx.Done():
		}
	})
	return nil
}

// agentCrashLoopLimit stops the restarts of an agent that keeps dying right after it starts
// (a configuration error is not fixed by trying again).
const agentCrashLoopLimit = 5

func (s *devStack) superviseAgent(stopping context.Context, cmd *exec.Cmd, newCommand func() *exec.Cmd) {
	quickExits := 0
	for {
		startedAt := time.Now()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case <-stopping.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
			return
		case err := <-exited:
			if time.Since(startedAt) < 5*time.Second {
				quickExits++
			} else {
				quickExits = 0
			}
			if quickExits >= agentCrashLoopLimit {
				s.failed <- fmt.Errorf("node agent keeps exiting right after it starts: %v", err)
				return
			}
			s.log.Error("node agent exited; starting it again", "error", err)
		}
		select {
		case <-stopping.Done():
			return
		case <-time.After(time.Second):
		}
		cmd = newCommand()
		if err := cmd.Start(); err != nil {
			s.failed <- fmt.Errorf("restart agent: %w", err)
			return
		}
	}
}

// localNodeRegistration makes sure node "local" exists and returns a fresh one-time
// registration token when the agent has no credentials yet ("" when it has).
func (s *devStack) localNodeRegistration(ctx context.Context, st *db.Store, agentDir string) (string, error) {
	if _, err := os.Stat(filepath.Join(agentDir, "agent.json")); err == nil {
		if _, err := st.NodeByName(ctx, s.cfg.NodeName); err == nil {
			return "", nil
		}
		// Credentials of a node the database no longer knows (a reset database): start over.
		if err := os.Remove(filepath.Join(agentDir, "agent.json")); err != nil {
			return "", err
		}
	}
	token, hash, err := apiserver.NewRegistrationToken()
	if err != nil {
		return "", err
	}
	expiresAt := time.Now().Add(apiserver.DefaultRegistrationTokenTTL)
	node, err := st.NodeByName(ctx, s.cfg.NodeName)
	if errors.Is(err, db.ErrNotFound) {
		region, err := st.EnsureRegion(ctx, s.cfg.Region, "Local")
		if err != nil {
			return "", err
		}
		_, err = st.CreateNode(ctx, s.cfg.NodeName, region.ID, "127.0.0.1", hash, expiresAt)
		return token, err
	}
	if err != nil {
		return "", err
	}
	_, err = st.SetRegistrationToken(ctx, node.ID, hash, expiresAt)
	return token, err
}

// waitForNode returns once the local node has registered and sent a heartbeat.
func (s *devStack) waitForNode(ctx context.Context, st *db.Store) error {
	deadline := time.Now().Add(90 * time.Second)
	for {
		node, err := st.NodeByName(ctx, s.cfg.NodeName)
		if err == nil && node.Status == "online" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %q did not come online within 90s (see the agent's output above)", s.cfg.NodeName)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-s.failed:
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *devStack) printBanner() {
	fmt.Printf(`
  SkyPanel is running. Ctrl-C stops everything.

    API            %[1]s
    API docs       %[1]s/docs   (OpenAPI: %[1]s/openapi.json)
    Temporal UI    %[2]s   (payloads are encrypted; to read them, sign in at %[1]s%[8]slogin)
    Node gateway   %[10]s   (mutual TLS: the agents reach Temporal only through it)
    Apps           %[3]s://<name>.%[4]s:%[5]d/   (custom domains with a certificate: https on %[11]s)
    Admin token    %[6]s   (curl -H "Authorization: Bearer $(cat %[6]s)" %[1]s/api/paas/admin/nodes)
    Data           %[7]s   (secret keyring: %[9]s)

`, s.apiURL, s.uiURL, s.cfg.AppURLScheme, s.cfg.PlatformDomain, s.cfg.AppPublicPort, s.tokenFile, s.cfg.DataDir, codecEndpointPath, s.keyringSource(), s.gatewayAddr, s.cfg.NginxHTTPSListen)
}

// keyringSource says where the keyring came from, for the banner.
func (s *devStack) keyringSource() string {
	if os.Getenv(secrets.KeyringEnv) != "" {
		return secrets.KeyringEnv
	}
	return s.cfg.SecretKeyFile
}

// codecEndpointPath is where the API serves the Temporal UI's remote codec.
const codecEndpointPath = "/api/paas/temporal-codec/"

// loopbackURL is the http:// URL of a listen address, on 127.0.0.1 when it listens on all
// addresses.
func loopbackURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// uiOrigins are the origins a browser may show the Temporal UI under: its URL, and the same
// port on localhost and 127.0.0.1.
func uiOrigins(uiURL string) []string {
	u, err := url.Parse(uiURL)
	if err != nil || u.Host == "" {
		return nil
	}
	origins := []string{u.Scheme + "://" + u.Host}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		if origin := u.Scheme + "://" + net.JoinHostPort(host, u.Port()); origin != origins[0] {
			origins = append(origins, origin)
		}
	}
	return origins
}

// withoutPlatformKey is env without the platform keyring's variables (SKYPANEL_SECRET_KEY,
// SKYPANEL_SECRET_KEY_FILE), the S3 backup store's secret key (the node gets it sealed for
// itself, per backup) and the GitHub secrets (a node never needs them), for the local node's
// agent.
func withoutPlatformKey(env []string) []string {
	kept := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, secrets.KeyringEnv) && !strings.HasPrefix(kv, S3SecretKeyEnv) &&
			!strings.HasPrefix(kv, GitHubClientSecretEnv) && !strings.HasPrefix(kv, GitHubWebhookSecretEnv) {
			kept = append(kept, kv)
		}
	}
	return kept
}

// listenRegistryGate listens for the registry gate on 127.0.0.1:port. With port 0 it takes the
// port it had at the last start (kept in portFile) when that is free, else a free one, and
// keeps it: image names carry the gate's address, so the releases built before a restart
// must still pull from the same one.
func listenRegistryGate(port int, portFile string) (net.Listener, error) {
	if port != 0 {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return nil, fmt.Errorf("registry gate: listen on port %d: %w", port, err)
		}
		return l, nil
	}
	if raw, err := os.ReadFile(portFile); err == nil {
		if last, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil && last > 0 {
			if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(last))); err == nil {
				return l, nil
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("registry gate: listen on a free port: %w", err)
	}
	if err := os.WriteFile(portFile, []byte(strconv.Itoa(l.Addr().(*net.TCPAddr).Port)+"\n"), 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("registry gate: keep its port: %w", err)
	}
	return l, nil
}
