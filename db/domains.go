package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// OpDomains publishes a change of the app's custom domains on its node (UpdateAppDomains).
const OpDomains = "domains"

// ErrNoSuchDomain: the app has no such domain (the app itself exists).
var ErrNoSuchDomain = errors.New("the application has no such domain")

// MaxAppDomains bounds the custom domains of one app.
const MaxAppDomains = 20

// Domain is a custom host name of an app, with the state of its certificate.
type Domain struct {
	Hostname          string
	CertificateStatus string // none, pending, issued, failed
	CertificateError  string
	// CertificateExpires is when the issued certificate expires (nil: none).
	CertificateExpires *time.Time
	CreatedAt          time.Time
}

// DomainTakenError refuses a host name another app, or this one, already has. OtherApp never
// says whose it is: another organization's domains are none of the caller's business.
type DomainTakenError struct {
	Hostname string
	OtherApp bool
}

func (e *DomainTakenError) Error() string {
	if e.OtherApp {
		return fmt.Sprintf("the domain %s is already used by another application", e.Hostname)
	}
	return fmt.Sprintf("the application already has the domain %s", e.Hostname)
}

// DomainLimitError refuses a domain past MaxAppDomains.
type DomainLimitError struct{ Max int }

func (e *DomainLimitError) Error() string {
	return fmt.Sprintf("an application has at most %d custom domains", e.Max)
}

// DomainChange is what AddDomain or RemoveDomain did: Publish says whether an operation was
// queued to publish it on the app's node (an app that routes nothing gets its domains with its
// next deploy or start).
type DomainChange struct {
	Enqueued
	Publish bool
	added   string
	removed *Domain
}

const domainColumns = `hostname, certificate_status, certificate_error, not_after, created_at`

func scanDomain(row pgx.Row) (Domain, error) {
	var d Domain
	err := row.Scan(&d.Hostname, &d.CertificateStatus, &d.CertificateError, &d.CertificateExpires, &d.CreatedAt)
	return d, err
}

// ListDomains returns the custom domains of an app of orgID, oldest first.
func (s *Store) ListDomains(ctx context.Context, orgID, appID string) ([]Domain, error) {
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM applications WHERE id::text = $1 AND org_id = $2)`, appID, orgID).Scan(&exists); err != nil {
		return nil, translate(err)
	}
	if !exists {
		return nil, ErrNotFound
	}
	rows, err := s.pool.Query(ctx, `SELECT `+domainColumns+` FROM app_domains WHERE app_id::text = $1 ORDER BY created_at, hostname`, appID)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", translate(err))
	}
	return collect(rows, func(row pgx.Row) (Domain, error) { return scanDomain(row) })
}

// TargetDomain is a custom domain as the app's route takes it.
type TargetDomain struct {
	Hostname string
	// Certificate: one is issued (and not expired), so the route serves the domain over HTTPS
	// where its node has it installed.
	Certificate bool
}

// appDomains are the host names the app's route serves besides its own, in a stable order
// (AppTargetByID).
func (s *Store) appDomains(ctx context.Context, appID string) ([]TargetDomain, error) {
	rows, err := s.pool.Query(ctx, `SELECT hostname, certificate_pem <> '' AND not_after > now() FROM app_domains
		WHERE app_id::text = $1 ORDER BY created_at, hostname`, appID)
	if err != nil {
		return nil, fmt.Errorf("load domains: %w", err)
	}
	return collect(rows, func(row pgx.Row) (TargetDomain, error) {
		var d TargetDomain
		return d, row.Scan(&d.Hostname, &d.Certificate)
	})
}

// AddDomain gives an app of orgID the host name (validated and normalized by the caller) and,
// when the app routes anything, queues publish in the same transaction.
func (s *Store) AddDomain(ctx context.Context, orgID, appID, hostname string, publish NewOperation) (Domain, DomainChange, error) {
	var d Domain
	var ch DomainChange
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockAppForDomains(ctx, tx, orgID, appID); err != nil {
			return err
		}
		var owner string
		err := tx.QueryRow(ctx, `SELECT app_id::text FROM app_domains WHERE hostname = $1`, hostname).Scan(&owner)
		switch {
		case err == nil:
			return &DomainTakenError{Hostname: hostname, OtherApp: owner != appID}
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		var count int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM app_domains WHERE app_id = $1`, appID).Scan(&count); err != nil {
			return err
		}
		if count >= MaxAppDomains {
			return &DomainLimitError{Max: MaxAppDomains}
		}
		d, err = scanDomain(tx.QueryRow(ctx, `INSERT INTO app_domains (hostname, app_id) VALUES ($1, $2) RETURNING `+domainColumns, hostname, appID))
		if err != nil {
			var conflict *ConflictError
			if errors.As(translate(err), &conflict) { // taken meanwhile
				return &DomainTakenError{Hostname: hostname, OtherApp: true}
			}
			return err
		}
		ch.added = hostname
		return queueDomainPublish(ctx, tx, orgID, appID, publish, &ch)
	})
	return d, ch, translate(err)
}

