package workernode

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/skypanel/skypanel/secrets"
)

// The agent reaches Temporal only through the control plane's node gateway, over mutual TLS.
// Its client certificate comes from the control plane's CA: the agent makes its own key, sends
// a certificate signing request (at registration, then with its node token to renew), and keeps
// key and certificate in <data-dir>/gateway.pem (0600), the CA in <data-dir>/gateway-ca.pem.
// The key never leaves the node, and each renewal makes a new one.
//
// A renewal swaps the certificate without a restart: TLS asks for it at every handshake
// (GetClientCertificate), and the agent then closes its connections to the gateway, so the SDK
// dials again and presents the new one (the gateway accepts the old one only for a short
// grace after the renewal).

// gatewayIdentity is the node's current key and certificate for the gateway.
type gatewayIdentity struct {
	certPath, caPath string

	mu    sync.RWMutex
	cert  *tls.Certificate // nil until the node has one
	caPEM []byte
}

// loadGatewayIdentity reads the saved certificate and CA; an agent registered before the
// gateway existed has neither (and renews at once).
func loadGatewayIdentity(cfg Config) (*gatewayIdentity, error) {
	id := &gatewayIdentity{certPath: cfg.gatewayCertPath(), caPath: cfg.gatewayCAPath()}
	pair, err := os.ReadFile(id.certPath)
	if errors.Is(err, fs.ErrNotExist) {
		return id, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the gateway certificate: %w", err)
	}
	caPEM, err := os.ReadFile(id.caPath)
	if errors.Is(err, fs.ErrNotExist) {
		return id, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the gateway CA: %w", err)
	}
	cert, err := tls.X509KeyPair(pair, pair)
	if err != nil {
		// A half-written pair (a crash between writes) is replaced by the next renewal.
		slog.Warn("the saved gateway certificate is unusable; renewing it", "path", id.certPath, "err", err)
		return id, nil
	}
	id.cert, id.caPEM = &cert, caPEM
	return id, nil
}

// current is the certificate to present ("none" before the first one).
func (g *gatewayIdentity) current() *tls.Certificate {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.cert == nil {
		return &tls.Certificate{}
	}
	return g.cert
}

// renewAt is when the certificate should be renewed: once less than a third of its lifetime
// is left; the zero time when there is none.
func (g *gatewayIdentity) renewAt() time.Time {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.cert == nil || g.cert.Leaf == nil || g.caPEM == nil {
		return time.Time{}
	}
	leaf := g.cert.Leaf
	return leaf.NotAfter.Add(-leaf.NotAfter.Sub(leaf.NotBefore) / 3)
}

// tlsConfig trusts the gateway by the CA that issued the node's certificate, and presents the
// node's current certificate at each handshake.
func (g *gatewayIdentity) tlsConfig() (*tls.Config, error) {
	g.mu.RLock()
	caPEM := g.caPEM
	g.mu.RUnlock()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no CA certificate", g.caPath)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    roots,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return g.current(), nil
		},
	}, nil
}

// renew makes a new key, has the control plane sign it (with the node token) and saves the
// pair; caChanged says the control plane's CA is not the one the agent trusted until now.
func (g *gatewayIdentity) renew(ctx context.Context, api *APIClient, nodeID string) (caChanged bool, err error) {
	key, csrPEM, err := newKeyAndCSR(nodeID)
	if err != nil {
		return false, err
	}
	issued, err := api.RenewCertificate(ctx, csrPEM)
	if err != nil {
		return false, err
	}
	return g.save(key, issued)
}

