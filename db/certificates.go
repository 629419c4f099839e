package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/skypanel/skypanel/secrets"
)

// Certificate states of a custom domain (app_domains.certificate_status).
const (
	CertificateNone    = "none"    // no certificate yet, none asked for (the app is not routed)
	CertificatePending = "pending" // being issued, or waiting for its next attempt
	CertificateIssued  = "issued"
	CertificateFailed  = "failed" // the last attempt failed: certificate_error says why
)

// ACMEAccount is the platform's account at one ACME CA.
type ACMEAccount struct {
	DirectoryURL string
	Email        string
	KeySealed    string
	URI          string
}

// ACMEAccount returns the account at directoryURL (ErrNotFound: none yet).
func (s *Store) ACMEAccount(ctx context.Context, directoryURL string) (ACMEAccount, error) {
	a := ACMEAccount{DirectoryURL: directoryURL}
	err := s.pool.QueryRow(ctx, `SELECT email, key_sealed, uri FROM acme_accounts WHERE directory_url = $1`, directoryURL).
		Scan(&a.Email, &a.KeySealed, &a.URI)
	return a, translate(err)
}

// EnsureACMEAccount stores a as the account at its directory unless one is stored already, and
// returns the stored one: two issuances racing for the first account end up with one.
func (s *Store) EnsureACMEAccount(ctx context.Context, a ACMEAccount) (ACMEAccount, error) {
	if _, err := s.pool.Exec(ctx, `INSERT INTO acme_accounts (directory_url, email, key_sealed) VALUES ($1, $2, $3)
		ON CONFLICT (directory_url) DO NOTHING`, a.DirectoryURL, a.Email, a.KeySealed); err != nil {
		return ACMEAccount{}, translate(err)
	}
	return s.ACMEAccount(ctx, a.DirectoryURL)
}

// SetACMEAccountURI records the account's URI once the CA has registered it.
func (s *Store) SetACMEAccountURI(ctx context.Context, directoryURL, uri string) error {
	_, err := s.pool.Exec(ctx, `UPDATE acme_accounts SET uri = $2 WHERE directory_url = $1 AND uri = ''`, directoryURL, uri)
	return translate(err)
}

// CertificateTarget is a custom domain whose certificate is to be issued or renewed: where
// its app is served.
type CertificateTarget struct {
	Hostname  string
	AppID     string
	NodeID    string
	Status    string
	Failures  int
	NotAfter  *time.Time
	KeySealed string // the current certificate's key (empty: none yet)
	PEM       string
	// InstalledNodeID is the node the certificate was installed on (empty: none).
	InstalledNodeID string
	// RenewAfter is when the certificate is due for renewal (nil: none issued).
	RenewAfter *time.Time
}

// Moved tells whether the domain has a certificate that is not due for renewal at now, but
// was installed on another node than the app's: it is to be installed there, not ordered anew.
func (t CertificateTarget) Moved(now time.Time) bool {
	return t.PEM != "" && t.NodeID != "" && t.InstalledNodeID != t.NodeID && t.RenewAfter != nil && t.RenewAfter.After(now) &&
		t.NotAfter != nil && t.NotAfter.After(now)
}

// certificateTargetColumns read a CertificateTarget from app_domains d joined with its app a.
const certificateTargetColumns = `d.hostname, d.app_id::text, COALESCE(a.node_id::text, ''), d.certificate_status, d.failures,
	d.not_after, d.key_sealed, d.certificate_pem, COALESCE(d.installed_node_id::text, ''), d.renew_after`

func scanCertificateTarget(row pgx.Row) (CertificateTarget, error) {
	var t CertificateTarget
	err := row.Scan(&t.Hostname, &t.AppID, &t.NodeID, &t.Status, &t.Failures, &t.NotAfter, &t.KeySealed, &t.PEM, &t.InstalledNodeID, &t.RenewAfter)
	return t, err
}

// routedApp is the condition for an app a whose route a node serves: only such a domain can
// answer the CA's HTTP-01 challenge.
const routedApp = `a.node_id IS NOT NULL AND (a.current_release_id IS NOT NULL OR a.current_deployment_id IS NOT NULL)
	AND a.status IN ('running', 'stopped', 'suspended')`

