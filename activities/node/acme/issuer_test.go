package acme

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/skypanel/skypanel/cmd/skypanel/devharness/acmeca"
)

// pebble runs Pebble with its HTTP-01 validations sent to a file server of webroot, as the
// node's nginx serves it; answering is switched by the returned flag.
func pebble(t *testing.T) (ca *acmeca.CA, webrootDir string, answering *bool) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	binDir := filepath.Join(filepath.Dir(file), "..", "..", "..", "bin")
	webrootDir = t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	on := true
	files := http.FileServer(http.Dir(webrootDir))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !on || !strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			http.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ca, err = acmeca.Start(ctx, acmeca.Options{BinDir: binDir, Dir: t.TempDir(), HTTPPort: l.Addr().(*net.TCPAddr).Port})
	if err != nil {
		t.Fatalf("start Pebble: %v", err)
	}
	t.Cleanup(func() { ca.Stop(context.Background()) })
	return ca, webrootDir, &on
}

func request(t *testing.T, ca *acmeca.CA, webrootDir, host string) Request {
	t.Helper()
	roots := x509.NewCertPool()
	raw, err := os.ReadFile(ca.ListenerCAFile())
	if err != nil || !roots.AppendCertsFromPEM(raw) {
		t.Fatalf("the listener CA: %v", err)
	}
	accountPEM, _ := NewKeyPEM()
	certPEM, _ := NewKeyPEM()
	accountKey, err := ParseKeyPEM(accountPEM)
	if err != nil {
		t.Fatal(err)
	}
	certKey, _ := ParseKeyPEM(certPEM)
	return Request{DirectoryURL: ca.DirectoryURL(), Email: "ops@example.com", AccountKey: accountKey, CertKey: certKey,
		Hostname: host, Webroot: webrootDir, RootCAs: roots, Timeout: 30 * time.Second}
}

// A certificate is obtained over HTTP-01 from the webroot: it chains to the CA's root, names the
// host and carries the requested key; the account is reused for the next order, and a
// renewal window is offered (ARI).
func TestObtainAgainstPebble(t *testing.T) {
	ca, webrootDir, _ := pebble(t)
	ctx := context.Background()
	host := fmt.Sprintf("shop-%d.example.com", time.Now().UnixNano()%1e9)
	req := request(t, ca, webrootDir, host)
	issued, err := Obtain(ctx, req)
	if err != nil {
		t.Fatalf("Obtain: %v", err)
	}
	rootPEM, err := ca.RootPEM(ctx)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	leaf, err := LeafOf(issued.CertificatePEM)
	if err != nil {
		t.Fatal(err)
	}
	inter := x509.NewCertPool()
	inter.AppendCertsFromPEM(issued.CertificatePEM)
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter}); err != nil {
		t.Errorf("the certificate does not verify for %s against Pebble's root: %v", host, err)
	}
	if !leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(req.CertKey.Public()) {
		t.Error("the certificate is not for the key sent")
	}
	if issued.AccountURI == "" || issued.Serial != leaf.SerialNumber.Text(16) || !issued.NotAfter.Equal(leaf.NotAfter) {
		t.Errorf("issued %+v", issued)
	}

	// The same account (by its URI) orders again: a renewal.
	req.AccountURI = issued.AccountURI
	again, err := Obtain(ctx, req)
	if err != nil || again.Serial == issued.Serial || again.AccountURI != issued.AccountURI {
		t.Fatalf("second order: %+v %v", again, err)
	}
	if start, end := again.RenewalStart, again.RenewalEnd; !start.Before(end) || !end.Before(again.NotAfter.Add(time.Second)) {
		t.Errorf("renewal window %s-%s (not after %s)", start, end, again.NotAfter)
	}
}

// A challenge the domain's server does not answer fails with the CA's own words.
func TestObtainReportsTheCAsRefusal(t *testing.T) {
	ca, webrootDir, answering := pebble(t)
	*answering = false
	req := request(t, ca, webrootDir, fmt.Sprintf("down-%d.example.com", time.Now().UnixNano()%1e9))
	_, err := Obtain(context.Background(), req)
	var caErr *CAError
	if !errors.As(err, &caErr) || !strings.Contains(caErr.Message, "404") {
		t.Fatalf("error %v: want a CAError with the CA's message (the 404 it got)", err)
	}
}

// NewKeyPEM makes an ECDSA P-256 key as the control plane does (activities/control/certs).
func NewKeyPEM() ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}
