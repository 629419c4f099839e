package acme

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/skypanel/skypanel/secrets"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// ErrTypeRefused: the CA refused or failed the order (its message says why); asking again at
// once would only spend the CA's rate limits.
const ErrTypeRefused = "CertificateRefused"

// KeysRequest names an issuance's keys, sealed with the platform keyring.
type KeysRequest struct {
	AppID            string
	Hostname         string
	DirectoryURL     string
	AccountKeySealed string
	CertKeySealed    string
}

// KeyOpener opens an issuance's keys on this node: the control plane re-seals them for the
// node (only for a domain of an app placed on it), and the node opens them with its own key.
type KeyOpener interface {
	OpenCertificateKeys(ctx context.Context, req KeysRequest) (accountKeyPEM, certKeyPEM []byte, err error)
	// Seal seals plain under this node's own key, bound to label: the certificate's key goes
	// on to the install step (nginx.InstallCertificate) sealed for this node.
	Seal(ctx context.Context, plain, label []byte) (string, error)
}

// Activities run the ACME exchange on the node. Register a pointer with the node's worker.
type Activities struct {
	Keys KeyOpener
	// Webroot is the directory the node's nginx serves /.well-known/acme-challenge/ from.
	Webroot string
	// RootCAs are extra roots trusted for the CA's own HTTPS (Pebble's); nil: the system's.
	RootCAs *x509.CertPool
}

// ResealInput is a certificate's key sealed with the platform keyring, for a domain of an app
// placed on this node.
type ResealInput struct {
	AppID     string
	Hostname  string
	KeySealed string
}

// ResealResult is the key sealed for this node, for nginx.InstallCertificate.
type ResealResult struct {
	KeySealedForNode string
}

// ResealCertificateKey has the control plane re-seal an issued certificate's key for this node
// (an app moved here brings its certificate along); the key is never in the clear on the way.
func (a *Activities) ResealCertificateKey(ctx context.Context, in ResealInput) (ResealResult, error) {
	if a.Keys == nil {
		return ResealResult{}, temporal.NewNonRetryableApplicationError("this node cannot open certificate keys (no node keys)", ErrTypeRefused, nil)
	}
	_, certPEM, err := a.Keys.OpenCertificateKeys(ctx, KeysRequest{AppID: in.AppID, Hostname: in.Hostname, CertKeySealed: in.KeySealed})
	if err != nil {
		return ResealResult{}, err
	}
	defer clear(certPEM)
	sealed, err := a.Keys.Seal(ctx, certPEM, secrets.CertificateKey(in.Hostname))
	if err != nil {
		return ResealResult{}, fmt.Errorf("seal the certificate key for this node: %w", err)
	}
	return ResealResult{KeySealedForNode: sealed}, nil
}

// ObtainInput is one issuance, as the control plane prepared it.
type ObtainInput struct {
	AppID            string
	Hostname         string
	DirectoryURL     string
	Email            string
	AccountKeySealed string
	AccountURI       string
	CertKeySealed    string
}

// ObtainResult is the certificate (public) and when to renew it.
type ObtainResult struct {
	CertificatePEM string
	AccountURI     string
	Serial         string
	NotBefore      time.Time
	NotAfter       time.Time
	// RenewAfter is a time in the CA's renewal window (ACME Renewal Info), zero when the CA
	// offers none (the control plane then renews at two thirds of the lifetime).
	RenewAfter time.Time
	// KeySealedForNode is the certificate's key sealed under this node's own key, for
	// nginx.InstallCertificate on this node.
	KeySealedForNode string
}

// ObtainCertificate orders a certificate for the domain from the CA, answering its HTTP-01
// challenge from the nginx webroot.
func (a *Activities) ObtainCertificate(ctx context.Context, in ObtainInput) (ObtainResult, error) {
	if a.Keys == nil {
		return ObtainResult{}, temporal.NewNonRetryableApplicationError("this node cannot open certificate keys (no node keys)", ErrTypeRefused, nil)
	}
	accountPEM, certPEM, err := a.Keys.OpenCertificateKeys(ctx, KeysRequest{AppID: in.AppID, Hostname: in.Hostname,
		DirectoryURL: in.DirectoryURL, AccountKeySealed: in.AccountKeySealed, CertKeySealed: in.CertKeySealed})
	if err != nil {
		return ObtainResult{}, err
	}
	accountKey, err := ParseKeyPEM(accountPEM)
	clear(accountPEM)
	if err != nil {
		return ObtainResult{}, temporal.NewNonRetryableApplicationError("the ACME account key does not parse", ErrTypeRefused, nil)
	}
	certKey, err := ParseKeyPEM(certPEM)
	if err != nil {
		clear(certPEM)
		return ObtainResult{}, temporal.NewNonRetryableApplicationError("the certificate key does not parse", ErrTypeRefused, nil)
	}
	keyForNode, err := a.Keys.Seal(ctx, certPEM, secrets.CertificateKey(in.Hostname))
	clear(certPEM)
	if err != nil {
		return ObtainResult{}, fmt.Errorf("seal the certificate key for this node: %w", err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx, "ordering a certificate for "+in.Hostname)
			}
		}
	}()
	req := Request{DirectoryURL: in.DirectoryURL, Email: in.Email, AccountKey: accountKey, AccountURI: in.AccountURI,
		CertKey: certKey, Hostname: in.Hostname, Webroot: a.Webroot, RootCAs: a.RootCAs}
	issued, err := Obtain(ctx, req)
	var refused *CAError
	if errors.As(err, &refused) {
		return ObtainResult{}, temporal.NewNonRetryableApplicationError(refused.Message, ErrTypeRefused, nil)
	}
	if err != nil {
		return ObtainResult{}, fmt.Errorf("order a certificate for %s: %w", in.Hostname, err)
	}
	out := ObtainResult{CertificatePEM: string(issued.CertificatePEM), AccountURI: issued.AccountURI, Serial: issued.Serial,
		NotBefore: issued.NotBefore, NotAfter: issued.NotAfter, KeySealedForNode: keyForNode}
	if start, end := issued.RenewalStart, issued.RenewalEnd; start.Before(end) {
		// A uniform time in the window, as RFC 9773 recommends: renewals spread out.
		out.RenewAfter = start.Add(time.Duration(rand.Int64N(int64(end.Sub(start)))))
	}
	return out, nil
}