// CertificateTarget returns the domain as an issuance sees it (ErrNotFound: removed).
func (s *Store) CertificateTarget(ctx context.Context, hostname string) (CertificateTarget, error) {
	t, err := scanCertificateTarget(s.pool.QueryRow(ctx, `SELECT `+certificateTargetColumns+`
		FROM app_domains d JOIN applications a ON a.id = d.app_id WHERE d.hostname = $1`, hostname))
	return t, translate(err)
}

// CertificatesDue lists, oldest first and at most limit, the domains of routed apps that need
// a certificate now: none yet, a failed attempt whose backoff has passed, one due for renewal,
// or one issued on another node than the app's now (the app moved: its new node orders its own,
// which the CA validates there). Each is leased for leaseFor (its next attempt moves past the lease), so the next
// pass does not pick it again while its issuance runs; the issuance's end sets it anew.
func (s *Store) CertificatesDue(ctx context.Context, now time.Time, leaseFor time.Duration, limit int) ([]CertificateTarget, error) {
	rows, err := s.pool.Query(ctx, `WITH due AS (
			SELECT d.hostname FROM app_domains d JOIN applications a ON a.id = d.app_id
			WHERE `+routedApp+` AND d.next_attempt_at <= $1
				AND (d.certificate_pem = '' OR d.renew_after <= $1 OR d.installed_node_id IS DISTINCT FROM a.node_id)
			ORDER BY d.next_attempt_at LIMIT $3 FOR UPDATE OF d SKIP LOCKED)
		UPDATE app_domains d SET next_attempt_at = $2,
			certificate_status = CASE WHEN d.certificate_status = 'issued' THEN 'issued' ELSE 'pending' END
		FROM due, applications a WHERE d.hostname = due.hostname AND a.id = d.app_id
		RETURNING `+certificateTargetColumns, now, now.Add(leaseFor), limit)
	if err != nil {
		return nil, fmt.Errorf("certificates due: %w", translate(err))
	}
	return collect(rows, func(row pgx.Row) (CertificateTarget, error) { return scanCertificateTarget(row) })
}

// IssuedCertificate is what a successful issuance stores.
type IssuedCertificate struct {
	Hostname   string
	AppID      string
	PEM        string
	KeySealed  string
	Serial     string
	NotBefore  time.Time
	NotAfter   time.Time
	RenewAfter time.Time
	NodeID     string // the node it was installed on
}

