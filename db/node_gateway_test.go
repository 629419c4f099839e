package db_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
)

// The gateway's keys are made once: a second creation (another API replica starting at the same
// time) gets the first one's, and a rotation pass re-seals them with the rest.
func TestNodeGatewayKeysAreMadeOnceAndRotateWithTheRest(t *testing.T) {
	ctx := context.Background()
	seal := func(plain string, label []byte) string {
		sealed, err := testRing.Encrypt([]byte(plain), label)
		if err != nil {
			t.Fatal(err)
		}
		return sealed
	}
	first := db.NodeGatewayKeys{CACertificate: "-----BEGIN CERTIFICATE-----\nfirst",
		SealedCAKey: seal("ca key", secrets.NodeCAKey()), SealedTokenKey: seal("token key", secrets.NodeTaskTokenKey())}
	stored, err := testStore.CreateNodeGatewayKeys(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	second := first
	second.CACertificate = "-----BEGIN CERTIFICATE-----\nsecond"
	again, err := testStore.CreateNodeGatewayKeys(ctx, second)
	if err != nil || again.CACertificate != stored.CACertificate || again.SealedCAKey != stored.SealedCAKey {
		t.Fatalf("a second creation: %+v %v, want the first one's keys", again, err)
	}
	if _, err := testStore.Pool().Exec(ctx, `UPDATE node_gateway_keys SET sealed_ca_key = 'plain'`); err == nil {
		t.Error("an unsealed CA key was stored")
	}

	k2 := mustKeyring("k2")
	rotated := mustKeyringSpec(t, k2.Spec()+","+testRing.Spec())
	if _, err := testStore.ReencryptSecrets(ctx, rotated); err != nil {
		t.Fatal(err)
	}
	moved, err := testStore.NodeGatewayKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := k2.Decrypt(moved.SealedCAKey, secrets.NodeCAKey()); err != nil || string(plain) != "ca key" {
		t.Errorf("the CA key under k2 alone: %q %v", plain, err)
	}
	if plain, err := k2.Decrypt(moved.SealedTokenKey, secrets.NodeTaskTokenKey()); err != nil || string(plain) != "token key" {
		t.Errorf("the token key under k2 alone: %q %v", plain, err)
	}
	// Back under k1 for the other tests.
	if _, err := testStore.ReencryptSecrets(ctx, mustKeyringSpec(t, testRing.Spec()+","+k2.Spec())); err != nil {
		t.Fatal(err)
	}
}

// A renewal supersedes the node's certificate: the gateway sees when, and a certificate never
// issued to the node is unknown, even one issued to another node.
func TestNodeCertificatesSupersedeEachOther(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	other := newFixture(t)
	notAfter := time.Now().Add(30 * 24 * time.Hour)
	first, second := uuid.NewString(), uuid.NewString()
	if err := testStore.RecordNodeCertificate(ctx, f.nodeID, first, notAfter); err != nil {
		t.Fatal(err)
	}
	st, err := testStore.NodeStanding(ctx, f.nodeID, first)
	if err != nil || !st.CertificateKnown || st.SupersededAt != nil || st.Revoked {
		t.Fatalf("the first certificate: %+v %v", st, err)
	}
	if err := testStore.RecordNodeCertificate(ctx, f.nodeID, second, notAfter); err != nil {
		t.Fatal(err)
	}
	if st, _ := testStore.NodeStanding(ctx, f.nodeID, first); !st.CertificateKnown || st.SupersededAt == nil {
		t.Errorf("the first certificate after a renewal: %+v, want known and superseded", st)
	}
	if st, _ := testStore.NodeStanding(ctx, f.nodeID, second); !st.CertificateKnown || st.SupersededAt != nil {
		t.Errorf("the second certificate: %+v, want current", st)
	}
	if st, _ := testStore.NodeStanding(ctx, other.nodeID, second); st.CertificateKnown {
		t.Errorf("another node's certificate: %+v, want unknown", st)
	}
	if _, err := testStore.NodeStanding(ctx, uuid.NewString(), second); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("an unknown node: %v, want ErrNotFound", err)
	}
	if err := testStore.RecordNodeCertificate(ctx, f.nodeID, second, notAfter); !errors.Is(err, db.ErrConflict) {
		t.Errorf("a serial issued twice: %v, want a conflict", err)
	}
}

