package nginx

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/skypanel/skypanel/activities/contract"
	"github.com/skypanel/skypanel/secrets"
)

// testCA is a throwaway CA that issues the tests' certificates; clients trust only it.
type testCA struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	pool   *x509.CertPool
	serial int64
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "skypanel test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, serial: 100}
}

// issued is a leaf certificate (then the CA's, as a chain) and its key, in PEM.
type issued struct {
	certPEM, keyPEM []byte
	serial          *big.Int
}

// issue signs a certificate for names, valid until notAfter (zero: a day from now).
func (ca *testCA) issue(t *testing.T, notAfter time.Time, names ...string) issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if notAfter.IsZero() {
		notAfter = time.Now().Add(24 * time.Hour)
	}
	ca.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
	return issued{certPEM: chain, keyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), serial: tmpl.SerialNumber}
}

// ringSecrets opens values with one keyring, as the node's keys would.
type ringSecrets struct{ ring *secrets.Keyring }

func (s ringSecrets) Open(_ context.Context, sealed string, label []byte) ([]byte, error) {
	return s.ring.Decrypt(sealed, label)
}

// startHTTPSRouter runs a private nginx with an HTTPS listener too, both on free loopback
// ports, and its activities with a keyring of their own.
func startHTTPSRouter(t *testing.T) (*Router, *Activities, *secrets.Keyring) {
	t.Helper()
	// As the agent's data dir (0711): nginx workers, an unprivileged user when the tests run as
	// root, read the ACME challenges under the prefix.
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	r, err := NewRouter(RouterOptions{Prefix: filepath.Join(dir, "nginx"),
		Listen:      fmt.Sprintf("127.0.0.1:%d", freeLoopbackPort(t)),
		HTTPSListen: fmt.Sprintf("127.0.0.1:%d", freeLoopbackPort(t))})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Stop(ctx); err != nil {
			t.Errorf("stop nginx: %v", err)
		}
	})
	ring, err := secrets.NewKeyring("node1")
	if err != nil {
		t.Fatal(err)
	}
	return r, &Activities{Router: r, Secrets: ringSecrets{ring}}, ring
}

// install runs the InstallCertificate activity with the key sealed for hostname's label.
func install(t *testing.T, a *Activities, ring *secrets.Keyring, appID, hostname string, cert issued) (InstallCertificateResult, error) {
	t.Helper()
	sealed, err := ring.Encrypt(cert.keyPEM, secrets.CertificateKey(hostname))
	if err != nil {
		t.Fatal(err)
	}
	return installSealed(t, a, InstallCertificateInput{AppID: appID, Hostname: hostname, CertificatePEM: string(cert.certPEM), KeySealed: sealed})
}

func installSealed(t *testing.T, a *Activities, in InstallCertificateInput) (InstallCertificateResult, error) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	val, err := env.ExecuteActivity(a.InstallCertificate, in)
	var res InstallCertificateResult
	if err == nil {
		err = val.Get(&res)
	}
	return res, err
}

// httpsGet fetches https://<host>/path?q=1 from the router's HTTPS listener with SNI host,
// trusting only the test CA.
func httpsGet(t *testing.T, r *Router, ca *testCA, host string) (*http.Response, string, error) {
	t.Helper()
	transport := &http.Transport{
		DisableKeepAlives: true,
		ForceAttemptHTTP2: true, // with a DialContext of its own, the transport would not
		TLSClientConfig:   &tls.Config{RootCAs: ca.pool, ServerName: host},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, r.HTTPSProbeAddr())
		},
	}
	client := &http.Client{Transport: transport, Timeout: 5 * time.Second, CheckRedirect: noRedirects}
	resp, err := client.Get("https://" + host + "/path?q=1")
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body), nil
}

