package nodegateway

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
)

// Certificate lifetimes. A node renews its certificate once less than a third of its lifetime
// is left (RenewAfter), so a node that is down for days still comes back with time to spare.
const (
	DefaultCertificateLifetime = 30 * 24 * time.Hour
	caLifetime                 = 10 * 365 * 24 * time.Hour
	// maxClockSkew backdates every certificate: a node whose clock is a little behind accepts
	// it. A short-lived certificate (tests) is backdated by a tenth of its lifetime instead, so
	// its renewal point (a third before its end) stays ahead.
	maxClockSkew = 5 * time.Minute
)

func clockSkew(lifetime time.Duration) time.Duration { return min(maxClockSkew, lifetime/10) }

// nodeUnit marks a certificate as a node's: its subject's OU. The CN is the node's id.
const nodeUnit = "skypanel-node"

// ErrBadRequest: a certificate signing request the authority refuses (malformed, a bad
// signature, a weak key). Its message says why, and never holds key material.
var ErrBadRequest = errors.New("certificate request refused")

// Authority is the control plane's own CA for the node gateway: it issues each node's client
// certificate from the node's CSR (the node's private key never leaves the node) and the
// gateway's server certificate. Its private key rests sealed with the platform keyring.
type Authority struct {
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
	// tokenKey authenticates the task tokens the gateway hands to nodes; it rests beside the
	// CA key, sealed the same way.
	tokenKey []byte
}

// KeyStore is where the authority's keys rest (db.Store).
type KeyStore interface {
	NodeGatewayKeys(ctx context.Context) (db.NodeGatewayKeys, error)
	CreateNodeGatewayKeys(ctx context.Context, k db.NodeGatewayKeys) (db.NodeGatewayKeys, error)
}

// LoadAuthority opens the authority stored in store with keyring, making it on first use. Every
// API replica loads the same one: the first to store its keys wins and the others open those.
func LoadAuthority(ctx context.Context, store KeyStore, keyring *secrets.Keyring) (*Authority, error) {
	stored, err := store.NodeGatewayKeys(ctx)
	if errors.Is(err, db.ErrNotFound) {
		stored, err = createAuthority(ctx, store, keyring)
	}
	if err != nil {
		return nil, fmt.Errorf("node gateway CA: %w", err)
	}
	return openAuthority(stored, keyring)
}

func createAuthority(ctx context.Context, store KeyStore, keyring *secrets.Keyring) (db.NodeGatewayKeys, error) {
	a, err := GenerateAuthority(time.Now())
	if err != nil {
		return db.NodeGatewayKeys{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(a.key)
	if err != nil {
		return db.NodeGatewayKeys{}, fmt.Errorf("encode the CA key: %w", err)
	}
	sealedKey, err := keyring.Encrypt(keyDER, secrets.NodeCAKey())
	if err != nil {
		return db.NodeGatewayKeys{}, fmt.Errorf("seal the CA key: %w", err)
	}
	sealedTokenKey, err := keyring.Encrypt(a.tokenKey, secrets.NodeTaskTokenKey())
	if err != nil {
		return db.NodeGatewayKeys{}, fmt.Errorf("seal the task-token key: %w", err)
	}
	return store.CreateNodeGatewayKeys(ctx, db.NodeGatewayKeys{CACertificate: string(a.certPEM), SealedCAKey: sealedKey, SealedTokenKey: sealedTokenKey})
}

func openAuthority(stored db.NodeGatewayKeys, keyring *secrets.Keyring) (*Authority, error) {
	cert, err := parseCertificatePEM([]byte(stored.CACertificate))
	if err != nil {
		return nil, fmt.Errorf("node gateway CA certificate: %w", err)
	}
	keyDER, err := keyring.Decrypt(stored.SealedCAKey, secrets.NodeCAKey())
	if err != nil {
		return nil, fmt.Errorf("open the node gateway CA key: %s: %w", secrets.Explain(err), err)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return nil, errors.New("the node gateway CA key does not parse")
	}
	key, ok := parsed.(crypto.Signer)
	if !ok || !publicKeysEqual(key.Public(), cert.PublicKey) {
		return nil, errors.New("the node gateway CA key does not match its certificate")
	}
	tokenKey, err := keyring.Decrypt(stored.SealedTokenKey, secrets.NodeTaskTokenKey())
	if err != nil {
		return nil, fmt.Errorf("open the node gateway task-token key: %s: %w", secrets.Explain(err), err)
	}
	return &Authority{cert: cert, certPEM: []byte(stored.CACertificate), key: key, tokenKey: tokenKey}, nil
}

// GenerateAuthority makes a new CA (and task-token key) valid from now, in memory: the first
// start of the platform stores one (LoadAuthority); tests use it as it is.
func GenerateAuthority(now time.Time) (*Authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate the CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"SkyPanel"}, CommonName: "SkyPanel node gateway CA"},
		NotBefore:             now.Add(-maxClockSkew),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// It signs only leaf certificates: nodes' and the gateway's.
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("self-sign the CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	tokenKey := make([]byte, 32)
	if _, err := rand.Read(tokenKey); err != nil {
		return nil, fmt.Errorf("generate the task-token key: %w", err)
	}
	return &Authority{cert: cert, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key, tokenKey: tokenKey}, nil
}

// CertificatePEM is the CA's certificate: what nodes trust the gateway by.
func (a *Authority) CertificatePEM() []byte { return a.certPEM }

// Pool holds the CA alone: the only issuer the gateway accepts client certificates from.
func (a *Authority) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(a.cert)
	return pool
}

