package db

import (
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store runs SkyPanel's queries. Every state change is one transaction: all or nothing.
type Store struct {
	pool *pgxpool.Pool
	// Currency of new wallets (ISO 4217, minor units everywhere); DefaultCurrency unless set.
	Currency string
	// BuildLogCap is how many bytes of a deployment's log the nodes may store;
	// DefaultBuildLogCap unless set.
	BuildLogCap int64
}

// DefaultCurrency is the wallets' currency unless configured otherwise.
const DefaultCurrency = "USD"

// NewStore wraps an open pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool, Currency: DefaultCurrency} }

// Pool exposes the pool for health checks.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

var (
	// ErrNotFound: no such row, or not visible to the caller's organization.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique value is taken or a referenced row is still in use.
	ErrConflict = errors.New("conflict")
)

// translate maps driver errors onto the store's sentinel errors.
func translate(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505": // unique_violation
			return &ConflictError{Constraint: pgErr.ConstraintName}
		case "23503": // foreign_key_violation
			return &ConflictError{Constraint: pgErr.ConstraintName, InUse: true}
		case "22P02": // invalid_text_representation: a malformed uuid is simply not found
			return ErrNotFound
		}
	}
	return err
}

// ConflictError names the constraint that refused the change.
type ConflictError struct {
	Constraint string
	InUse      bool
}

func (e *ConflictError) Error() string {
	if e.InUse {
		return "still referenced (" + e.Constraint + ")"
	}
	return "already exists (" + e.Constraint + ")"
}

func (e *ConflictError) Is(target error) bool { return target == ErrConflict }
