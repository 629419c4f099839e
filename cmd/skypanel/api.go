package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/skypanel/skypanel/apiserver"
	"github.com/skypanel/skypanel/db"
	sptemporal "github.com/skypanel/skypanel/temporal"
	"github.com/skypanel/skypanel/temporal/nodegateway"
)

func runAPI(ctx context.Context, log *slog.Logger, args []string) error {
	var addr, codecOrigins, adminTokenFile, gatewayAddr, gatewayHostList *string
	var nodeInstall apiserver.NodeInstall
	var certLifetime *time.Duration
	var rateLimit *float64
	var rateBurst *int
	var gate registryGateConfig
	cfg, err := parseControlConfig(log, "api", args, true, func(fs *flag.FlagSet) {
		gate.bind(fs)
		addr = fs.String("addr", envOr("SKYPANEL_API_ADDR", ":8080"), "listen address (SKYPANEL_API_ADDR)")
		codecOrigins = fs.String("codec-origins", envOr("SKYPANEL_CODEC_ORIGINS", ""), "comma-separated Temporal Web UI origins allowed to call the codec endpoint, e.g. https://temporal.example.com (SKYPANEL_CODEC_ORIGINS)")
		adminTokenFile = fs.String("admin-token-file", envOr("SKYPANEL_ADMIN_TOKEN_FILE", ""), "when set, create the first admin and write its token here (mode 0600)")
		gatewayAddr = fs.String("node-gateway-addr", envOr("SKYPANEL_NODE_GATEWAY_ADDR", fmt.Sprintf(":%d", DefaultNodeGatewayPort)),
			"where the node gateway listens: nodes reach Temporal only through it, over mutual TLS; \"off\" when another API replica runs it (SKYPANEL_NODE_GATEWAY_ADDR)")
		gatewayHostList = fs.String("node-gateway-hosts", envOr("SKYPANEL_NODE_GATEWAY_HOSTS", ""),
			"comma-separated host names and IPs nodes dial the gateway by, for its certificate; default: --public-gateway-address's host (loopback is always added) (SKYPANEL_NODE_GATEWAY_HOSTS)")
		certLifetime = fs.Duration("node-certificate-lifetime", envDuration("SKYPANEL_NODE_CERTIFICATE_LIFETIME", nodegateway.DefaultCertificateLifetime),
			"how long a node's gateway certificate is valid; agents renew it when a third is left (SKYPANEL_NODE_CERTIFICATE_LIFETIME)")
		rateLimit = fs.Float64("rate-limit", envFloat("SKYPANEL_RATE_LIMIT", apiserver.DefaultRateLimit),
			"requests per second each API token may make, sustained, in this process; past it 429 with Retry-After (SKYPANEL_RATE_LIMIT)")
		rateBurst = fs.Int("rate-burst", envInt("SKYPANEL_RATE_BURST", apiserver.DefaultRateBurst),
			"requests a token may make at once above --rate-limit (SKYPANEL_RATE_BURST)")
		bindNodeInstall(fs, &nodeInstall)
	})
	if err != nil {
		return err
	}
	runGateway := *gatewayAddr != "" && *gatewayAddr != "off"
	if nodeInstall.PublicGatewayAddress == "" && runGateway {
		nodeInstall.PublicGatewayAddress = publicGatewayAddress(nodeInstall.PublicURL, *gatewayAddr)
	}
	if err := nodeInstall.Validate(); err != nil {
		return err
	}
	if *rateLimit <= 0 || *rateBurst < 1 {
		return fmt.Errorf("--rate-limit %g / --rate-burst %d: want a positive rate and a burst of at least 1", *rateLimit, *rateBurst)
	}
	if *certLifetime < time.Minute || *certLifetime > 365*24*time.Hour {
		return fmt.Errorf("--node-certificate-lifetime %s: want 1m to 8760h", *certLifetime)
	}
	gate.Upstream = cfg.RegistryUpstream
	if err := gate.validate(); err != nil {
		return err
	}
	if err := cfg.loadGitHub(nodeInstall.PublicURL); err != nil {
		return err
	}
	if nodeInstall.PublicURL == "" {
		log.Warn("no --public-url (SKYPANEL_PUBLIC_URL): new nodes get no install command")
	}
	store, closeDB, err := openStore(ctx, log, cfg)
	if err != nil {
		return err
	}
	defer closeDB()
	if *adminTokenFile != "" {
		if err := ensureAdminToken(ctx, store, *adminTokenFile); err != nil {
			return err
		}
	}
	tc, err := dialTemporal(ctx, log, cfg)
	if err != nil {
		return err
	}
	defer tc.Close()
	apiCfg := apiserver.Config{AllowLoopbackGit: cfg.AllowLoopbackGit, Keyring: cfg.keyring, Backups: cfg.backupStore(), MinBackupInterval: cfg.MinBackupInterval, CodecOrigins: splitList(*codecOrigins),
		BillingPeriod: cfg.BillingPeriod, NodeInstall: nodeInstall, NodeCertificateLifetime: *certLifetime,
		RateLimit: *rateLimit, RateBurst: *rateBurst, PlatformDomain: cfg.PlatformDomain,
		GitHub: cfg.GitHub, GitHubWebhookSecret: cfg.githubWebhookSecret, FrontendURL: cfg.FrontendURL}
	var gateway *nodeGateway
	if runGateway {
		gatewayListener, err := net.Listen("tcp", *gatewayAddr)
		if err != nil {
			return fmt.Errorf("node gateway: listen on %s: %w", *gatewayAddr, err)
		}
		if gateway, err = newNodeGateway(ctx, log, cfg, store, gatewayListener, gatewayHosts(splitList(*gatewayHostList), nodeInstall.PublicGatewayAddress)); err != nil {
			gatewayListener.Close()
			return err
		}
		apiCfg.NodeCA, apiCfg.NodeGateway, apiCfg.NodeKeys = gateway.ca, gateway.gateway, gateway.keys
	} else if apiCfg.NodeCA, err = nodegateway.LoadAuthority(ctx, store, cfg.keyring); err != nil {
		return err
	}
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	// Any one failing stops the others: an API without its gateways leaves its nodes stranded.
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	if gate.Addr != "" {
		gateListener, err := net.Listen("tcp", gate.Addr)
		if err != nil {
			return fmt.Errorf("registry gate: listen on %s: %w", gate.Addr, err)
		}
		go func() {
			if err := serveRegistryGate(ctx, log, store, gate, gateListener); err != nil {
				stop(err)
			}
		}()
	}
	gatewayDone := make(chan error, 1)
	if gateway != nil {
		go func() {
			err := gateway.serve(ctx)
			stop(err)
			gatewayDone <- err
		}()
	} else {
		gatewayDone <- nil
	}
	api := apiserver.New(apiCfg, store, tc, log)
	defer api.Close()
	err = serveAPI(ctx, log, api, listener)
	stop(err)
	if gwErr := <-gatewayDone; err == nil {
		err = gwErr
	}
	if cause := context.Cause(ctx); err == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	return err
}

