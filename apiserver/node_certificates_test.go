package apiserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/humatest"

	"github.com/skypanel/skypanel/temporal/nodegateway"
)

// testCSR is a node's request for its own new key.
func testCSR(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "whoever"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// verifyNodeCertificate checks an answer's certificate: issued by its CA to nodeID, for a client.
func verifyNodeCertificate(t *testing.T, cert gatewayCertificate, nodeID string) {
	t.Helper()
	block, _ := pem.Decode([]byte(cert.Certificate))
	caBlock, _ := pem.Decode([]byte(cert.CACertificate))
	if block == nil || caBlock == nil {
		t.Fatalf("not PEM: %+v", cert)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caBlock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the certificate does not verify under the CA sent with it: %v", err)
	}
	if id, ok := nodegateway.NodeIDOf(leaf); !ok || id != nodeID {
		t.Errorf("certificate of node %q, want %q", id, nodeID)
	}
	if want := time.Now().Add(nodegateway.DefaultCertificateLifetime); cert.ExpiresAt.Before(want.Add(-time.Minute)) || cert.ExpiresAt.After(want) {
		t.Errorf("expires at %s, want about %s", cert.ExpiresAt, want)
	}
}

// The registration carries the node's certificate when it sends a CSR; a bad CSR is refused
// before the one-time token is spent; an API without a CA registers the node all the same.
func TestRegisterIssuesTheNodesGatewayCertificate(t *testing.T) {
	f := newFakeInstallStore()
	ca, err := nodegateway.GenerateAuthority(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, api := humatest.New(t)
	registerNodeInstallWithCA(api, testNodeInstallConfig(t), f, testKeyring(t), ca)
	created := decodeEnrollment(t, api.Post("/api/paas/admin/nodes", map[string]any{"name": "worker-1", "region": "us-east"}).Body)

	p := decodeProblem(t, api.Post("/api/paas/agent/register", map[string]any{"registration_token": created.RegistrationToken, "csr": "not a CSR"}), http.StatusUnprocessableEntity)
	if len(p.Errors) != 1 || p.Errors[0].Location != "body.csr" {
		t.Errorf("a bad CSR: %+v", p)
	}
	resp := api.Post("/api/paas/agent/register", map[string]any{"registration_token": created.RegistrationToken, "csr": testCSR(t)})
	if resp.Code != http.StatusOK {
		t.Fatalf("registration after a refused CSR (the token must be unspent): %d %s", resp.Code, resp.Body)
	}
	var out struct {
		NodeID             string              `json:"node_id"`
		GatewayCertificate *gatewayCertificate `json:"gateway_certificate"`
	}
	if err := json.Unmarshal(resp.Body.Bytes(), &out); err != nil || out.GatewayCertificate == nil {
		t.Fatalf("answer %s: %v", resp.Body, err)
	}
	verifyNodeCertificate(t, *out.GatewayCertificate, out.NodeID)
	if len(f.certificates[out.NodeID]) != 1 {
		t.Errorf("certificates recorded: %v", f.certificates)
	}

	_, noCA := humatest.New(t)
	registerNodeInstall(noCA, testNodeInstallConfig(t), f, testKeyring(t))
	second := decodeEnrollment(t, noCA.Post("/api/paas/admin/nodes", map[string]any{"name": "worker-2", "region": "us-east"}).Body)
	resp = noCA.Post("/api/paas/agent/register", map[string]any{"registration_token": second.RegistrationToken, "csr": testCSR(t)})
	var without map[string]any
	if resp.Code != http.StatusOK || json.Unmarshal(resp.Body.Bytes(), &without) != nil || without["node_token"] == nil || without["gateway_certificate"] != nil {
		t.Errorf("registration without a CA: %d %s", resp.Code, resp.Body)
	}
}

// A node renews with its token (the middleware's job, stood in for here): each renewal is a
// new certificate, recorded as the node's current one.
func TestRenewIssuesTheCallingNodeANewCertificate(t *testing.T) {
	f := newFakeInstallStore()
	ca, _ := nodegateway.GenerateAuthority(time.Now())
	_, api := humatest.New(t)
	asNode := func(id, path, summary string) huma.Operation {
		return huma.Operation{OperationID: id, Method: http.MethodPost, Path: path, Summary: summary, DefaultStatus: http.StatusNoContent,
			Middlewares: huma.Middlewares{func(ctx huma.Context, next func(huma.Context)) { next(huma.WithValue(ctx, nodeKey, "n7")) }}}
	}
	s := &Server{log: quietLog}
	nodeCertificates{ca: ca, lifetime: nodegateway.DefaultCertificateLifetime, store: f, log: quietLog}.register(api, asNode, s.problem)

	var serials []string
	for range 2 {
		resp := api.Post("/api/paas/agent/certificate", map[string]any{"csr": testCSR(t)})
		var cert gatewayCertificate
		if resp.Code != http.StatusOK || json.Unmarshal(resp.Body.Bytes(), &cert) != nil {
			t.Fatalf("renew: %d %s", resp.Code, resp.Body)
		}
		verifyNodeCertificate(t, cert, "n7")
		serials = append(serials, cert.Certificate)
	}
	if serials[0] == serials[1] || len(f.certificates["n7"]) != 2 {
		t.Errorf("two renewals: recorded %v", f.certificates)
	}
	decodeProblem(t, api.Post("/api/paas/agent/certificate", map[string]any{"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}), http.StatusUnprocessableEntity)

	_, noCA := humatest.New(t)
	nodeCertificates{store: f, log: quietLog}.register(noCA, asNode, s.problem)
	decodeProblem(t, noCA.Post("/api/paas/agent/certificate", map[string]any{"csr": testCSR(t)}), http.StatusServiceUnavailable)
}