// RemoveDomain takes the host name off an app of orgID (ErrNotFound when it has no such
// domain: ErrNoSuchDomain) and, when the app routes anything, queues publish in the same transaction.
func (s *Store) RemoveDomain(ctx context.Context, orgID, appID, hostname string, publish NewOperation) (DomainChange, error) {
	var ch DomainChange
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockAppForDomains(ctx, tx, orgID, appID); err != nil {
			return err
		}
		d, err := scanDomain(tx.QueryRow(ctx, `DELETE FROM app_domains WHERE hostname = $1 AND app_id::text = $2 RETURNING `+domainColumns, hostname, appID))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNoSuchDomain
		}
		if err != nil {
			return err
		}
		ch.removed = &d
		return queueDomainPublish(ctx, tx, orgID, appID, publish, &ch)
	})
	return ch, translate(err)
}

// UndoDomainChange puts back what AddDomain or RemoveDomain changed, when the workflow that
// publishes it could not be started: the request then changed nothing.
func (s *Store) UndoDomainChange(ctx context.Context, appID string, ch DomainChange) error {
	switch {
	case ch.added != "":
		_, err := s.pool.Exec(ctx, `DELETE FROM app_domains WHERE hostname = $1 AND app_id::text = $2`, ch.added, appID)
		return translate(err)
	case ch.removed != nil:
		d := ch.removed
		_, err := s.pool.Exec(ctx, `INSERT INTO app_domains (hostname, app_id, certificate_status, certificate_error, created_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, d.Hostname, appID, d.CertificateStatus, d.CertificateError, d.CreatedAt)
		return translate(err)
	}
	return nil
}

// lockAppForDomains locks the app's row (domain changes of one app are serialized, and its
// deletion waits) and refuses an app being deleted.
func lockAppForDomains(ctx context.Context, tx pgx.Tx, orgID, appID string) error {
	var status string
	if err := tx.QueryRow(ctx, `SELECT status FROM applications WHERE id::text = $1 AND org_id = $2 FOR UPDATE`, appID, orgID).Scan(&status); err != nil {
		return err
	}
	_, _, deleting, err := queueState(ctx, tx, appID)
	if err != nil {
		return err
	}
	if status == AppDeleting || deleting {
		return &InvalidStateError{Reason: "the application is being deleted"}
	}
	return nil
}

// queueDomainPublish queues the operation that publishes a domain change when the app has a
// route on a node (a release there, running, stopped or suspended), or when operations are
// queued or running: one of them may have loaded the app before this change.
func queueDomainPublish(ctx context.Context, tx pgx.Tx, orgID, appID string, publish NewOperation, ch *DomainChange) error {
	var routed bool
	if err := tx.QueryRow(ctx, `SELECT node_id IS NOT NULL AND (current_release_id IS NOT NULL OR current_deployment_id IS NOT NULL)
			AND status IN ('running', 'stopped', 'suspended')
		FROM applications WHERE id = $1`, appID).Scan(&routed); err != nil {
		return err
	}
	queued, running, _, err := queueState(ctx, tx, appID)
	if err != nil {
		return err
	}
	if !routed && queued+running == 0 {
		return nil
	}
	ch.Publish = true
	ch.Enqueued, err = enqueueOperation(ctx, tx, orgID, appID, publish)
	return err
}

// DomainOfApp tells whether hostname is a custom domain of appID.
func (s *Store) DomainOfApp(ctx context.Context, appID, hostname string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM app_domains WHERE hostname = $1 AND app_id::text = $2)`, hostname, appID).Scan(&ok)
	return ok, translate(err)
}