// presentedSerial is the serial of the certificate nginx presents for SNI host.
func presentedSerial(t *testing.T, r *Router, host string) (*big.Int, error) {
	t.Helper()
	conn, err := tls.Dial("tcp", r.HTTPSProbeAddr(), &tls.Config{ServerName: host, InsecureSkipVerify: true})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// certFiles is every file under the certificates' directory, and its contents.
func certFiles(t *testing.T, r *Router) map[string]string {
	t.Helper()
	files := map[string]string{}
	root := filepath.Join(r.Prefix(), certsDir)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		files[strings.TrimPrefix(path, root)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// A domain with a certificate is served over HTTPS (HTTP/2, verified against its CA) with the
// release header, its plain HTTP redirects there with the release header too, and the app's
// other names stay on plain HTTP. A renewal swaps the certificate without rendering the route
// again; a deploy and a stopped page keep HTTPS; removing the certificate goes back to HTTP.
func TestCertificateServesADomainOverHTTPSAndRenews(t *testing.T) {
	r, a, ring := startHTTPSRouter(t)
	ca := newTestCA(t)
	in := PublishRouteInput{AppID: "app-1", Hostname: "demo.apps.localhost", ReleaseID: "rel-1", Upstreams: []string{upstream(t, "v1")},
		Domains: []contract.Domain{{Hostname: "www.example.com"}, {Hostname: "plain.example.org"}}}
	if err := publish(t, a, in); err != nil {
		t.Fatal(err)
	}
	first := ca.issue(t, time.Time{}, "www.example.com")
	if res, err := install(t, a, ring, "app-1", "www.example.com", first); err != nil || !res.Served {
		t.Fatalf("InstallCertificate: %+v %v", res, err)
	}

	resp, body, err := httpsGet(t, r, ca, "www.example.com")
	if err != nil {
		t.Fatalf("HTTPS: %v", err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get(ReleaseHeader) != "rel-1" || resp.ProtoMajor != 2 ||
		body != "v1 host=www.example.com path=/path?q=1 xff=127.0.0.1 proto=https" {
		t.Errorf("HTTPS: %s %d %v %q", resp.Proto, resp.StatusCode, resp.Header, body)
	}
	client := &http.Client{CheckRedirect: noRedirects, Transport: &http.Transport{DisableKeepAlives: true}}
	req, _ := http.NewRequest(http.MethodGet, "http://"+r.ProbeAddr()+"/path?q=1", nil)
	req.Host = "www.example.com"
	redirect, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	redirect.Body.Close()
	_, httpsPort, _ := net.SplitHostPort(r.HTTPSProbeAddr())
	if want := "https://www.example.com:" + httpsPort + "/path?q=1"; redirect.StatusCode != http.StatusMovedPermanently ||
		redirect.Header.Get("Location") != want || redirect.Header.Get(ReleaseHeader) != "rel-1" {
		t.Errorf("plain HTTP of the TLS domain: %d %v, want 301 to %s with the release header", redirect.StatusCode, redirect.Header, want)
	}
	for _, host := range []string{"demo.apps.localhost", "plain.example.org"} {
		if resp, body := get(t, r, host); resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "v1 host="+host+" ") {
			t.Errorf("%s over HTTP: %d %q", host, resp.StatusCode, body)
		}
	}
	for _, host := range []string{"demo.apps.localhost", "plain.example.org", "unknown.example.net"} {
		if _, err := presentedSerial(t, r, host); err == nil {
			t.Errorf("a TLS handshake for %s, which has no certificate, succeeded", host)
		}
	}
	dir := r.CertificateDir("www.example.com")
	if info, err := os.Stat(dir); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("certificate dir: %v %v, want 0700", info.Mode(), err)
	}
	if info, err := os.Stat(filepath.Join(dir, privkeyPEM)); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v, want 0600", info.Mode(), err)
	}
	if routes, _ := r.Routes(); len(routes) != 1 || !routes[0].Domains[0].TLS || routes[0].Domains[1].TLS {
		t.Errorf("the route state: %+v, want TLS on www.example.com only", routes)
	}

	// A renewal: clients see the new serial; the site and route files stay as they were, not
	// even written again.
	sites := snapshot(t, r)
	siteBefore, _ := os.Stat(r.sitePath("app-1"))
	routeBefore, _ := os.Stat(r.routePath("app-1"))
	renewed := ca.issue(t, time.Time{}, "www.example.com")
	if res, err := install(t, a, ring, "app-1", "www.example.com", renewed); err != nil || !res.Served {
		t.Fatalf("renewal: %+v %v", res, err)
	}
	if serial, err := presentedSerial(t, r, "www.example.com"); err != nil || serial.Cmp(renewed.serial) != 0 {
		t.Errorf("after the renewal nginx presents serial %v (%v), want %v", serial, err, renewed.serial)
	}
	if after := snapshot(t, r); fmt.Sprint(after) != fmt.Sprint(sites) {
		t.Errorf("the renewal rendered the route again:\n got %v\nwant %v", after, sites)
	}
	siteAfter, _ := os.Stat(r.sitePath("app-1"))
	routeAfter, _ := os.Stat(r.routePath("app-1"))
	if !os.SameFile(siteBefore, siteAfter) || !os.SameFile(routeBefore, routeAfter) {
		t.Error("the renewal wrote the site or route file again")
	}

	// A deploy (the control plane publishes the domain with TLS) and a stopped page keep HTTPS.
	in.ReleaseID, in.Upstreams, in.Domains[0].TLS = "rel-2", []string{upstream(t, "v2")}, true
	if err := publish(t, a, in); err != nil {
		t.Fatal(err)
	}
	if resp, body, err := httpsGet(t, r, ca, "www.example.com"); err != nil || resp.Header.Get(ReleaseHeader) != "rel-2" || !strings.HasPrefix(body, "v2 ") {
		t.Errorf("HTTPS after a deploy: %v %q %v", resp, body, err)
	}
	stopped := PublishRouteInput{AppID: "app-1", Hostname: in.Hostname, ReleaseID: "op-stop", Mode: RouteStopped, Domains: in.Domains}
	if err := publish(t, a, stopped); err != nil {
		t.Fatal(err)
	}
	if resp, body, err := httpsGet(t, r, ca, "www.example.com"); err != nil || resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, StoppedText) {
		t.Errorf("HTTPS of a stopped app: %v %q %v", resp, body, err)
	}

	// Removing the certificate serves the domain over plain HTTP again.
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	if _, err := env.ExecuteActivity(a.RemoveCertificate, RemoveCertificateInput{Hostname: "www.example.com"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the certificate dir is still there: %v", err)
	}
	if resp, body := get(t, r, "www.example.com"); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, StoppedText) {
		t.Errorf("plain HTTP after the certificate's removal: %d %q\n%s", resp.StatusCode, body, readFile(t, r.sitePath("app-1")))
	}
	if _, err := presentedSerial(t, r, "www.example.com"); err == nil {
		t.Error("a handshake for www.example.com succeeded after its certificate's removal")
	}
}

// A certificate may arrive before its domain is on the route (or on a node that does not route
// the app yet): it waits on disk, and the route serves it once it has the domain with TLS. A
// route that says TLS on a node without the files serves plain HTTP rather than failing.
func TestCertificateWaitsForItsDomain(t *testing.T) {
	r, a, ring := startHTTPSRouter(t)
	ca := newTestCA(t)
	withTLS := []contract.Domain{{Hostname: "www.example.com", TLS: true}}
	in := PublishRouteInput{AppID: "app-1", Hostname: "demo.apps.localhost", ReleaseID: "rel-1", Upstreams: []string{upstream(t, "v1")}, Domains: withTLS}
	if err := publish(t, a, in); err != nil {
		t.Fatalf("a route saying TLS on a node without the certificate: %v", err)
	}
	if resp, _ := get(t, r, "www.example.com"); resp.StatusCode != http.StatusOK {
		t.Errorf("without its files the domain is served over plain HTTP: %d", resp.StatusCode)
	}
	other := ca.issue(t, time.Time{}, "shop.example.org")
	if res, err := install(t, a, ring, "app-1", "shop.example.org", other); err != nil || res.Served {
		t.Fatalf("a certificate for a domain the route does not have: %+v %v, want installed, not served", res, err)
	}
	if _, err := setDomainsWith(t, a, "app-1", append(withTLS, contract.Domain{Hostname: "shop.example.org", TLS: true})...); err != nil {
		t.Fatal(err)
	}
	if resp, _, err := httpsGet(t, r, ca, "shop.example.org"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("HTTPS once the route has the domain: %v %v", resp, err)
	}

	// Dropping the domain deletes its certificate.
	if _, err := setDomainsWith(t, a, "app-1", withTLS...); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(r.CertificateDir("shop.example.org")); !os.IsNotExist(err) {
		t.Errorf("the dropped domain's certificate is still there: %v", err)
	}
}

func setDomainsWith(t *testing.T, a *Activities, appID string, domains ...contract.Domain) (SetRouteDomainsResult, error) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	val, err := env.ExecuteActivity(a.SetRouteDomains, SetRouteDomainsInput{AppID: appID, Domains: domains})
	var res SetRouteDomainsResult
	if err == nil {
		err = val.Get(&res)
	}
	return res, err
}

