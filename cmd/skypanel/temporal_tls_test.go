package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// issue writes a certificate for name signed by parent (self-signed when parent is nil) and its
// key as PEM files in dir; it returns the certificate and key for signing others.
func issue(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), IsCA: isCA, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)       //nolint:errcheck
	os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600) //nolint:errcheck
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

// The loaded configuration completes a handshake with a server that requires a client
// certificate of its CA, as docker-compose.yml's Temporal frontend does.
func TestTemporalTLSConfigPassesAFrontendThatRequiresClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := issue(t, dir, "ca", nil, nil, true)
	issue(t, dir, "temporal", ca, caKey, false)
	issue(t, dir, "worker", ca, caKey, false)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	serverCert, err := tls.LoadX509KeyPair(filepath.Join(dir, "temporal.pem"), filepath.Join(dir, "temporal.key"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			// Only a handshake the server accepted (a client certificate of its CA) gets "ok".
			if conn.(*tls.Conn).Handshake() == nil {
				conn.Write([]byte("ok")) //nolint:errcheck
			}
			conn.Close()
		}
	}()

	cfg, err := temporalTLSConfig{Cert: filepath.Join(dir, "worker.pem"), Key: filepath.Join(dir, "worker.key"),
		CA: filepath.Join(dir, "ca.pem"), ServerName: "temporal"}.load()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), cfg)
	if err != nil {
		t.Fatalf("handshake with the client certificate: %v", err)
	}
	reply, err := io.ReadAll(conn)
	conn.Close()
	if string(reply) != "ok" {
		t.Fatalf("the frontend did not accept the client certificate: %q %v", reply, err)
	}

	if cfg, err := (temporalTLSConfig{}).load(); cfg != nil || err != nil {
		t.Errorf("no setting: %v %v, want plain gRPC", cfg, err)
	}
	for _, bad := range []temporalTLSConfig{
		{CA: filepath.Join(dir, "ca.pem")},
		{Cert: filepath.Join(dir, "worker.pem"), Key: filepath.Join(dir, "missing.key")},
		{Cert: filepath.Join(dir, "worker.pem"), Key: filepath.Join(dir, "worker.key"), CA: filepath.Join(dir, "worker.key")},
	} {
		if _, err := bad.load(); err == nil || !strings.HasPrefix(err.Error(), "temporal TLS:") {
			t.Errorf("%+v: %v, want a temporal TLS error", bad, err)
		}
	}
}
