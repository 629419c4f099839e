package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
)

// temporalTLSConfig is mutual TLS from a control-plane process (api, worker) to the Temporal
// frontend: docker-compose.yml runs Temporal with client certificates required. Under
// `skypanel dev` the frontend listens on loopback and none is set.
type temporalTLSConfig struct {
	Cert, Key  string // this process's client certificate and key, PEM
	CA         string // the CA that signed the frontend's certificate, PEM; empty: the system roots
	ServerName string // the name in the frontend's certificate, when not the address's host
}

func (c *temporalTLSConfig) bind(fs *flag.FlagSet) {
	fs.StringVar(&c.Cert, "temporal-tls-cert", envOr("TEMPORAL_TLS_CERT", ""), "client certificate for mutual TLS to the Temporal frontend, PEM (TEMPORAL_TLS_CERT)")
	fs.StringVar(&c.Key, "temporal-tls-key", envOr("TEMPORAL_TLS_KEY", ""), "its key, PEM (TEMPORAL_TLS_KEY)")
	fs.StringVar(&c.CA, "temporal-tls-ca", envOr("TEMPORAL_TLS_CA", ""), "the CA of the frontend's certificate, PEM (TEMPORAL_TLS_CA)")
	fs.StringVar(&c.ServerName, "temporal-tls-server-name", envOr("TEMPORAL_TLS_SERVER_NAME", ""), "the frontend certificate's name, when not the address's host (TEMPORAL_TLS_SERVER_NAME)")
}

// load is the TLS configuration of the Temporal client: nil when no TLS setting is given.
func (c temporalTLSConfig) load() (*tls.Config, error) {
	if c == (temporalTLSConfig{}) {
		return nil, nil
	}
	if c.Cert == "" || c.Key == "" {
		return nil, errors.New("temporal TLS: --temporal-tls-cert and --temporal-tls-key are both needed (the frontend requires a client certificate)")
	}
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return nil, fmt.Errorf("temporal TLS: client key pair %s, %s: %w", c.Cert, c.Key, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, ServerName: c.ServerName, MinVersion: tls.VersionTLS12}
	if c.CA != "" {
		pem, err := os.ReadFile(c.CA)
		if err != nil {
			return nil, fmt.Errorf("temporal TLS: CA: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("temporal TLS: CA %s holds no PEM certificate", c.CA)
		}
	}
	return cfg, nil
}