// save checks what the control plane issued (for this key, under the CA it sent), writes it
// for root only and makes it current.
func (g *gatewayIdentity) save(key *ecdsa.PrivateKey, issued GatewayCertificate) (caChanged bool, err error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return false, fmt.Errorf("encode the node key: %w", err)
	}
	pair := append([]byte(issued.Certificate), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	cert, err := tls.X509KeyPair(pair, pair)
	if err != nil {
		return false, fmt.Errorf("the control plane's certificate is not for this node's key: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(issued.CACertificate)) {
		return false, errors.New("the control plane sent no usable CA certificate")
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return false, fmt.Errorf("the control plane's certificate does not verify under its CA: %w", err)
	}
	// The CA first: a certificate is never saved without the CA that goes with it.
	if err := secrets.WriteFileAtomic(g.caPath, []byte(issued.CACertificate), 0o600); err != nil {
		return false, fmt.Errorf("save the gateway CA: %w", err)
	}
	if err := secrets.WriteFileAtomic(g.certPath, pair, 0o600); err != nil {
		return false, fmt.Errorf("save the gateway certificate: %w", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	caChanged = g.caPEM != nil && string(g.caPEM) != issued.CACertificate
	g.cert, g.caPEM = &cert, []byte(issued.CACertificate)
	return caChanged, nil
}

// newKeyAndCSR makes the node's new private key and a request for it. The subject is only
// informative: the CA writes the node's id from the node token's, whatever the request says.
func newKeyAndCSR(nodeID string) (*ecdsa.PrivateKey, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("generate the node key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: nodeID}}, key)
	if err != nil {
		return nil, "", fmt.Errorf("make the certificate request: %w", err)
	}
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

// errGatewayCAChanged stops the agent when a renewal brought another CA (the control plane's
// was made anew): its TLS configuration trusts the old one, and a restart loads the new one.
var errGatewayCAChanged = errors.New("the node gateway's CA changed: the agent restarts to trust the new one")

// isFor says whether the certificate held names nodeID: one left from an earlier registration
// of the machine (another node) is not.
func (g *gatewayIdentity) isFor(nodeID string) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.cert != nil && g.cert.Leaf != nil && g.cert.Leaf.Subject.CommonName == nodeID
}

// ensureGatewayCertificate renews now when the node has no certificate of its own (registered
// before the gateway existed, its files lost, or a registration that brought none) or it is
// due, retrying while the API is unreachable.
func ensureGatewayCertificate(ctx context.Context, id *gatewayIdentity, api *APIClient, nodeID string) error {
	if at := id.renewAt(); !at.IsZero() && time.Now().Before(at) && id.isFor(nodeID) {
		return nil
	}
	delay := time.Second
	for {
		_, err := id.renew(ctx, api, nodeID)
		if err == nil {
			slog.InfoContext(ctx, "gateway certificate issued", "expires_at", id.current().Leaf.NotAfter.UTC().Format(time.RFC3339))
			return nil
		}
		if !retryable(err) {
			return fmt.Errorf("get the node's gateway certificate: %w", err)
		}
		slog.WarnContext(ctx, "get the node's gateway certificate: API not reachable, retrying", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 30*time.Second)
	}
}

// renewalLoop renews the certificate when it is due, then closes the agent's connections to
// the gateway so that they open again with the new one, and calls renewed (the node's key
// rotates with its certificate). A failed renewal is tried again every minute; the old
// certificate still has a third of its lifetime.
func renewalLoop(ctx context.Context, id *gatewayIdentity, api *APIClient, nodeID string, conns *gatewayConns, fail func(error), renewed func(context.Context) error) {
	for {
		wait := time.Until(id.renewAt())
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(wait, 0)):
		}
		caChanged, err := id.renew(ctx, api, nodeID)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			slog.WarnContext(ctx, "renew the gateway certificate", "err", err, "retry_in", time.Minute)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Minute):
			}
			continue
		case caChanged:
			fail(errGatewayCAChanged)
			return
		}
		closed := conns.closeAll()
		slog.InfoContext(ctx, "gateway certificate renewed", "expires_at", id.current().Leaf.NotAfter.UTC().Format(time.RFC3339), "connections_reopened", closed)
		if renewed != nil {
			if err := renewed(ctx); err != nil {
				// The previous key still works; the next renewal rotates again.
				slog.WarnContext(ctx, "rotate the node's key with its certificate", "err", err)
			}
		}
	}
}

// gatewayConns dials the gateway and keeps every connection it opened, to close them after a
// renewal: gRPC then dials again, and the new handshake presents the new certificate.
type gatewayConns struct {
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

func newGatewayConns() *gatewayConns { return &gatewayConns{conns: map[*trackedConn]struct{}{}} }

func (g *gatewayConns) dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, owner: g}
	g.mu.Lock()
	g.conns[tc] = struct{}{}
	g.mu.Unlock()
	return tc, nil
}

// closeAll closes the open connections and says how many there were.
func (g *gatewayConns) closeAll() int {
	g.mu.Lock()
	open := make([]*trackedConn, 0, len(g.conns))
	for c := range g.conns {
		open = append(open, c)
	}
	g.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
	return len(open)
}

type trackedConn struct {
	net.Conn
	owner *gatewayConns
	once  sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.owner.mu.Lock()
		delete(c.owner.conns, c)
		c.owner.mu.Unlock()
	})
	return c.Conn.Close()
}
