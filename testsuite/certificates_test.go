package testsuite

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// httpsClient talks to the node's nginx HTTPS listener whatever the host name (as a browser
// resolving the domain to this machine would), trusting only the local CA's root.
func httpsClient(t testing.TB) *http.Client {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(platform.dataDir, "acme-root.pem"))
	if err != nil {
		t.Fatalf("the ACME CA's root (skypanel dev writes it): %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(raw) {
		t.Fatal("acme-root.pem holds no certificate")
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, platform.nginxHTTPSAddr)
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// overHTTPS fetches https://<host>/ and returns the status, body and the serial of the
// certificate nginx presented.
func overHTTPS(client *http.Client, host string) (int, string, string, error) {
	resp, err := client.Get("https://" + host + "/")
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	serial := ""
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		serial = resp.TLS.PeerCertificates[0].SerialNumber.Text(16)
	}
	return resp.StatusCode, string(raw), serial, nil
}

type domainStatus struct {
	Domain            string `json:"domain"`
	CertificateStatus string `json:"certificate_status"`
	CertificateError  string `json:"certificate_error"`
	CertificateExpiry string `json:"certificate_expires_at"`
}

func (c customer) domain(t testing.TB, appID, host string) domainStatus {
	t.Helper()
	var list struct{ Items []domainStatus }
	if status, raw := platform.call(http.MethodGet, "/api/paas/applications/"+appID+"/domains", c.token, nil, &list); status != http.StatusOK {
		t.Fatalf("list domains: %d %s", status, raw)
	}
	for _, d := range list.Items {
		if d.Domain == host {
			return d
		}
	}
	t.Fatalf("no domain %s in %+v", host, list.Items)
	return domainStatus{}
}

// A custom domain gets a certificate from the CA (Pebble) with no further call: nginx serves
// the app over HTTPS with it, plain HTTP redirects there (with the release header), a forced
// renewal swaps in a new certificate while requests keep succeeding, and a redeploy, a scale
// to 3 and a rollback keep serving HTTPS.
func TestACustomDomainIsServedOverHTTPSWithAnIssuedCertificate(t *testing.T) {
	owner, app, repo, _ := liveHelloApp(t, "tls", "tls v1")
	domain := uniqueName("secure") + ".example.org"
	var added domainChange
	if status, raw := platform.call(http.MethodPost, "/api/paas/applications/"+app.ID+"/domains", owner.token, map[string]string{"domain": domain}, &added); status != http.StatusAccepted {
		t.Fatalf("add %s: %d %s", domain, status, raw)
	}
	owner.waitOperation(t, app.ID, added.OperationID)
	eventually(t, 90*time.Second, "the certificate of "+domain+" is issued", func() (bool, string) {
		d := owner.domain(t, app.ID, domain)
		return d.CertificateStatus == "issued" && d.CertificateExpiry != "", fmt.Sprintf("%+v", d)
	})

	client := httpsClient(t)
	var firstSerial string
	eventually(t, 30*time.Second, domain+" answers over HTTPS", func() (bool, string) {
		status, body, serial, err := overHTTPS(client, domain)
		firstSerial = serial
		return err == nil && status == http.StatusOK && body == "tls v1", fmt.Sprintf("%d %q %v", status, body, err)
	})

	// Plain HTTP redirects to HTTPS, still naming the release.
	status, _, header := platform.throughNginx(domain)
	if status != http.StatusMovedPermanently || !strings.HasPrefix(header.Get("Location"), "https://"+domain) || header.Get("X-SkyPanel-Release") == "" {
		t.Errorf("plain HTTP on %s: %d %v, want 301 to https with the release header", domain, status, header)
	}
	// The app's own name stays on HTTP.
	if status, body, _ := platform.throughNginx(app.Name + ".apps.localhost"); status != http.StatusOK || body != "tls v1" {
		t.Errorf("the app's own name: %d %q", status, body)
	}

	// A forced renewal: a new certificate (serial) is served, and no request fails meanwhile.
	var failures, requests atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				status, body, _, err := overHTTPS(client, domain)
				requests.Add(1)
				if err != nil || status != http.StatusOK || body != "tls v1" {
					failures.Add(1)
					lastErr.Store(fmt.Sprintf("%d %q %v", status, body, err))
				}
			}
		}()
	}
	if status, raw := platform.call(http.MethodPost, "/api/paas/admin/domains/"+domain+"/renew", platform.adminToken, nil, nil); status != http.StatusAccepted {
		t.Fatalf("force a renewal: %d %s", status, raw)
	}
	eventually(t, 90*time.Second, "a renewed certificate is served on "+domain, func() (bool, string) {
		_, _, serial, err := overHTTPS(client, domain)
		return err == nil && serial != "" && serial != firstSerial, fmt.Sprintf("serial %s (first %s) %v", serial, firstSerial, err)
	})
	close(stop)
	wg.Wait()
	if failures.Load() > 0 {
		t.Errorf("%d of %d requests failed during the renewal; last: %v", failures.Load(), requests.Load(), lastErr.Load())
	}

	// Every rollout publishes the route anew: a redeploy, a scale to 3 and a rollback keep HTTPS.
	served := func(after, want string) {
		t.Helper()
		if status, body, _, err := overHTTPS(client, domain); err != nil || status != http.StatusOK || body != want {
			t.Errorf("HTTPS on %s after %s: %d %q %v, want %q", domain, after, status, body, err, want)
		}
	}
	repo.commitMessage("tls v2")
	if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
		t.Fatalf("redeploy: %+v", dep)
	}
	served("a redeploy", "tls v2")
	owner.scale(t, app.ID, 3)
	served("a scale to 3", "tls v2")
	if status, raw := owner.rollback(t, app.ID, 1); status != http.StatusAccepted {
		t.Fatalf("rollback: %d %s", status, raw)
	}
	served("a rollback", "tls v1")
}

