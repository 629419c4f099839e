package db

import (
	"context"
	"fmt"
	"time"
)

// RegistrationTokenExpiredError refuses a registration token past its expiry. The token stays
// (an admin replaces it); NodeID names the node it was issued for.
type RegistrationTokenExpiredError struct {
	NodeID    string
	ExpiredAt time.Time
}

func (e *RegistrationTokenExpiredError) Error() string {
	return fmt.Sprintf("the registration token of node %s expired at %s", e.NodeID, e.ExpiredAt.UTC().Format(time.RFC3339))
}

// NodeByRegistrationToken finds the node a registration token was issued for, changing nothing
// (the install script checks its token before it installs anything). An unknown or used token
// is ErrNotFound; an expired one a *RegistrationTokenExpiredError.
func (s *Store) NodeByRegistrationToken(ctx context.Context, registrationTokenHash []byte) (Node, error) {
	var id string
	var expiresAt time.Time
	var expired bool
	if err := s.pool.QueryRow(ctx, `SELECT id, registration_token_expires_at, registration_token_expires_at <= now()
		FROM nodes WHERE registration_token_hash = $1`, registrationTokenHash).Scan(&id, &expiresAt, &expired); err != nil {
		return Node{}, translate(err)
	}
	if expired {
		return Node{}, &RegistrationTokenExpiredError{NodeID: id, ExpiredAt: expiresAt}
	}
	return s.NodeByID(ctx, id)
}
