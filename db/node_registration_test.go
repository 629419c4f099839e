package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/skypanel/skypanel/db"
)

// pendingNode is a node of a region of its own with a registration token valid until expiresAt.
func pendingNode(t *testing.T, expiresAt time.Time) (db.Node, []byte) {
	t.Helper()
	ctx := context.Background()
	region, err := testStore.EnsureRegion(ctx, "reg-"+uuid.NewString()[:8], "Registration test")
	if err != nil {
		t.Fatal(err)
	}
	regHash := []byte(uuid.NewString())
	node, err := testStore.CreateNode(ctx, "node-"+uuid.NewString()[:8], region.ID, "", regHash, expiresAt)
	if err != nil {
		t.Fatal(err)
	}
	return node, regHash
}

// An expired token is refused by the check and by the registration, naming its node, and is
// not consumed: a new token issued for the node works.
func TestExpiredRegistrationTokenIsRefusedUntilReplaced(t *testing.T) {
	ctx := context.Background()
	node, regHash := pendingNode(t, time.Now().Add(-time.Second))

	var expired *db.RegistrationTokenExpiredError
	if _, err := testStore.NodeByRegistrationToken(ctx, regHash); !errors.As(err, &expired) || expired.NodeID != node.ID {
		t.Fatalf("check of an expired token: %v, want RegistrationTokenExpiredError naming %s", err, node.ID)
	}
	if _, err := testStore.RegisterNode(ctx, regHash, []byte(uuid.NewString()), db.NodeRegistration{CPUs: 1}); !errors.As(err, &expired) || expired.NodeID != node.ID {
		t.Fatalf("registration with an expired token: %v, want RegistrationTokenExpiredError", err)
	}
	if got := nodeStatus(t, node.ID); got != "pending" {
		t.Fatalf("a refused registration left the node %s", got)
	}

	newHash := []byte(uuid.NewString())
	if _, err := testStore.SetRegistrationToken(ctx, node.ID, newHash, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := testStore.NodeByRegistrationToken(ctx, regHash); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("the replaced token still checks: %v", err)
	}
	found, err := testStore.NodeByRegistrationToken(ctx, newHash)
	if err != nil || found.ID != node.ID || found.Status != "pending" {
		t.Fatalf("check of the new token: %+v %v", found, err)
	}
	if _, err := testStore.RegisterNode(ctx, newHash, []byte(uuid.NewString()), db.NodeRegistration{CPUs: 1}); err != nil {
		t.Fatalf("registration with the new token: %v", err)
	}
	// Single use: the check and a second registration no longer know it.
	if _, err := testStore.NodeByRegistrationToken(ctx, newHash); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("check of a used token: %v, want ErrNotFound", err)
	}
	if _, err := testStore.RegisterNode(ctx, newHash, []byte(uuid.NewString()), db.NodeRegistration{CPUs: 1}); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("second registration: %v, want ErrNotFound", err)
	}
}

// A registered node given a new token keeps its credential until it registers again; then only
// the new credential works, and the node keeps its id.
func TestReRegistrationReplacesTheCredentialOnlyWhenItHappens(t *testing.T) {
	ctx := context.Background()
	node, regHash := pendingNode(t, time.Now().Add(time.Hour))
	oldCredential := []byte(uuid.NewString())
	if _, err := testStore.RegisterNode(ctx, regHash, oldCredential, db.NodeRegistration{CPUs: 1}); err != nil {
		t.Fatal(err)
	}

	newHash := []byte(uuid.NewString())
	if _, err := testStore.SetRegistrationToken(ctx, node.ID, newHash, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if id, err := testStore.NodeIDByTokenHash(ctx, oldCredential); err != nil || id != node.ID {
		t.Fatalf("the credential stopped working when a new token was issued: %q %v", id, err)
	}
	newCredential := []byte(uuid.NewString())
	again, err := testStore.RegisterNode(ctx, newHash, newCredential, db.NodeRegistration{CPUs: 2})
	if err != nil || again.ID != node.ID {
		t.Fatalf("re-registration: %+v %v", again, err)
	}
	if _, err := testStore.NodeIDByTokenHash(ctx, oldCredential); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("the old credential works after re-registration: %v", err)
	}
	if id, err := testStore.NodeIDByTokenHash(ctx, newCredential); err != nil || id != node.ID {
		t.Errorf("the new credential: %q %v", id, err)
	}
}

func TestRegistrationTokenOfAnUnknownOrRevokedNode(t *testing.T) {
	ctx := context.Background()
	if _, err := testStore.SetRegistrationToken(ctx, uuid.NewString(), []byte(uuid.NewString()), time.Now().Add(time.Hour)); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("unknown node: %v, want ErrNotFound", err)
	}
	if _, err := testStore.SetRegistrationToken(ctx, "not-a-uuid", []byte(uuid.NewString()), time.Now().Add(time.Hour)); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("malformed id: %v, want ErrNotFound", err)
	}
	node, regHash := pendingNode(t, time.Now().Add(time.Hour))
	if _, err := testStore.Pool().Exec(ctx, `UPDATE nodes SET admin_state = 'revoked' WHERE id = $1`, node.ID); err != nil {
		t.Fatal(err)
	}
	var invalid *db.InvalidStateError
	if _, err := testStore.SetRegistrationToken(ctx, node.ID, []byte(uuid.NewString()), time.Now().Add(time.Hour)); !errors.As(err, &invalid) {
		t.Errorf("revoked node: %v, want InvalidStateError", err)
	}
	if _, err := testStore.NodeByRegistrationToken(ctx, regHash); err != nil {
		t.Errorf("a refused new token voided the old one: %v", err)
	}
}

// The schema keeps a token and its expiry together.
func TestRegistrationTokenNeedsAnExpiry(t *testing.T) {
	ctx := context.Background()
	node, _ := pendingNode(t, time.Now().Add(time.Hour))
	if _, err := testStore.Pool().Exec(ctx, `UPDATE nodes SET registration_token_expires_at = NULL WHERE id = $1`, node.ID); err == nil {
		t.Error("a token without an expiry was stored")
	}
}