// CheckRequest says whether IssueNode would accept csrPEM: the registration checks it before it
// spends the node's one-time token.
func CheckRequest(csrPEM []byte) error {
	_, err := parseCSR(csrPEM)
	return err
}

// NodeCertificate is a certificate issued to a node.
type NodeCertificate struct {
	PEM      []byte
	Serial   string
	NotAfter time.Time
}

// IssueNode signs the node's CSR (PEM) into a client certificate for the gateway, valid from
// now for lifetime (never past the CA's own end). The subject and every extension come from
// the authority, not from the request: the request only proves the node holds its key.
func (a *Authority) IssueNode(nodeID string, csrPEM []byte, now time.Time, lifetime time.Duration) (NodeCertificate, error) {
	if nodeID == "" || len(nodeID) > 64 {
		return NodeCertificate{}, fmt.Errorf("%w: node id %q", ErrBadRequest, nodeID)
	}
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return NodeCertificate{}, err
	}
	serial, err := newSerial()
	if err != nil {
		return NodeCertificate{}, err
	}
	notAfter := a.notAfter(now, lifetime)
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"SkyPanel"}, OrganizationalUnit: []string{nodeUnit}, CommonName: nodeID},
		NotBefore:    now.Add(-clockSkew(lifetime)),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// A node's certificate authenticates a client only: it cannot pose as the gateway.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, a.cert, csr.PublicKey, a.key)
	if err != nil {
		return NodeCertificate{}, fmt.Errorf("sign the certificate of node %s: %w", nodeID, err)
	}
	return NodeCertificate{PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), Serial: serialString(serial), NotAfter: notAfter}, nil
}

// IssueServer makes the gateway's own server certificate and key for hosts (names and IP
// addresses nodes dial it by), valid from now for lifetime. The key lives in memory only.
func (a *Authority) IssueServer(hosts []string, now time.Time, lifetime time.Duration) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate the gateway's key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return tls.Certificate{}, err
	}
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"SkyPanel"}, CommonName: "SkyPanel node gateway"},
		NotBefore:    now.Add(-clockSkew(lifetime)),
		NotAfter:     a.notAfter(now, lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			template.IPAddresses = append(template.IPAddresses, ip)
		} else if h != "" {
			template.DNSNames = append(template.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, template, a.cert, key.Public(), a.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("sign the gateway's certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// notAfter is the end of a certificate issued now for lifetime: never past the CA's own.
func (a *Authority) notAfter(now time.Time, lifetime time.Duration) time.Time {
	end := now.Add(lifetime)
	if end.After(a.cert.NotAfter) {
		return a.cert.NotAfter
	}
	return end
}

// NodeIDOf is the node a verified client certificate was issued to; ok is false for a
// certificate that is not a node's.
func NodeIDOf(cert *x509.Certificate) (nodeID string, ok bool) {
	if len(cert.Subject.OrganizationalUnit) != 1 || cert.Subject.OrganizationalUnit[0] != nodeUnit {
		return "", false
	}
	id := cert.Subject.CommonName
	return id, id != "" && len(id) <= 64
}

// SerialOf is a certificate's serial as the store records it.
func SerialOf(cert *x509.Certificate) string { return serialString(cert.SerialNumber) }

func serialString(n *big.Int) string { return hex.EncodeToString(n.Bytes()) }

// newSerial is 128 random bits, positive.
func newSerial() (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	b[0] &= 0x7f
	b[0] |= 0x40 // never a short serial: every one prints as 32 hex digits
	return new(big.Int).SetBytes(b), nil
}

// parseCSR reads a PEM certificate request and checks its signature (the node holds the key)
// and its key (ECDSA P-256/P-384, Ed25519, or RSA of 2048 bits or more).
func parseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	block, rest := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" || len(bytes.TrimSpace(rest)) > 0 {
		return nil, fmt.Errorf("%w: want one PEM block of type CERTIFICATE REQUEST", ErrBadRequest)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: it does not parse", ErrBadRequest)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: its signature does not verify", ErrBadRequest)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("%w: ECDSA keys must be P-256 or P-384", ErrBadRequest)
		}
	case ed25519.PublicKey:
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("%w: RSA keys must have at least 2048 bits", ErrBadRequest)
		}
	default:
		return nil, fmt.Errorf("%w: unsupported key type", ErrBadRequest)
	}
	return csr, nil
}

func parseCertificatePEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("want a PEM block of type CERTIFICATE")
	}
	return x509.ParseCertificate(block.Bytes)
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
