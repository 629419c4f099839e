package main

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"strings"

	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets/nodekeys"
	"github.com/skypanel/skypanel/temporal/codec"
	"github.com/skypanel/skypanel/temporal/nodegateway"
)

// DefaultNodeGatewayPort is the node gateway's port: nodes reach it, and nothing else of the
// control plane's Temporal.
const DefaultNodeGatewayPort = 7243

// nodeGateway is the node gateway a control-plane process runs, and its CA.
type nodeGateway struct {
	ca       *nodegateway.Authority
	gateway  *nodegateway.Gateway
	listener net.Listener
	// keys are the nodes' own keys: the gateway re-seals payloads with them, the API serves
	// them and re-seals app values with them (one cache for both).
	keys *nodekeys.Keys
}

// newNodeGateway opens the CA (made on first use, its key sealed with the keyring in
// Postgres) and builds the gateway on l; serve runs it. hosts are the names and IPs its server
// certificate names: what nodes dial it by.
func newNodeGateway(ctx context.Context, log *slog.Logger, cfg controlConfig, store *db.Store, l net.Listener, hosts []string) (*nodeGateway, error) {
	ca, err := nodegateway.LoadAuthority(ctx, store, cfg.keyring)
	if err != nil {
		return nil, err
	}
	// The reason a revoked node's work fails with is sealed like every other failure.
	_, failures := codec.EncryptionConverters(cfg.keyring)
	keys := nodekeys.New(store, cfg.keyring)
	gw, err := nodegateway.New(nodegateway.Options{
		Frontend: cfg.TemporalAddress, FrontendTLS: cfg.temporalTLS, Namespace: cfg.TemporalNamespace, Authority: ca, Standings: store,
		Hosts: hosts, FailureConverter: failures, Log: log,
		// A node never holds the platform key: its tasks reach it under its own.
		PlatformKeyring: cfg.keyring, NodeKeyring: keys.Keyring,
	})
	if err != nil {
		return nil, err
	}
	return &nodeGateway{ca: ca, gateway: gw, listener: l, keys: keys}, nil
}

// serve runs the gateway until ctx ends, then closes it.
func (g *nodeGateway) serve(ctx context.Context) error {
	defer g.gateway.Close() //nolint:errcheck
	return g.gateway.Serve(ctx, g.listener)
}

// gatewayHosts are the names the gateway's certificate covers: those given, else the public
// address's host; and always loopback, for a node on the control plane's machine.
func gatewayHosts(given []string, publicAddress string) []string {
	hosts := given
	if len(hosts) == 0 {
		if host, _, err := net.SplitHostPort(publicAddress); err == nil && host != "" {
			hosts = []string{host}
		}
	}
	for _, loopback := range []string{"localhost", "127.0.0.1", "::1"} {
		if !containsFold(hosts, loopback) {
			hosts = append(hosts, loopback)
		}
	}
	return hosts
}

// publicGatewayAddress is where nodes dial the gateway when --public-gateway-address is not
// given: the public URL's host, on the gateway's port.
func publicGatewayAddress(publicURL, listenAddr string) string {
	u, err := url.Parse(publicURL)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	_, port, err := net.SplitHostPort(listenAddr)
	if err != nil || port == "" || port == "0" {
		return ""
	}
	return net.JoinHostPort(u.Hostname(), port)
}

func containsFold(list []string, s string) bool {
	for _, item := range list {
		if strings.EqualFold(item, s) {
			return true
		}
	}
	return false
}
