package workernode

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skypanel/skypanel/temporal/nodegateway"
)

// An agent registered before the gateway existed has no certificate: it gets one with its node
// token, for a key it made, and saves both for root only; a later start reads them and has
// nothing to renew until a third of the lifetime is left.
func TestAnAgentWithoutACertificateGetsOneWithItsToken(t *testing.T) {
	api := newFakeAPI(t)
	var err error
	if api.ca, err = nodegateway.GenerateAuthority(time.Now()); err != nil {
		t.Fatal(err)
	}
	cfg := Config{APIURL: api.URL, DataDir: t.TempDir()}
	id, err := loadGatewayIdentity(cfg)
	if err != nil || !id.renewAt().IsZero() {
		t.Fatalf("no saved certificate: %v, renew at %s", err, id.renewAt())
	}
	if err := ensureGatewayCertificate(context.Background(), id, NewAPIClient(api.URL, testNodeToken), "node-1"); err != nil {
		t.Fatal(err)
	}
	if api.renewalCount() != 1 {
		t.Fatalf("renewals %d, want 1", api.renewalCount())
	}
	for _, path := range []string{cfg.gatewayCertPath(), cfg.gatewayCAPath()} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", filepath.Base(path), st, err)
		}
	}
	pair, _ := os.ReadFile(cfg.gatewayCertPath())
	if !strings.Contains(string(pair), "BEGIN CERTIFICATE") || !strings.Contains(string(pair), "BEGIN PRIVATE KEY") {
		t.Errorf("gateway.pem holds no certificate and key")
	}

	again, err := loadGatewayIdentity(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Now().Add(nodegateway.DefaultCertificateLifetime * 2 / 3)
	if at := again.renewAt(); at.Before(want.Add(-10*time.Minute)) || at.After(want.Add(time.Minute)) {
		t.Errorf("renew at %s, want about %s", at, want)
	}
	if err := ensureGatewayCertificate(context.Background(), again, NewAPIClient(api.URL, testNodeToken), "node-1"); err != nil || api.renewalCount() != 1 {
		t.Errorf("a start with a fresh certificate renewed it: %v, %d renewals", err, api.renewalCount())
	}
	if _, err := again.tlsConfig(); err != nil {
		t.Error(err)
	}
	// The machine registered again as another node: the certificate left is not its own.
	if err := ensureGatewayCertificate(context.Background(), again, NewAPIClient(api.URL, testNodeToken), "node-2"); err != nil || api.renewalCount() != 2 {
		t.Errorf("another node's certificate was kept: %v, %d renewals", err, api.renewalCount())
	}
}

// A certificate that is not for the node's key, or not under the CA sent with it, is refused
// and nothing is saved.
func TestAnIssuedCertificateIsCheckedBeforeItIsSaved(t *testing.T) {
	ca, _ := nodegateway.GenerateAuthority(time.Now())
	other, _ := nodegateway.GenerateAuthority(time.Now())
	key, csr, err := newKeyAndCSR("node-1")
	if err != nil {
		t.Fatal(err)
	}
	issued, err := ca.IssueNode("node-1", []byte(csr), time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cfg := Config{DataDir: t.TempDir()}
	id, _ := loadGatewayIdentity(cfg)
	for name, tc := range map[string]struct {
		key *ecdsa.PrivateKey
		ca  []byte
	}{
		"another key":     {otherKey, ca.CertificatePEM()},
		"another CA sent": {key, other.CertificatePEM()},
	} {
		if _, err := id.save(tc.key, GatewayCertificate{Certificate: string(issued.PEM), CACertificate: string(tc.ca)}); err == nil {
			t.Errorf("%s: saved", name)
		}
	}
	if _, err := os.Stat(cfg.gatewayCertPath()); !os.IsNotExist(err) {
		t.Errorf("a refused certificate was saved: %v", err)
	}
	if _, err := id.save(key, GatewayCertificate{Certificate: string(issued.PEM), CACertificate: string(ca.CertificatePEM())}); err != nil {
		t.Errorf("the right one: %v", err)
	}
}
