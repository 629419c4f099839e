package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/skypanel/skypanel/apiserver"
	"github.com/skypanel/skypanel/apiserver/registrygate"
	"github.com/skypanel/skypanel/db"
)

// registryGateConfig is where the API fronts the platform registry for the nodes
// (apiserver/registrygate): nodes push and pull through the gate with their own credential.
type registryGateConfig struct {
	Addr     string // listen address; empty: no gate
	Upstream string // the registry itself, http(s)://host:port (--registry-upstream), reached by the control plane only
	TLSCert  string // the gate's certificate and key (nodes reach it over TLS in production)
	TLSKey   string
}

func (c *registryGateConfig) bind(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "registry-gate-addr", envOr("SKYPANEL_REGISTRY_GATE_ADDR", ""),
		"listen address of the registry gate nodes push and pull through, e.g. :5000 (SKYPANEL_REGISTRY_GATE_ADDR; empty: none)")
	fs.StringVar(&c.TLSCert, "registry-gate-tls-cert", envOr("SKYPANEL_REGISTRY_GATE_TLS_CERT", ""), "the gate's TLS certificate, PEM (SKYPANEL_REGISTRY_GATE_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "registry-gate-tls-key", envOr("SKYPANEL_REGISTRY_GATE_TLS_KEY", ""), "the gate's TLS key, PEM (SKYPANEL_REGISTRY_GATE_TLS_KEY)")
}

func (c registryGateConfig) validate() error {
	if c.Addr == "" {
		return nil
	}
	if c.Upstream == "" {
		return errors.New("--registry-gate-addr needs --registry-upstream (SKYPANEL_REGISTRY_UPSTREAM): the registry the gate fronts")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--registry-gate-tls-cert and --registry-gate-tls-key go together")
	}
	return nil
}

// nodeCredentials authenticates a node token for the gate: the same check as the agent's API
// calls, so a revoked node is refused by both.
func nodeCredentials(st *db.Store) registrygate.Authenticator {
	return func(ctx context.Context, token string) (string, error) {
		nodeID, err := st.NodeIDByTokenHash(ctx, apiserver.HashToken(token))
		if errors.Is(err, db.ErrNotFound) || errors.Is(err, db.ErrNodeRevoked) {
			return "", registrygate.ErrUnknownCredential
		}
		return nodeID, err
	}
}

// serveRegistryGate serves the gate on listener until ctx is done.
func serveRegistryGate(ctx context.Context, log *slog.Logger, st *db.Store, cfg registryGateConfig, listener net.Listener) error {
	gate, err := registrygate.New(cfg.Upstream, nodeCredentials(st), log.With("component", "registry-gate"))
	if err != nil {
		return err
	}
	// No write timeout: a layer upload or download takes as long as it takes.
	srv := &http.Server{Handler: gate, ReadHeaderTimeout: 10 * time.Second}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("registry gate: TLS key pair: %w", err)
		}
		listener = tls.NewListener(listener, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	log.Info("registry gate listening", "addr", listener.Addr().String(), "upstream", cfg.Upstream, "tls", cfg.TLSCert != "")
	return serveUntilDone(ctx, "the registry gate", srv, listener)
}