// RecordCertificate stores an issued certificate of a domain still of c.AppID (ErrNotFound: the
// domain was removed or moved to another app meanwhile; nothing is stored).
func (s *Store) RecordCertificate(ctx context.Context, c IssuedCertificate) error {
	tag, err := s.pool.Exec(ctx, `UPDATE app_domains SET certificate_status = 'issued', certificate_error = '', certificate_pem = $3,
			key_sealed = $4, serial = $5, not_before = $6, not_after = $7, renew_after = $8, failures = 0, next_attempt_at = now(),
			installed_node_id = NULLIF($9, '')::uuid
		WHERE hostname = $1 AND app_id::text = $2`,
		c.Hostname, c.AppID, c.PEM, c.KeySealed, c.Serial, c.NotBefore, c.NotAfter, c.RenewAfter, c.NodeID)
	if err != nil {
		return translate(err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// RecordCertificateFailure records a failed attempt with the CA's message and when the next may
// run. A domain that has a valid certificate keeps serving it: its status stays issued, the
// error is shown beside it.
func (s *Store) RecordCertificateFailure(ctx context.Context, hostname, appID, message string, next time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE app_domains SET failures = failures + 1, certificate_error = $3, next_attempt_at = $4,
			certificate_status = CASE WHEN certificate_pem <> '' AND not_after > now() THEN 'issued' ELSE 'failed' END
		WHERE hostname = $1 AND app_id::text = $2`, hostname, appID, message, next)
	return translate(err)
}

// RecordInstalled records that the domain's certificate is installed on nodeID (a moved app's
// new node).
func (s *Store) RecordInstalled(ctx context.Context, hostname, appID, nodeID string) error {
	_, err := s.pool.Exec(ctx, `UPDATE app_domains SET installed_node_id = $3::uuid, next_attempt_at = now()
		WHERE hostname = $1 AND app_id::text = $2`, hostname, appID, nodeID)
	return translate(err)
}

// MovedCertificatesWaiting tells whether a routed app has a certificate installed on another
// node than its own (it moved) that no issuance holds: the certificates schedule has work now.
func (s *Store) MovedCertificatesWaiting(ctx context.Context, now time.Time) (bool, error) {
	var waiting bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM app_domains d JOIN applications a ON a.id = d.app_id
		WHERE `+routedApp+` AND d.certificate_pem <> '' AND d.installed_node_id IS DISTINCT FROM a.node_id AND d.next_attempt_at <= $1)`, now).Scan(&waiting)
	return waiting, translate(err)
}

// ForceRenewal makes the domain's certificate due now (an operator's forced renewal).
func (s *Store) ForceRenewal(ctx context.Context, hostname string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE app_domains SET renew_after = now(), next_attempt_at = now() WHERE hostname = $1`, hostname)
	if err != nil {
		return translate(err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// reencryptCertificateKeys re-seals the ACME account keys, the certificates' keys and the
// managed databases' passwords not under the keyring's primary key (secrets reencrypt).
func (s *Store) reencryptCertificateKeys(ctx context.Context, ring *secrets.Keyring) (stored, moved int, err error) {
	type sealedRow struct {
		table, keyColumn, column, key, sealed string
		label                                 []byte
	}
	var all []sealedRow
	rows, err := s.pool.Query(ctx, `SELECT directory_url, key_sealed FROM acme_accounts`)
	if err != nil {
		return 0, 0, fmt.Errorf("read ACME accounts: %w", err)
	}
	accounts, err := collect(rows, func(row pgx.Row) (sealedRow, error) {
		r := sealedRow{table: "acme_accounts", keyColumn: "directory_url", column: "key_sealed"}
		err := row.Scan(&r.key, &r.sealed)
		r.label = secrets.ACMEAccountKey(r.key)
		return r, err
	})
	if err != nil {
		return 0, 0, err
	}
	rows, err = s.pool.Query(ctx, `SELECT hostname, key_sealed FROM app_domains WHERE key_sealed <> ''`)
	if err != nil {
		return 0, 0, fmt.Errorf("read certificate keys: %w", err)
	}
	certs, err := collect(rows, func(row pgx.Row) (sealedRow, error) {
		r := sealedRow{table: "app_domains", keyColumn: "hostname", column: "key_sealed"}
		err := row.Scan(&r.key, &r.sealed)
		r.label = secrets.CertificateKey(r.key)
		return r, err
	})
	if err != nil {
		return 0, 0, err
	}
	// Managed databases' passwords (deleted ones too: a final backup may be restored later).
	rows, err = s.pool.Query(ctx, `SELECT id::text, password_sealed FROM databases`)
	if err != nil {
		return 0, 0, fmt.Errorf("read database passwords: %w", err)
	}
	passwords, err := collect(rows, func(row pgx.Row) (sealedRow, error) {
		r := sealedRow{table: "databases", keyColumn: "id::text", column: "password_sealed"}
		err := row.Scan(&r.key, &r.sealed)
		r.label = secrets.DatabasePassword(r.key)
		return r, err
	})
	if err != nil {
		return 0, 0, err
	}
	all = append(append(accounts, certs...), passwords...)
	for _, r := range all {
		if !ring.NeedsReencrypt(r.sealed) {
			continue
		}
		resealed, err := ring.Reencrypt(r.sealed, r.label)
		if err != nil {
			return len(all), moved, fmt.Errorf("re-encrypt the key of %s %s: %s: %w", r.table, r.key, secrets.Explain(err), err)
		}
		// Only the value as read is replaced: one changed meanwhile was sealed by its writer.
		tag, err := s.pool.Exec(ctx, `UPDATE `+r.table+` SET `+r.column+` = $3 WHERE `+r.keyColumn+` = $1 AND `+r.column+` = $2`, r.key, r.sealed, resealed)
		if err != nil {
			return len(all), moved, fmt.Errorf("store the re-sealed key of %s %s: %w", r.table, r.key, err)
		}
		moved += int(tag.RowsAffected())
	}
	return len(all), moved, nil
}
