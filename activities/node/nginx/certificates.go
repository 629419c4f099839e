package nginx

// Certificates: each custom domain's certificate and key at a stable path under the prefix
// (certs/<hostname>/fullchain.pem and privkey.pem), so that a renewal swaps two files and
// reloads nginx, without rendering the route again or redeploying.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/skypanel/skypanel/activities/contract"
)

// InvalidCertificateError says why a certificate is refused (it does not parse, its key does
// not match, it does not cover the host name, it has expired); nothing was written. It never
// quotes the key.
type InvalidCertificateError struct{ Reason string }

func (e *InvalidCertificateError) Error() string { return "invalid certificate: " + e.Reason }

// ACMEWebroot is the directory the node's ACME client writes HTTP-01 challenges into (lego's
// webroot provider puts them in <ACMEWebroot>/.well-known/acme-challenge/); every server block
// of this nginx serves them.
func (r *Router) ACMEWebroot() string { return filepath.Join(r.opts.Prefix, ACMEWebrootDir) }

// CertificateDir is where hostname's certificate lives: fullchain.pem and privkey.pem.
func (r *Router) CertificateDir(hostname string) string {
	return filepath.Join(r.opts.Prefix, certsDir, hostname)
}

// hasCertificate says whether hostname's certificate and key are on disk.
func (r *Router) hasCertificate(hostname string) bool {
	for _, name := range []string{fullchainPEM, privkeyPEM} {
		if _, err := os.Stat(filepath.Join(r.CertificateDir(hostname), name)); err != nil {
			return false
		}
	}
	return true
}

