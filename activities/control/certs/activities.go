// Package certs is the control plane's side of the custom domains' certificates: the ACME
// account and each certificate's key (made here and sealed with the platform keyring, so any
// node that serves the app can be given them), what an issuance stores, and when the next
// attempt may run. The ACME exchange itself runs on the app's node (activities/node/acme).
package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
)

// Error types workflows branch on.
const (
	// ErrTypeNotServed: the domain was removed, or its app is not routed on a node (nothing can
	// answer the CA's challenge): no certificate now.
	ErrTypeNotServed = "DomainNotServed"
)

// Config is the platform's ACME settings.
type Config struct {
	// DirectoryURL is the CA's ACME directory (SKYPANEL_ACME_DIRECTORY); empty: no automatic
	// TLS (domains are served over HTTP).
	DirectoryURL string
	// Email is the account's contact (SKYPANEL_ACME_EMAIL; CERTBOT_EMAIL is its old name).
	Email string
	// RetryBase is the wait after a first failed attempt; it doubles with every failure in a
	// row up to RetryMax. Let's Encrypt allows 5 failed validations per host name per hour: the
	// default 15 minutes keeps within that whatever happens.
	RetryBase time.Duration
	RetryMax  time.Duration
}

// DefaultRetryBase and DefaultRetryMax bound the backoff of failed attempts.
const (
	DefaultRetryBase = 15 * time.Minute
	DefaultRetryMax  = 12 * time.Hour
)

// Activities are the certificate activities of the control worker.
type Activities struct {
	Store   *db.Store
	Keyring *secrets.Keyring
	ACME    Config
	// Trigger runs the certificates schedule now; nil: the next scheduled check finds the work.
	Trigger func(ctx context.Context) error
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
}

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// DueInput asks for the domains that need a certificate now.
type DueInput struct {
	Limit int
	// Lease is how long a listed domain is not listed again (its issuance's time to finish).
	Lease time.Duration
}

// Due is one domain to issue a certificate for.
type Due struct {
	Hostname string
	AppID    string
	NodeID   string
	Renewal  bool
	// Failures is how many attempts in a row failed before (the backoff's step).
	Failures int
	// PickedAt is when this check picked it: the issuance's workflow ID names it.
	PickedAt time.Time
	// Moved: its certificate is still good but installed on a node the app has left; it is
	// installed on the app's node, not ordered again.
	Moved bool
}

// DueResult lists them.
type DueResult struct {
	Domains []Due
	// Disabled: no ACME directory is configured; nothing is ever due.
	Disabled bool
}

// CertificatesDue lists (and leases) the domains of routed apps that need a certificate now.
func (a *Activities) CertificatesDue(ctx context.Context, in DueInput) (DueResult, error) {
	if a.ACME.DirectoryURL == "" {
		return DueResult{Disabled: true}, nil
	}
	limit, lease := in.Limit, in.Lease
	if limit <= 0 {
		limit = 50
	}
	if lease <= 0 {
		lease = 10 * time.Minute
	}
	now := a.now().UTC().Truncate(time.Second)
	list, err := a.Store.CertificatesDue(ctx, now, lease, limit)
	if err != nil {
		return DueResult{}, err
	}
	out := DueResult{Domains: make([]Due, len(list))}
	for i, t := range list {
		out.Domains[i] = Due{Hostname: t.Hostname, AppID: t.AppID, NodeID: t.NodeID, Renewal: t.PEM != "", Failures: t.Failures, PickedAt: now, Moved: t.Moved(now)}
	}
	return out, nil
}

// PrepareInput names the domain an issuance is for.
type PrepareInput struct {
	Hostname string
}

// Prepared is what the node needs to run the ACME exchange: the account and a new key for the
// certificate, both sealed with the platform keyring (the node has them re-sealed for itself).
type Prepared struct {
	Hostname         string
	AppID            string
	NodeID           string
	DirectoryURL     string
	Email            string
	AccountKeySealed string
	AccountURI       string
	CertKeySealed    string
}

// PrepareCertificate makes the platform's ACME account key once per directory and a new key
// for the certificate. A new key per issuance: a renewal never reuses a key that may have
// been exposed.
func (a *Activities) PrepareCertificate(ctx context.Context, in PrepareInput) (Prepared, error) {
	if a.ACME.DirectoryURL == "" {
		return Prepared{}, temporal.NewNonRetryableApplicationError("no ACME directory is configured (SKYPANEL_ACME_DIRECTORY)", ErrTypeNotServed, nil)
	}
	t, err := a.Store.CertificateTarget(ctx, in.Hostname)
	if errors.Is(err, db.ErrNotFound) {
		return Prepared{}, temporal.NewNonRetryableApplicationError("the domain "+in.Hostname+" was removed", ErrTypeNotServed, nil)
	}
	if err != nil {
		return Prepared{}, err
	}
	if t.NodeID == "" {
		return Prepared{}, temporal.NewNonRetryableApplicationError("the app of "+in.Hostname+" is not placed on a node", ErrTypeNotServed, nil)
	}
	account, err := a.Store.ACMEAccount(ctx, a.ACME.DirectoryURL)
	if errors.Is(err, db.ErrNotFound) {
		keyPEM, err := newKeyPEM()
		if err != nil {
			return Prepared{}, err
		}
		sealed, err := a.Keyring.Encrypt(keyPEM, secrets.ACMEAccountKey(a.ACME.DirectoryURL))
		clear(keyPEM)
		if err != nil {
			return Prepared{}, fmt.Errorf("seal the ACME account key: %w", err)
		}
		account, err = a.Store.EnsureACMEAccount(ctx, db.ACMEAccount{DirectoryURL: a.ACME.DirectoryURL, Email: a.ACME.Email, KeySealed: sealed})
		if err != nil {
			return Prepared{}, err
		}
	} else if err != nil {
		return Prepared{}, err
	}
	certKey, err := newKeyPEM()
	if err != nil {
		return Prepared{}, err
	}
	certKeySealed, err := a.Keyring.Encrypt(certKey, secrets.CertificateKey(in.Hostname))
	clear(certKey)
	if err != nil {
		return Prepared{}, fmt.Errorf("seal the certificate key: %w", err)
	}
	return Prepared{Hostname: in.Hostname, AppID: t.AppID, NodeID: t.NodeID, DirectoryURL: a.ACME.DirectoryURL, Email: account.Email,
		AccountKeySealed: account.KeySealed, AccountURI: account.URI, CertKeySealed: certKeySealed}, nil
}