// pebblePID is the process of the stack's ACME CA (skypanel dev runs it with its config under
// the stack's data directory).
func pebblePID(t testing.TB) int {
	t.Helper()
	config := filepath.Join(platform.dataDir, "acme-ca", "pebble.json")
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(raw), config) && strings.HasSuffix(strings.Split(string(raw), "\x00")[0], "/pebble") {
			return pid
		}
	}
	t.Fatalf("no Pebble process with config %s", config)
	return 0
}

// With the CA unreachable (Pebble frozen), the domain's attempt fails and shows why while the
// app keeps serving on the domain over HTTP; once the CA answers again the certificate comes
// with no API call (the schedule retries after the backoff).
func TestACertificateComesOnceTheCAIsBack(t *testing.T) {
	owner, app, _, _ := liveHelloApp(t, "tlsdown", "tlsdown v1")
	pid := pebblePID(t)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("freeze Pebble: %v", err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Errorf("thaw Pebble: %v", err)
			}
		}
	}
	t.Cleanup(thaw)

	domain := uniqueName("later") + ".example.net"
	var added domainChange
	if status, raw := platform.call(http.MethodPost, "/api/paas/applications/"+app.ID+"/domains", owner.token, map[string]string{"domain": domain}, &added); status != http.StatusAccepted {
		t.Fatalf("add %s: %d %s", domain, status, raw)
	}
	owner.waitOperation(t, app.ID, added.OperationID)
	eventually(t, 2*time.Minute, "the failed attempt shows on "+domain, func() (bool, string) {
		d := owner.domain(t, app.ID, domain)
		return d.CertificateStatus == "failed" && d.CertificateError != "", fmt.Sprintf("%+v", d)
	})
	if status, body, _ := platform.throughNginx(domain); status != http.StatusOK || body != "tlsdown v1" {
		t.Errorf("%s over HTTP while the CA is down: %d %q", domain, status, body)
	}

	thaw()
	eventually(t, 2*time.Minute, "the certificate of "+domain+" is issued once the CA is back", func() (bool, string) {
		d := owner.domain(t, app.ID, domain)
		return d.CertificateStatus == "issued", fmt.Sprintf("%+v", d)
	})
	client := httpsClient(t)
	eventually(t, 30*time.Second, domain+" answers over HTTPS", func() (bool, string) {
		status, body, _, err := overHTTPS(client, domain)
		return err == nil && status == http.StatusOK && body == "tlsdown v1", fmt.Sprintf("%d %q %v", status, body, err)
	})
}
