// Package acme obtains certificates for an app's custom domains from an ACME CA (Let's Encrypt
// in production, Pebble under `make run` and the tests) with lego, answering the HTTP-01
// challenge from the node's nginx webroot. It runs on the node that serves the domain: the CA
// validates by connecting to the domain's address, which is that node.
//
// Keys never leave the node in the clear: the account key and the certificate's key reach it
// sealed, are opened here, and only the certificate (public) goes back.
package acme

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/lego"
	"github.com/go-acme/lego/v4/providers/http/webroot"
	"github.com/go-acme/lego/v4/registration"
)

// Request is one certificate to obtain.
type Request struct {
	DirectoryURL string
	Email        string // the account's contact; may be empty
	AccountKey   crypto.Signer
	// AccountURI is the account registered with AccountKey before; empty: it is registered
	// (or found, when the key has one already) now.
	AccountURI string
	CertKey    crypto.Signer
	Hostname   string
	// Webroot is the directory nginx serves /.well-known/acme-challenge/ from (lego writes
	// <Webroot>/.well-known/acme-challenge/<token>).
	Webroot string
	// RootCAs, when set, are the roots trusted for the CA's own HTTPS (Pebble's); nil: the
	// system's.
	RootCAs *x509.CertPool
	// Timeout bounds the whole exchange (0: 2 minutes).
	Timeout time.Duration
}

// Issued is what the CA issued.
type Issued struct {
	// CertificatePEM is the leaf then its chain, as nginx's ssl_certificate takes it.
	CertificatePEM []byte
	AccountURI     string
	Serial         string // hexadecimal
	NotBefore      time.Time
	NotAfter       time.Time
	// RenewalStart and RenewalEnd are the CA's suggested renewal window (ACME Renewal Info,
	// RFC 9773), asked with the same client right after issuance; zero when it offers none.
	RenewalStart time.Time
	RenewalEnd   time.Time
}

// account is lego's view of the ACME account.
type account struct {
	email string
	key   crypto.PrivateKey
	reg   *registration.Resource
}

func (a *account) GetEmail() string                        { return a.email }
func (a *account) GetRegistration() *registration.Resource { return a.reg }
func (a *account) GetPrivateKey() crypto.PrivateKey        { return a.key }

// client is a lego client for req's CA and account.
func client(req Request) (*lego.Client, *account, error) {
	acct := &account{email: req.Email, key: req.AccountKey}
	if req.AccountURI != "" {
		acct.reg = &registration.Resource{URI: req.AccountURI}
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	config := lego.NewConfig(acct)
	config.CADirURL = req.DirectoryURL
	config.UserAgent = "skypanel-agent"
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil
	if req.RootCAs != nil {
		transport.TLSClientConfig = &tls.Config{RootCAs: req.RootCAs, MinVersion: tls.VersionTLS12}
	}
	config.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: transport}
	config.Certificate.Timeout = timeout
	c, err := lego.NewClient(config)
	if err != nil {
		return nil, nil, fmt.Errorf("reach the ACME directory %s: %w", req.DirectoryURL, err)
	}
	return c, acct, nil
}

// Obtain runs the ACME exchange for req.Hostname: the account (registered once), an order, the
// HTTP-01 challenge answered from req.Webroot, and the certificate for req.CertKey.
func Obtain(ctx context.Context, req Request) (Issued, error) {
	if req.AccountKey == nil || req.CertKey == nil || req.Hostname == "" || req.Webroot == "" || req.DirectoryURL == "" {
		return Issued{}, errors.New("acme: an incomplete request")
	}
	c, acct, err := client(req)
	if err != nil {
		return Issued{}, err
	}
	if acct.reg == nil {
		reg, err := c.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true})
		if err != nil {
			return Issued{}, fmt.Errorf("register the ACME account: %w", err)
		}
		acct.reg = reg
	}
	provider, err := webroot.NewHTTPProvider(req.Webroot)
	if err != nil {
		return Issued{}, fmt.Errorf("the ACME webroot %s: %w", req.Webroot, err)
	}
	if err := c.Challenge.SetHTTP01Provider(provider); err != nil {
		return Issued{}, err
	}
	// lego takes no context: the exchange runs beside, and the activity stops waiting for it
	// when ctx ends (it ends by itself within req.Timeout and the HTTP client's timeouts).
	type result struct {
		res *certificate.Resource
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := c.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{req.Hostname}, PrivateKey: req.CertKey, Bundle: true})
		done <- result{res, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		return Issued{}, ctx.Err()
	}
	if r.err != nil {
		return Issued{}, &CAError{Message: caMessage(r.err)}
	}
	leaf, err := LeafOf(r.res.Certificate)
	if err != nil {
		return Issued{}, fmt.Errorf("the CA's certificate: %w", err)
	}
	issued := Issued{CertificatePEM: r.res.Certificate, AccountURI: acct.reg.URI, Serial: leaf.SerialNumber.Text(16),
		NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter}
	// No renewal info (a CA without ARI): the control plane renews at two thirds of the lifetime.
	if info, err := c.Certificate.GetRenewalInfo(certificate.RenewalInfoRequest{Cert: leaf}); err == nil {
		issued.RenewalStart, issued.RenewalEnd = info.SuggestedWindow.Start, info.SuggestedWindow.End
	}
	return issued, nil
}

// CAError is the CA refusing (or failing) an order: its message is the customer's to read.
type CAError struct{ Message string }

func (e *CAError) Error() string { return e.Message }

// caMessage is lego's error in one line, without its Go wrapping where the CA's own words follow.
func caMessage(err error) string {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	if len(msg) > 1000 {
		msg = msg[:1000] + "…"
	}
	return msg
}

// ParseKeyPEM reads a private key in PEM (SEC 1 EC, or PKCS #8), as the control plane makes them.
func ParseKeyPEM(raw []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, errors.New("not a PEM key")
	}
	switch block.Type {
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, errors.New("not a signing key")
		}
		return signer, nil
	}
	return nil, fmt.Errorf("unsupported key type %q", block.Type)
}

// LeafOf is the first certificate of a PEM bundle.
func LeafOf(bundle []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(bundle)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no certificate in the PEM")
	}
	return x509.ParseCertificate(block.Bytes)
}