// ACME's HTTP-01 challenges are answered from the webroot over plain HTTP in every server
// block: a TLS domain (no redirect), an app's system name, a stopped and a suspended page, and
// a host no app is published at.
func TestACMEChallengesAreServedInEveryServerBlock(t *testing.T) {
	r, a, ring := startHTTPSRouter(t)
	ca := newTestCA(t)
	if err := publish(t, a, PublishRouteInput{AppID: "app-1", Hostname: "demo.apps.localhost", ReleaseID: "rel-1",
		Upstreams: []string{upstream(t, "v1")}, Domains: []contract.Domain{{Hostname: "www.example.com"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := install(t, a, ring, "app-1", "www.example.com", ca.issue(t, time.Time{}, "www.example.com")); err != nil {
		t.Fatal(err)
	}
	if err := publish(t, a, PublishRouteInput{AppID: "app-2", Hostname: "stopped.apps.localhost", ReleaseID: "op-1", Mode: RouteStopped,
		Domains: []contract.Domain{{Hostname: "stopped.example.com"}}}); err != nil {
		t.Fatal(err)
	}
	if err := publish(t, a, PublishRouteInput{AppID: "app-3", Hostname: "suspended.apps.localhost", ReleaseID: "op-2", Mode: RouteSuspended,
		Domains: []contract.Domain{{Hostname: "suspended.example.com"}}}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(r.ACMEWebroot(), ".well-known", "acme-challenge")
	if err := os.WriteFile(filepath.Join(dir, "token-1"), []byte("token-1.thumbprint"), 0o644); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{CheckRedirect: noRedirects, Transport: &http.Transport{DisableKeepAlives: true}}
	fetch := func(host, path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+r.ProbeAddr()+path, nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, host := range []string{"www.example.com", "demo.apps.localhost", "stopped.example.com", "suspended.example.com", "unknown.example.net"} {
		if status, body := fetch(host, "/.well-known/acme-challenge/token-1"); status != http.StatusOK || body != "token-1.thumbprint" {
			t.Errorf("the challenge for %s: %d %q", host, status, body)
		}
		// A token that is not there is a 404 of the webroot's, not the app's answer.
		if status, body := fetch(host, "/.well-known/acme-challenge/missing"); status != http.StatusNotFound || strings.HasPrefix(body, "v1 ") {
			t.Errorf("a missing challenge for %s: %d %q", host, status, body)
		}
	}
	// The rest of the TLS domain still redirects, the pages still answer.
	if status, _ := fetch("www.example.com", "/"); status != http.StatusMovedPermanently {
		t.Errorf("the TLS domain's /: %d, want 301", status)
	}
	if status, _ := fetch("stopped.example.com", "/"); status != http.StatusServiceUnavailable {
		t.Errorf("the stopped page: %d", status)
	}
	if status, _ := fetch("suspended.example.com", "/"); status != http.StatusPaymentRequired {
		t.Errorf("the suspended page: %d", status)
	}
	if status, body := fetch("unknown.example.net", "/"); status != http.StatusNotFound || !strings.Contains(body, NotServedText) {
		t.Errorf("an unknown host: %d %q", status, body)
	}
}

// An agent's start renders the sites an older agent wrote again: a stopped page written with a
// server-level return (which runs before any location) answers ACME's challenges afterwards.
func TestStartRendersOlderSitesAgain(t *testing.T) {
	r, a, _ := startHTTPSRouter(t)
	stopped := PublishRouteInput{AppID: "app-1", Hostname: "demo.apps.localhost", ReleaseID: "op-1", Mode: RouteStopped,
		Domains: []contract.Domain{{Hostname: "www.example.com"}}}
	if err := publish(t, a, stopped); err != nil {
		t.Fatal(err)
	}
	older := "server {\n    listen " + r.listeners.http.directive + ";\n    server_name demo.apps.localhost www.example.com;\n" +
		"    add_header " + ReleaseHeader + " op-1 always;\n    return 503 \"" + StoppedText + "\\n\";\n}\n"
	if err := os.WriteFile(r.sitePath("app-1"), []byte(older), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.ACMEWebroot(), ".well-known", "acme-challenge", "tok"), []byte("tok.thumb"), 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := NewRouter(r.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The old workers may answer a moment longer (Start does not wait for them).
	var status int
	var body []byte
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+r.ProbeAddr()+"/.well-known/acme-challenge/tok", nil)
		req.Host = "www.example.com"
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}, CheckRedirect: noRedirects}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if status = resp.StatusCode; status == http.StatusOK && string(body) == "tok.thumb" {
			return
		}
	}
	t.Errorf("the challenge after a restart: %d %q", status, body)
}

// A certificate that does not fit is refused before anything is written: the installed one
// keeps serving, and the sites and certificate files are unchanged.
func TestCertificateBadInputChangesNothing(t *testing.T) {
	r, a, ring := startHTTPSRouter(t)
	ca := newTestCA(t)
	if err := publish(t, a, PublishRouteInput{AppID: "app-1", Hostname: "demo.apps.localhost", ReleaseID: "rel-1",
		Upstreams: []string{upstream(t, "v1")}, Domains: []contract.Domain{{Hostname: "www.example.com"}}}); err != nil {
		t.Fatal(err)
	}
	good := ca.issue(t, time.Time{}, "www.example.com")
	if _, err := install(t, a, ring, "app-1", "www.example.com", good); err != nil {
		t.Fatal(err)
	}
	sites, certs := snapshot(t, r), certFiles(t, r)

	another := ca.issue(t, time.Time{}, "www.example.com")
	otherName := ca.issue(t, time.Time{}, "evil.example.com")
	expired := ca.issue(t, time.Now().Add(-time.Hour), "www.example.com")
	sealedFor := func(hostname string, key []byte) string {
		sealed, err := ring.Encrypt(key, secrets.CertificateKey(hostname))
		if err != nil {
			t.Fatal(err)
		}
		return sealed
	}
	for _, tc := range []struct {
		name    string
		in      InstallCertificateInput
		errType string
	}{
		{"a key that does not match", InstallCertificateInput{AppID: "app-1", Hostname: "www.example.com",
			CertificatePEM: string(good.certPEM), KeySealed: sealedFor("www.example.com", another.keyPEM)}, ErrTypeInvalidInput},
		{"a certificate for another name", InstallCertificateInput{AppID: "app-1", Hostname: "www.example.com",
			CertificatePEM: string(otherName.certPEM), KeySealed: sealedFor("www.example.com", otherName.keyPEM)}, ErrTypeInvalidInput},
		{"an expired certificate", InstallCertificateInput{AppID: "app-1", Hostname: "www.example.com",
			CertificatePEM: string(expired.certPEM), KeySealed: sealedFor("www.example.com", expired.keyPEM)}, ErrTypeInvalidInput},
		{"not PEM", InstallCertificateInput{AppID: "app-1", Hostname: "www.example.com",
			CertificatePEM: "ssl_certificate /etc/shadow;", KeySealed: sealedFor("www.example.com", another.keyPEM)}, ErrTypeInvalidInput},
		{"a hostile host name", InstallCertificateInput{AppID: "app-1", Hostname: "../../sites/x.conf",
			CertificatePEM: string(another.certPEM), KeySealed: sealedFor("../../sites/x.conf", another.keyPEM)}, ErrTypeInvalidInput},
		{"a hostile host name (a directive)", InstallCertificateInput{AppID: "app-1", Hostname: "www.example.com; include /etc/passwd",
			CertificatePEM: string(another.certPEM), KeySealed: sealedFor("www.example.com", another.keyPEM)}, ErrTypeInvalidInput},
		{"a hostile app id", InstallCertificateInput{AppID: "../x", Hostname: "www.example.com",
			CertificatePEM: string(another.certPEM), KeySealed: sealedFor("www.example.com", another.keyPEM)}, ErrTypeInvalidInput},
		{"a key sealed for another host name", InstallCertificateInput{AppID: "app-1", Hostname: "www.example.com",
			CertificatePEM: string(another.certPEM), KeySealed: sealedFor("evil.example.com", another.keyPEM)}, ErrTypeSecretUnavailable},
	} {
		_, err := installSealed(t, a, tc.in)
		wantAppError(t, err, tc.errType)
		if strings.Contains(err.Error(), "PRIVATE KEY") {
			t.Errorf("%s: the error quotes the key: %v", tc.name, err)
		}
		if after := snapshot(t, r); fmt.Sprint(after) != fmt.Sprint(sites) {
			t.Errorf("%s changed the sites: %v", tc.name, after)
		}
		if after := certFiles(t, r); fmt.Sprint(after) != fmt.Sprint(certs) {
			t.Errorf("%s changed the certificates: %v", tc.name, after)
		}
	}
	if serial, err := presentedSerial(t, r, "www.example.com"); err != nil || serial.Cmp(good.serial) != 0 {
		t.Errorf("nginx presents %v (%v), want the good certificate's %v", serial, err, good.serial)
	}
	noKeys := &Activities{Router: r}
	_, err := installSealed(t, noKeys, InstallCertificateInput{AppID: "app-1", Hostname: "www.example.com",
		CertificatePEM: string(another.certPEM), KeySealed: sealedFor("www.example.com", another.keyPEM)})
	wantAppError(t, err, ErrTypeSecretUnavailable)
}

// A renewal nginx rejects (the config broken by something else) is rolled back: the previous
// certificate files are restored and served.
func TestCertificateRenewalRollsBackRejectedConfig(t *testing.T) {
	r, a, ring := startHTTPSRouter(t)
	ca := newTestCA(t)
	if err := publish(t, a, PublishRouteInput{AppID: "app-1", Hostname: "demo.apps.localhost", ReleaseID: "rel-1",
		Upstreams: []string{upstream(t, "v1")}, Domains: []contract.Domain{{Hostname: "www.example.com"}}}); err != nil {
		t.Fatal(err)
	}
	good := ca.issue(t, time.Time{}, "www.example.com")
	if _, err := install(t, a, ring, "app-1", "www.example.com", good); err != nil {
		t.Fatal(err)
	}
	certs := certFiles(t, r)
	broken := filepath.Join(r.sitesDir(), "zz-broken.conf")
	if err := os.WriteFile(broken, []byte("this is not nginx config;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := install(t, a, ring, "app-1", "www.example.com", ca.issue(t, time.Time{}, "www.example.com"))
	wantAppError(t, err, ErrTypeRouteConfigInvalid)
	os.Remove(broken)
	if after := certFiles(t, r); fmt.Sprint(after) != fmt.Sprint(certs) {
		t.Error("the previous certificate files were not restored")
	}
	if serial, err := presentedSerial(t, r, "www.example.com"); err != nil || serial.Cmp(good.serial) != 0 {
		t.Errorf("nginx presents %v (%v), want %v still", serial, err, good.serial)
	}
}

func TestRenderSiteOfATLSDomain(t *testing.T) {
	l := listeners{http: listenAddr{directive: "80"}, https: listenAddr{directive: "443", probe: "127.0.0.1:443"}}
	in := PublishRouteInput{AppID: "app-1", Hostname: "demo.apps.example.net", ReleaseID: "rel-1", Upstreams: []string{"127.0.0.1:3000"},
		Domains: []contract.Domain{{Hostname: "www.example.com", TLS: true}, {Hostname: "plain.example.org"}}}
	site := renderSite(l, in, map[string]bool{"www.example.com": true})
	for _, want := range []string{
		"server_name demo.apps.example.net plain.example.org;",
		"return 301 https://$host$request_uri;", // 443: no port in the redirect
		"listen 443 ssl http2;\n    server_name www.example.com;\n    ssl_certificate certs/www.example.com/fullchain.pem;\n    ssl_certificate_key certs/www.example.com/privkey.pem;",
	} {
		if !strings.Contains(site, want) {
			t.Errorf("the site lacks %q:\n%s", want, site)
		}
	}
	if n := strings.Count(site, "location ^~ /.well-known/acme-challenge/"); n != 3 {
		t.Errorf("%d challenge locations, want one per server block (3):\n%s", n, site)
	}
	// Without an HTTPS listener every name is plain HTTP.
	if site := renderSite(listeners{http: l.http}, in, map[string]bool{"www.example.com": true}); strings.Contains(site, "ssl") ||
		!strings.Contains(site, "server_name demo.apps.example.net www.example.com plain.example.org;") {
		t.Errorf("no HTTPS listener:\n%s", site)
	}
}