// RecordInput is an issued certificate.
type RecordInput struct {
	Hostname       string
	AppID          string
	NodeID         string
	DirectoryURL   string
	AccountURI     string
	CertificatePEM string
	CertKeySealed  string
	Serial         string
	NotBefore      time.Time
	NotAfter       time.Time
	RenewAfter     time.Time
}

// RecordCertificate stores an issued certificate (and the account's URI, the first time).
func (a *Activities) RecordCertificate(ctx context.Context, in RecordInput) error {
	if in.AccountURI != "" {
		if err := a.Store.SetACMEAccountURI(ctx, in.DirectoryURL, in.AccountURI); err != nil {
			return err
		}
	}
	renewAfter := in.RenewAfter
	if renewAfter.IsZero() || !renewAfter.Before(in.NotAfter) {
		renewAfter = TwoThirds(in.NotBefore, in.NotAfter)
	}
	err := a.Store.RecordCertificate(ctx, db.IssuedCertificate{Hostname: in.Hostname, AppID: in.AppID, PEM: in.CertificatePEM,
		KeySealed: in.CertKeySealed, Serial: in.Serial, NotBefore: in.NotBefore, NotAfter: in.NotAfter, RenewAfter: renewAfter, NodeID: in.NodeID})
	if errors.Is(err, db.ErrNotFound) {
		return temporal.NewNonRetryableApplicationError("the domain "+in.Hostname+" was removed meanwhile", ErrTypeNotServed, nil)
	}
	return err
}

// TwoThirds is when a certificate is renewed without renewal info from its CA: two thirds of
// its lifetime (day 60 of Let's Encrypt's 90).
func TwoThirds(notBefore, notAfter time.Time) time.Time {
	return notBefore.Add(notAfter.Sub(notBefore) * 2 / 3)
}

// FailureInput is a failed attempt.
type FailureInput struct {
	Hostname string
	AppID    string
	Message  string
	// Failures is the count of failed attempts in a row before this one.
	Failures int
}

// RecordCertificateFailure shows the CA's message on the domain and schedules its next attempt.
func (a *Activities) RecordCertificateFailure(ctx context.Context, in FailureInput) error {
	next := a.now().Add(a.backoff(in.Failures))
	return a.Store.RecordCertificateFailure(ctx, in.Hostname, in.AppID, in.Message, next)
}

// backoff is the wait after the (failures+1)th failure in a row.
func (a *Activities) backoff(failures int) time.Duration {
	base, ceiling := a.ACME.RetryBase, a.ACME.RetryMax
	if base <= 0 {
		base = DefaultRetryBase
	}
	if ceiling <= 0 {
		ceiling = DefaultRetryMax
	}
	wait := base
	for range min(failures, 20) {
		wait *= 2
		if wait >= ceiling {
			return ceiling
		}
	}
	return min(wait, ceiling)
}

// InstalledInput names a certificate to install on a node.
type InstalledInput struct {
	Hostname string
}

// Installable is a domain's current certificate, with its key sealed with the platform keyring,
// and the node its app is on.
type Installable struct {
	Hostname       string
	AppID          string
	NodeID         string
	CertificatePEM string
	KeySealed      string
}

// CurrentCertificate returns the domain's issued certificate, to install on a node that does not
// have it (a move); empty when it has none.
func (a *Activities) CurrentCertificate(ctx context.Context, in InstalledInput) (Installable, error) {
	t, err := a.Store.CertificateTarget(ctx, in.Hostname)
	if errors.Is(err, db.ErrNotFound) {
		return Installable{}, nil
	}
	if err != nil {
		return Installable{}, err
	}
	return Installable{Hostname: t.Hostname, AppID: t.AppID, NodeID: t.NodeID, CertificatePEM: t.PEM, KeySealed: t.KeySealed}, nil
}

// InstalledRecord says a certificate is installed on a node.
type InstalledRecord struct {
	Hostname string
	AppID    string
	NodeID   string
}

// RecordInstalled records where the domain's certificate is installed now.
func (a *Activities) RecordInstalled(ctx context.Context, in InstalledRecord) error {
	return a.Store.RecordInstalled(ctx, in.Hostname, in.AppID, in.NodeID)
}

func newKeyPEM() ([]byte, error) {
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

// TriggerCheck runs the certificates schedule now: a domain was published and waits for its
// certificate. Without ACME, or without a trigger, it does nothing.
func (a *Activities) TriggerCheck(ctx context.Context) error {
	if a.ACME.DirectoryURL == "" || a.Trigger == nil {
		return nil
	}
	return a.Trigger(ctx)
}
