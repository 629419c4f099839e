package nodegateway

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
)

// csrFor makes a key and a CSR for it, claiming subject cn.
func csrFor(t testing.TB, key crypto.Signer, cn string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// A node's certificate names the node the authority says, whatever the CSR claims; it verifies
// under the CA as a client, never as a server; it ends after its lifetime.
func TestIssueNodeSignsTheRequestForTheNodeItNames(t *testing.T) {
	now := time.Now()
	ca, err := GenerateAuthority(now)
	if err != nil {
		t.Fatal(err)
	}
	key := newKey(t)
	issued, err := ca.IssueNode("node-a-id", csrFor(t, key, "node-b-id"), now, DefaultCertificateLifetime)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := parseCertificatePEM(issued.PEM)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := NodeIDOf(cert); !ok || id != "node-a-id" {
		t.Errorf("node of the certificate: %q %v, want node-a-id (not the CSR's claim)", id, ok)
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		t.Error("the certificate is not for the CSR's key")
	}
	if SerialOf(cert) != issued.Serial || len(issued.Serial) != 32 {
		t.Errorf("serial %q, certificate's %q", issued.Serial, SerialOf(cert))
	}
	if got := cert.NotAfter.Sub(now); got > DefaultCertificateLifetime || got < DefaultCertificateLifetime-time.Second {
		t.Errorf("lifetime %s, want %s", got, DefaultCertificateLifetime)
	}
	asClient := x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: now}
	if _, err := cert.Verify(asClient); err != nil {
		t.Errorf("verify as a client: %v", err)
	}
	asServer := x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, CurrentTime: now}
	if _, err := cert.Verify(asServer); err == nil {
		t.Error("a node's certificate verifies as a server's: a node could pose as the gateway")
	}
	asClient.CurrentTime = now.Add(DefaultCertificateLifetime + time.Minute)
	if _, err := cert.Verify(asClient); err == nil {
		t.Error("the certificate verifies after its lifetime")
	}
	other, _ := GenerateAuthority(now)
	asClient.Roots, asClient.CurrentTime = other.Pool(), now
	if _, err := cert.Verify(asClient); err == nil {
		t.Error("the certificate verifies under another CA")
	}
}

func TestIssueNodeRefusesBadRequests(t *testing.T) {
	now := time.Now()
	ca, _ := GenerateAuthority(now)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	good := csrFor(t, newKey(t), "x")
	block, _ := pem.Decode(good)
	tampered := append([]byte(nil), block.Bytes...)
	tampered[len(tampered)-5] ^= 0xff // in the signature
	badRequests := map[string][]byte{
		"not PEM":         []byte("hello"),
		"a certificate":   ca.CertificatePEM(),
		"bad signature":   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered}),
		"a weak RSA key":  csrFor(t, weak, "x"),
		"two PEM blocks":  append(append([]byte(nil), good...), good...),
		"garbage in PEM ": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte("garbage")}),
	}
	for name, csr := range badRequests {
		if _, err := ca.IssueNode("node-a", csr, now, time.Hour); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: %v, want ErrBadRequest", name, err)
		}
	}
	if _, err := ca.IssueNode("", good, now, time.Hour); !errors.Is(err, ErrBadRequest) {
		t.Errorf("no node id: %v", err)
	}
}

func TestIssueServerCoversItsHostsAsAServer(t *testing.T) {
	now := time.Now()
	ca, _ := GenerateAuthority(now)
	cert, err := ca.IssueServer([]string{"gateway.example.com", "10.0.0.7", "::1"}, now, DefaultCertificateLifetime)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"gateway.example.com", "10.0.0.7", "::1"} {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: host, CurrentTime: now}); err != nil {
			t.Errorf("verify for %s: %v", host, err)
		}
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "other.example.com", CurrentTime: now}); err == nil {
		t.Error("the gateway's certificate verifies for a host it does not name")
	}
	if _, ok := NodeIDOf(cert.Leaf); ok {
		t.Error("the gateway's certificate reads as a node's")
	}
}

// memoryKeys is a KeyStore in memory, with db's first-one-wins rule.
type memoryKeys struct {
	mu     sync.Mutex
	stored *db.NodeGatewayKeys
}

func (m *memoryKeys) NodeGatewayKeys(context.Context) (db.NodeGatewayKeys, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stored == nil {
		return db.NodeGatewayKeys{}, db.ErrNotFound
	}
	return *m.stored, nil
}

func (m *memoryKeys) CreateNodeGatewayKeys(_ context.Context, k db.NodeGatewayKeys) (db.NodeGatewayKeys, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stored == nil {
		m.stored = &k
	}
	return *m.stored, nil
}

// The CA is made once and rests sealed: every later load opens the same one, and a keyring
// without the sealing key opens nothing.
func TestLoadAuthorityMakesOneCAAndKeepsItsKeySealed(t *testing.T) {
	ctx := context.Background()
	ring, err := secrets.NewKeyring("k1")
	if err != nil {
		t.Fatal(err)
	}
	store := &memoryKeys{}
	first, err := LoadAuthority(ctx, store, ring)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadAuthority(ctx, store, ring)
	if err != nil {
		t.Fatal(err)
	}
	if string(first.CertificatePEM()) != string(again.CertificatePEM()) || string(first.tokenKey) != string(again.tokenKey) {
		t.Error("a second load made another CA")
	}
	stored, _ := store.NodeGatewayKeys(ctx)
	if !strings.HasPrefix(stored.SealedCAKey, "v1:k1:") || !strings.HasPrefix(stored.SealedTokenKey, "v1:k1:") {
		t.Errorf("stored keys are not sealed under k1: %.12s %.12s", stored.SealedCAKey, stored.SealedTokenKey)
	}
	// What the first one issues, the second one's pool accepts.
	issued, err := first.IssueNode("n", csrFor(t, newKey(t), "n"), time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := parseCertificatePEM(issued.PEM)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: again.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("verify under the reloaded CA: %v", err)
	}

	other, _ := secrets.NewKeyring("k2")
	if _, err := LoadAuthority(ctx, store, other); !errors.Is(err, secrets.ErrUnknownKey) {
		t.Errorf("load with a keyring lacking k1: %v, want ErrUnknownKey", err)
	}
}
