// Package acmeca runs the ACME certificate authority of `skypanel dev`, `make run` and the
// tests: Pebble, Let's Encrypt's test CA, with pebble-challtestsrv as its DNS server answering
// 127.0.0.1 for every name. No real CA is reachable here, and Pebble speaks the same ACME (with
// ACME Renewal Info) as Let's Encrypt, so the platform issues, serves and renews certificates
// exactly as it would in production. Both run as child processes on loopback; `make deps`
// builds them into bin/ (github.com/letsencrypt/pebble/v2 v2.10.1).
//
// Pebble validates HTTP-01 challenges by connecting to port HTTPPort of the name's address,
// 127.0.0.1: the node's nginx, which serves /.well-known/acme-challenge/ from its webroot.
package acmeca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options configures Start.
type Options struct {
	// BinDir holds pebble and pebble-challtestsrv (make deps builds them into bin/).
	BinDir string
	// Dir holds the CA's configuration, its listener's certificate and its logs; required.
	Dir string
	// HTTPPort is where Pebble sends HTTP-01 validation requests (the node's nginx); required.
	HTTPPort int
	Log      *slog.Logger
}

// CA is a running Pebble.
type CA struct {
	dir           string
	directoryURL  string
	managementURL string
	listenerCA    []byte // PEM of the CA that signed Pebble's own HTTPS listener
	client        *http.Client
	procs         []*proc
	log           *slog.Logger
	stopOnce      sync.Once
}

// DirectoryURL is the ACME directory (SKYPANEL_ACME_DIRECTORY).
func (c *CA) DirectoryURL() string { return c.directoryURL }

// ListenerCAFile is a PEM file of the CA that signed Pebble's HTTPS listener: clients of the
// ACME API trust it (the node's extra CA roots).
func (c *CA) ListenerCAFile() string { return filepath.Join(c.dir, "listener-ca.pem") }

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// Start launches pebble-challtestsrv and Pebble and waits until Pebble serves its directory.
func Start(ctx context.Context, opts Options) (*CA, error) {
	if opts.Dir == "" || opts.HTTPPort <= 0 {
		return nil, errors.New("acmeca: Dir and HTTPPort are required")
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	pebbleBin := filepath.Join(opts.BinDir, "pebble")
	challBin := filepath.Join(opts.BinDir, "pebble-challtestsrv")
	for _, b := range []string{pebbleBin, challBin} {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("acmeca: %s not found (make deps builds it): %w", b, err)
		}
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("acmeca: %w", err)
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	listen, management, dns, challManagement := ports[0], ports[1], ports[2], ports[3]
	caPEM, certPEM, keyPEM, err := listenerCertificate()
	if err != nil {
		return nil, err
	}
	c := &CA{dir: opts.Dir, log: log, listenerCA: caPEM,
		directoryURL:  fmt.Sprintf("https://127.0.0.1:%d/dir", listen),
		managementURL: fmt.Sprintf("https://127.0.0.1:%d", management)}
	files := map[string][]byte{"listener-ca.pem": caPEM, "listener.pem": certPEM, "listener.key": keyPEM}
	conf, err := pebbleConfig(listen, management, opts.HTTPPort, opts.Dir)
	if err != nil {
		return nil, err
	}
	files["pebble.json"] = conf
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(opts.Dir, name), data, 0o600); err != nil {
			return nil, fmt.Errorf("acmeca: %w", err)
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	c.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool}}}

	dnsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(dns))
	if err := c.spawn("pebble-challtestsrv", opts.Dir, nil, challBin,
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "",
		"-dnsserver", dnsAddr, "-management", net.JoinHostPort("127.0.0.1", strconv.Itoa(challManagement)),
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""); err != nil {
		return nil, err
	}
	// No sleep before validating, no nonces rejected at random (lego retries them, but a
	// deterministic CA keeps the tests' logs plain).
	env := []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"}
	if err := c.spawn("pebble", opts.Dir, env, pebbleBin, "-config", filepath.Join(opts.Dir, "pebble.json"), "-dnsserver", dnsAddr); err != nil {
		_ = c.Stop(context.Background())
		return nil, err
	}
	if err := c.waitReady(ctx); err != nil {
		_ = c.Stop(context.Background())
		return nil, fmt.Errorf("%w (logs in %s)", err, opts.Dir)
	}
	log.Info("ACME CA running (Pebble)", "directory", c.directoryURL, "validates_on_port", opts.HTTPPort)
	return c, nil
}

// pebbleConfig is Pebble's configuration: its directory and management API on loopback, and
// HTTP-01 validations sent to httpPort.
func pebbleConfig(listen, management, httpPort int, dir string) ([]byte, error) {
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":                  fmt.Sprintf("127.0.0.1:%d", listen),
		"managementListenAddress":        fmt.Sprintf("127.0.0.1:%d", management),
		"certificate":                    filepath.Join(dir, "listener.pem"),
		"privateKey":                     filepath.Join(dir, "listener.key"),
		"httpPort":                       httpPort,
		"tlsPort":                        0,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":                   "ecdsa",
		"profiles": map[string]any{"default": map[string]any{
			"description": "Let's Encrypt's 90 days", "validityPeriod": 7776000}},
	}}
	return json.MarshalIndent(conf, "", "  ")
}

func (c *CA) spawn(name, dir string, env []string, bin string, args ...string) error {
	logFile, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("acmeca: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, and gone with its parent even when that one is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("acmeca: start %s: %w", bin, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	c.procs = append(c.procs, p)
	return nil
}

func (c *CA) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.client.Get(c.directoryURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		for _, p := range c.procs {
			select {
			case <-p.done:
				return fmt.Errorf("acmeca: %s exited at start", p.name)
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("acmeca: Pebble did not serve %s within 30 s (last: %v)", c.directoryURL, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// RootPEM is the root Pebble issues under, made when it started: clients of the apps' HTTPS
// trust it (curl --cacert).
func (c *CA) RootPEM(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.managementURL+"/roots/0", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("acmeca: read the root: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("acmeca: read the root: %d %v", resp.StatusCode, err)
	}
	return raw, nil
}

// Stop ends both processes: SIGTERM, then SIGKILL after 5 s.
func (c *CA) Stop(ctx context.Context) error {
	var errs []error
	c.stopOnce.Do(func() {
		for _, p := range c.procs {
			pid := p.cmd.Process.Pid
			_ = syscall.Kill(-pid, syscall.SIGTERM)
			select {
			case <-p.done:
				continue
			case <-time.After(5 * time.Second):
			case <-ctx.Done():
			}
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				errs = append(errs, fmt.Errorf("acmeca: %s (pid %d) did not exit after SIGKILL", p.name, pid))
			}
		}
	})
	return errors.Join(errs...)
}

// listenerCertificate makes a throwaway CA and, signed by it, the certificate of Pebble's own
// HTTPS listener on 127.0.0.1.
func listenerCertificate() (caPEM, certPEM, keyPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "SkyPanel dev ACME listener CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("acmeca: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// String describes the CA for logs.
func (c *CA) String() string {
	return "Pebble at " + strings.TrimSuffix(c.directoryURL, "/dir")
}