// A revoked node: its token stops working, the gateway sees it revoked, it gets no certificate,
// its event names who did it, and a second revoke changes nothing. It may be evacuated but not
// drained, and stays revoked through the evacuation.
func TestRevokedNodeIsRefusedEverywhere(t *testing.T) {
	ctx := context.Background()
	node, regHash := pendingNode(t, time.Now().Add(time.Hour))
	credential := []byte(uuid.NewString())
	if _, err := testStore.RegisterNode(ctx, regHash, credential, db.NodeRegistration{CPUs: 1}); err != nil {
		t.Fatal(err)
	}
	serial := uuid.NewString()
	if err := testStore.RecordNodeCertificate(ctx, node.ID, serial, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Minute)
	admin, err := testStore.CreateUser(ctx, "revoker-"+uuid.NewString()[:8]+"@example.com", "Revoker", "admin", []byte(uuid.NewString()))
	if err != nil {
		t.Fatal(err)
	}

	revoked, changed, err := testStore.RevokeNode(ctx, node.ID, admin.ID)
	if err != nil || !changed || revoked.AdminState != db.NodeRevoked {
		t.Fatalf("revoke: %+v %v %v", revoked, changed, err)
	}
	if _, changed, err := testStore.RevokeNode(ctx, node.ID, admin.ID); err != nil || changed {
		t.Errorf("a second revoke: changed %v, %v", changed, err)
	}
	if _, err := testStore.NodeIDByTokenHash(ctx, credential); !errors.Is(err, db.ErrNodeRevoked) {
		t.Errorf("the revoked node's token: %v, want ErrNodeRevoked", err)
	}
	if st, err := testStore.NodeStanding(ctx, node.ID, serial); err != nil || !st.Revoked {
		t.Errorf("standing: %+v %v", st, err)
	}
	var invalid *db.InvalidStateError
	if err := testStore.RecordNodeCertificate(ctx, node.ID, uuid.NewString(), time.Now().Add(time.Hour)); !errors.As(err, &invalid) {
		t.Errorf("a certificate for a revoked node: %v, want InvalidStateError", err)
	}
	events, err := testStore.NodeEvents(ctx, node.ID, 10)
	if err != nil || events[0].Kind != db.NodeEventRevoked || events[0].Detail != "by "+admin.Email+", was active" ||
		(len(events) > 1 && events[1].Kind == db.NodeEventRevoked) {
		t.Errorf("events: %+v %v", events, err)
	}

	unknown := uuid.NewString()
	f := newFixture(t)
	among, err := testStore.RevokedNodesAmong(ctx, []string{node.ID, unknown, f.nodeID})
	names := map[string]string{}
	for _, n := range among {
		names[n.ID] = n.Name
	}
	if err != nil || len(among) != 2 || names[node.ID] != node.Name || names[unknown] != "" {
		t.Errorf("revoked among: %+v %v, want the revoked node (named) and the unknown one", among, err)
	}
	since, err := testStore.NodesRevokedSince(ctx, before)
	if err != nil || !slices.ContainsFunc(since, func(n db.RevokedNode) bool { return n.ID == node.ID && n.Name == node.Name }) {
		t.Errorf("revoked since: %+v %v", since, err)
	}

	if err := testStore.BeginNodeDrain(ctx, node.ID, false, ""); !errors.As(err, &invalid) {
		t.Errorf("drain a revoked node: %v, want InvalidStateError", err)
	}
	if err := testStore.BeginNodeDrain(ctx, node.ID, true, ""); err != nil {
		t.Fatalf("evacuate a revoked node: %v", err)
	}
	if err := testStore.FinishNodeDrain(ctx, node.ID, true, "drained: 0 of 0 applications moved"); err != nil {
		t.Fatal(err)
	}
	after, err := testStore.NodeByID(ctx, node.ID)
	if err != nil || after.AdminState != db.NodeRevoked {
		t.Errorf("after the evacuation: %s %v, want still revoked", after.AdminState, err)
	}
	if kinds := eventKinds(t, node.ID); !slices.Equal(kinds[len(kinds)-3:], []string{db.NodeEventRevoked, db.NodeEventEvacuating, db.NodeEventDrained}) {
		t.Errorf("events: %v", kinds)
	}
}