// serveAPI serves until ctx is done, then drains in-flight requests.
func serveAPI(ctx context.Context, log *slog.Logger, handler http.Handler, listener net.Listener) error {
	log.Info("API listening", "addr", listener.Addr().String())
	return serveUntilDone(ctx, "API", &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}, listener)
}

// serveUntilDone serves srv on listener until ctx is done, then gives in-flight requests 10 s
// to finish; what names the server in errors.
func serveUntilDone(ctx context.Context, what string, srv *http.Server, listener net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(listener) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", what, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shut down %s: %w", what, err)
	}
	return nil
}

// openStore connects and migrates: every process applies migrations at start (idempotent, under
// an advisory lock).
func openStore(ctx context.Context, log *slog.Logger, cfg controlConfig) (*db.Store, func(), error) {
	connectCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pool, err := db.Open(connectCtx, cfg.DatabaseURL)
	if err != nil {
		return nil, nil, err
	}
	if err := db.Migrate(ctx, pool, log); err != nil {
		pool.Close()
		return nil, nil, err
	}
	st := db.NewStore(pool)
	st.Currency = cfg.Currency
	return st, pool.Close, nil
}

func dialTemporal(ctx context.Context, log *slog.Logger, cfg controlConfig) (client.Client, error) {
	dialCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return sptemporal.Dial(dialCtx, cfg.temporalClient(), log)
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