// InstallCertificate puts hostname's certificate (certPEM: the leaf, then its chain) and key
// at their stable paths. When appID's route has the domain, nginx then serves it over HTTPS:
// the first certificate turns the domain's TLS on and renders the route again; a renewal only
// reloads nginx, which reads the new files. Either way the config is checked with nginx -t and,
// on failure, the previous files (certificate and site) are restored. It returns once a TLS
// handshake for hostname presents the new certificate and the reload's old workers are gone
// (at most DefaultDrain). served is false when nothing on this
// node serves the domain (no route for the app, no such domain on it, or no HTTPS listener):
// the files wait there for the route that will. keyPEM is secret: it is never logged nor
// quoted in an error.
func (r *Router) InstallCertificate(ctx context.Context, appID, hostname string, certPEM, keyPEM []byte, heartbeat func()) (served bool, err error) {
	if err := validateSlug("app id", appID); err != nil {
		return false, err
	}
	if err := ValidateHostname(hostname); err != nil {
		return false, err
	}
	leaf, err := checkCertificate(hostname, certPEM, keyPEM, time.Now())
	if err != nil {
		return false, err
	}
	served, reloaded, err := r.installCertificate(ctx, appID, hostname, certPEM, keyPEM)
	if err != nil || !served {
		return served, err
	}
	if err := r.waitCertificate(ctx, hostname, leaf.SerialNumber, heartbeat); err != nil {
		return true, err
	}
	// Until the old workers are gone they may still accept a connection, and answer it with
	// the previous configuration (plain HTTP where it now redirects).
	if err := reloaded.drain(ctx, 0, heartbeat); err != nil {
		return true, err
	}
	slog.InfoContext(ctx, "certificate served", "app_id", appID, "hostname", hostname,
		"serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter)
	return true, nil
}

// checkCertificate accepts a certificate chain whose leaf matches the key, covers hostname and
// has not expired, and returns the leaf.
func checkCertificate(hostname string, certPEM, keyPEM []byte, now time.Time) (*x509.Certificate, error) {
	// The errors of X509KeyPair are fixed texts; none quotes its input.
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, &InvalidCertificateError{Reason: err.Error()}
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, &InvalidCertificateError{Reason: err.Error()}
		}
	}
	if err := leaf.VerifyHostname(hostname); err != nil {
		return nil, &InvalidCertificateError{Reason: fmt.Sprintf("it does not cover %s: %v", hostname, err)}
	}
	if now.After(leaf.NotAfter) {
		return nil, &InvalidCertificateError{Reason: fmt.Sprintf("it expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))}
	}
	return leaf, nil
}

func (r *Router) installCertificate(ctx context.Context, appID, hostname string, certPEM, keyPEM []byte) (bool, reload, error) {
	r.routeMu.Lock()
	defer r.routeMu.Unlock()
	route, found, err := r.readRoute(appID)
	if err != nil {
		return false, reload{}, err
	}
	i := slices.IndexFunc(route.Domains, func(d contract.Domain) bool { return d.Hostname == hostname })
	r.mu.Lock()
	defer r.mu.Unlock()
	restoreCertificate, err := r.writeCertificate(ctx, hostname, certPEM, keyPEM)
	if err != nil {
		return false, reload{}, err
	}
	if !found || i < 0 || !r.listeners.hasHTTPS() {
		// No site names the files: nothing to reload.
		return false, reload{}, nil
	}
	tlsBefore := route.Domains[i].TLS
	route.Domains[i].TLS = true
	restore := restoreCertificate
	// A renewal renders the same site (the paths are stable): it stays as it is, and the
	// reload alone makes nginx read the new files.
	site := r.render(route)
	if current, err := os.ReadFile(r.sitePath(appID)); err != nil || !bytes.Equal(current, site) {
		restoreSite, err := r.writeSite(ctx, appID, site)
		if err != nil {
			restoreCertificate()
			return false, reload{}, err
		}
		restore = func() { restoreSite(); restoreCertificate() }
	}
	reloaded, err := r.load(ctx, restore)
	if err != nil {
		return false, reload{}, err
	}
	if tlsBefore {
		return true, reloaded, nil // a renewal: the route is as it was
	}
	return true, reloaded, r.saveRoute(route)
}

// writeCertificate writes hostname's certificate and key, each atomically, and returns what
// puts the previous ones back (or removes them, when there were none). The caller holds mu, so
// no reload reads one new file and one old.
func (r *Router) writeCertificate(ctx context.Context, hostname string, certPEM, keyPEM []byte) (restore func(), err error) {
	dir := r.CertificateDir(hostname)
	certPath, keyPath := filepath.Join(dir, fullchainPEM), filepath.Join(dir, privkeyPEM)
	previousCert, certErr := os.ReadFile(certPath)
	previousKey, keyErr := os.ReadFile(keyPath)
	hadPrevious := certErr == nil && keyErr == nil
	restore = func() {
		var err error
		if hadPrevious {
			if err = writeFileAtomic(keyPath, previousKey, 0o600); err == nil {
				err = writeFileAtomic(certPath, previousCert, 0o644)
			}
		} else {
			err = os.RemoveAll(dir)
		}
		if err != nil {
			slog.ErrorContext(ctx, "restore certificate", "hostname", hostname, "err", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("certificate of %s: %w", hostname, err)
	}
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		restore()
		return nil, fmt.Errorf("certificate key of %s: %w", hostname, err)
	}
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		restore()
		return nil, fmt.Errorf("certificate of %s: %w", hostname, err)
	}
	return restore, nil
}

// waitCertificate polls the HTTPS listener with hostname as SNI until the certificate nginx
// presents has serial: a reload is asynchronous, so only then do new connections get it.
func (r *Router) waitCertificate(ctx context.Context, hostname string, serial *big.Int, heartbeat func()) error {
	// The handshake only reads which certificate nginx presents, to compare its serial with the
	// one just installed; no request is sent. Verifying the chain would need the issuing CA's
	// roots (Pebble's in tests, whichever CA in production) and would prove nothing more about
	// which file nginx loaded, so verification is skipped here and only here.
	dialer := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: 2 * time.Second},
		Config:    &tls.Config{ServerName: hostname, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // see above
	}
	deadline := time.Now().Add(r.opts.ServeTimeout)
	var last string
	for {
		if heartbeat != nil {
			heartbeat()
		}
		conn, err := dialer.DialContext(ctx, "tcp", r.listeners.https.probe)
		if err == nil {
			presented := conn.(*tls.Conn).ConnectionState().PeerCertificates
			conn.Close()
			if len(presented) > 0 && presented[0].SerialNumber.Cmp(serial) == 0 {
				return nil
			}
			last = "another certificate"
			if len(presented) > 0 {
				last = "serial " + presented[0].SerialNumber.Text(16)
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nginx did not present the certificate with serial %s for %s within %s (last: %s)",
				serial.Text(16), hostname, r.opts.ServeTimeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// RemoveCertificate deletes hostname's certificate (its domain was removed). A route that still
// serves the domain over HTTPS is first rendered again without it, so no site names a missing
// file (nginx -t would then fail every later change). Removing a certificate that is not there
// is fine.
func (r *Router) RemoveCertificate(ctx context.Context, hostname string, heartbeat func()) error {
	if err := ValidateHostname(hostname); err != nil {
		return err
	}
	reloads, err := r.removeCertificate(ctx, hostname)
	if err != nil {
		return err
	}
	for _, reloaded := range reloads {
		if err := reloaded.drain(ctx, 0, heartbeat); err != nil {
			return err
		}
	}
	return nil
}

func (r *Router) removeCertificate(ctx context.Context, hostname string) ([]reload, error) {
	r.routeMu.Lock()
	defer r.routeMu.Unlock()
	routes, err := r.Routes()
	if err != nil {
		return nil, err
	}
	var reloads []reload
	for _, route := range routes {
		i := slices.IndexFunc(route.Domains, func(d contract.Domain) bool { return d.Hostname == hostname })
		if i < 0 || !route.Domains[i].TLS {
			continue
		}
		route.Domains[i].TLS = false
		reloaded, err := r.apply(ctx, route.AppID, r.render(route))
		if err != nil {
			return nil, err
		}
		reloads = append(reloads, reloaded)
		if err := r.saveRoute(route); err != nil {
			return nil, err
		}
	}
	if err := os.RemoveAll(r.CertificateDir(hostname)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("remove certificate of %s: %w", hostname, err)
	}
	slog.InfoContext(ctx, "certificate removed", "hostname", hostname)
	return reloads, nil
}

// removeDroppedCertificates deletes the certificates of the domains a route no longer has
// (SetDomains removed them), unless another app's route on this node has the domain now. A
// failure is logged: the files are only left behind. The caller holds routeMu.
func (r *Router) removeDroppedCertificates(ctx context.Context, previous, current []contract.Domain) {
	kept := map[string]bool{}
	for _, d := range current {
		kept[d.Hostname] = true
	}
	routes, err := r.Routes()
	if err != nil {
		slog.WarnContext(ctx, "list routes to remove dropped certificates", "err", err)
		return
	}
	for _, route := range routes {
		for _, d := range route.Domains {
			kept[d.Hostname] = true
		}
	}
	for _, d := range previous {
		if kept[d.Hostname] || ValidateHostname(d.Hostname) != nil {
			continue
		}
		if err := os.RemoveAll(r.CertificateDir(d.Hostname)); err != nil {
			slog.WarnContext(ctx, "remove the certificate of a dropped domain", "hostname", d.Hostname, "err", err)
		}
	}
}
