package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
)

// A domain's certificate states over real rows: a failure shows the CA's words and waits its
// backoff; an issued certificate is stored with its key sealed, and a later failure (a
// renewal) keeps it issued with the error beside it; a domain of another app, or removed,
// stores nothing; a rotation re-seals the account's and the certificate's keys.
func TestCertificateStatesAndKeys(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	host := "cert-" + uuid.NewString()[:8] + ".example.com"
	if _, _, err := testStore.AddDomain(ctx, f.org, f.app.ID, host, newOp(db.OpDomains)); err != nil {
		t.Fatal(err)
	}
	next := time.Now().Add(15 * time.Minute)
	if err := testStore.RecordCertificateFailure(ctx, host, f.app.ID, "urn:ietf:params:acme:error:connection :: refused", next); err != nil {
		t.Fatal(err)
	}
	domain := func() db.Domain {
		t.Helper()
		list, err := testStore.ListDomains(ctx, f.org, f.app.ID)
		if err != nil || len(list) != 1 {
			t.Fatalf("domains %+v %v", list, err)
		}
		return list[0]
	}
	if d := domain(); d.CertificateStatus != db.CertificateFailed || d.CertificateError == "" || d.CertificateExpires != nil {
		t.Errorf("after a failure: %+v", d)
	}
	target, err := testStore.CertificateTarget(ctx, host)
	if err != nil || target.Failures != 1 || target.AppID != f.app.ID {
		t.Errorf("target %+v %v", target, err)
	}

	keySealed, err := testRing.Encrypt([]byte("-----BEGIN EC PRIVATE KEY-----"), secrets.CertificateKey(host))
	if err != nil {
		t.Fatal(err)
	}
	notAfter := time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
	issued := db.IssuedCertificate{Hostname: host, AppID: f.app.ID, PEM: "-----BEGIN CERTIFICATE-----", KeySealed: keySealed,
		Serial: "ab12", NotBefore: time.Now(), NotAfter: notAfter, RenewAfter: time.Now().Add(60 * 24 * time.Hour)}
	other := issued
	other.AppID = uuid.NewString()
	if err := testStore.RecordCertificate(ctx, other); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("a certificate recorded for another app's domain: %v", err)
	}
	if err := testStore.RecordCertificate(ctx, issued); err != nil {
		t.Fatal(err)
	}
	if d := domain(); d.CertificateStatus != db.CertificateIssued || d.CertificateError != "" || d.CertificateExpires == nil || !d.CertificateExpires.Equal(notAfter) {
		t.Errorf("after issuance: %+v", d)
	}
	if err := testStore.RecordCertificateFailure(ctx, host, f.app.ID, "renewal refused", next); err != nil {
		t.Fatal(err)
	}
	if d := domain(); d.CertificateStatus != db.CertificateIssued || d.CertificateError != "renewal refused" {
		t.Errorf("a failed renewal: %+v, want still issued with the error shown", d)
	}

	dir := "https://ca-" + uuid.NewString()[:8] + ".example/dir"
	accountSealed, _ := testRing.Encrypt([]byte("account key"), secrets.ACMEAccountKey(dir))
	first, err := testStore.EnsureACMEAccount(ctx, db.ACMEAccount{DirectoryURL: dir, Email: "ops@example.com", KeySealed: accountSealed})
	if err != nil {
		t.Fatal(err)
	}
	again, err := testStore.EnsureACMEAccount(ctx, db.ACMEAccount{DirectoryURL: dir, KeySealed: "another"})
	if err != nil || again.KeySealed != first.KeySealed {
		t.Errorf("a second account for the same CA replaced the first: %+v %v", again, err)
	}

	k2 := mustKeyring("k2")
	rotated, err := secrets.ParseKeyring(k2.Spec() + "," + testRing.Spec())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testStore.ReencryptSecrets(ctx, rotated); err != nil {
		t.Fatal(err)
	}
	account, _ := testStore.ACMEAccount(ctx, dir)
	if plain, err := k2.Decrypt(account.KeySealed, secrets.ACMEAccountKey(dir)); err != nil || string(plain) != "account key" {
		t.Errorf("the account key after a rotation: %q %v", plain, err)
	}
	target, _ = testStore.CertificateTarget(ctx, host)
	if _, err := k2.Decrypt(target.KeySealed, secrets.CertificateKey(host)); err != nil {
		t.Errorf("the certificate key after a rotation: %v", err)
	}
	// Back under k1 for the other tests.
	if _, err := testStore.ReencryptSecrets(ctx, mustKeyringSpec(t, testRing.Spec()+","+k2.Spec())); err != nil {
		t.Fatal(err)
	}
	sealedMu.Lock()
	sealedValues = map[string]string{}
	sealedMu.Unlock()

	if _, err := testStore.RemoveDomain(ctx, f.org, f.app.ID, host, newOp(db.OpDomains)); err != nil {
		t.Fatal(err)
	}
	if err := testStore.RecordCertificate(ctx, issued); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("a certificate recorded for a removed domain: %v", err)
	}
}

// Only a domain a node serves is due: an app never deployed has nothing to answer the CA's
// challenge with.
func TestCertificatesDueSkipsAppsNotRouted(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	host := "unrouted-" + uuid.NewString()[:8] + ".example.com"
	if _, _, err := testStore.AddDomain(ctx, f.org, f.app.ID, host, newOp(db.OpDomains)); err != nil {
		t.Fatal(err)
	}
	due, err := testStore.CertificatesDue(ctx, time.Now().Add(time.Minute), time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range due {
		if d.Hostname == host {
			t.Errorf("the domain of an app never deployed is due: %+v", d)
		}
	}
}

// A routed app's domain is due while it has no certificate, not again while its issuance holds
// the lease, not once issued on the app's node, and again once the app is on another node
// than the one its certificate was installed on (a move).
func TestCertificatesDueForARoutedApp(t *testing.T) {
	ctx := context.Background()
	// A region and node of its own: no other test's placement finds this node.
	node, regionID := newRegisteredNode(t)
	app := newAppInRegion(t, regionID)
	f := fixture{org: app.OrgID, app: app, nodeID: node.ID}
	if placed, err := testStore.PlaceApplication(ctx, f.app.ID); err != nil || placed != node.ID {
		t.Fatalf("placed on %q, %v; want %s", placed, err, node.ID)
	}
	runningWithRelease(t, f)
	host := "routed-" + uuid.NewString()[:8] + ".example.com"
	if _, _, err := testStore.AddDomain(ctx, f.org, f.app.ID, host, newOp(db.OpDomains)); err != nil {
		t.Fatal(err)
	}
	isDue := func(at time.Time) (db.CertificateTarget, bool) {
		t.Helper()
		due, err := testStore.CertificatesDue(ctx, at, 15*time.Minute, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range due {
			if d.Hostname == host {
				return d, true
			}
		}
		return db.CertificateTarget{}, false
	}
	now := time.Now().Add(time.Second)
	target, ok := isDue(now)
	if !ok || target.NodeID == "" || target.Status != db.CertificatePending {
		t.Fatalf("a new domain of a routed app: due %v %+v, want due and pending", ok, target)
	}
	if _, ok := isDue(now); ok {
		t.Error("due again while its issuance holds the lease")
	}
	keySealed, err := testRing.Encrypt([]byte("key"), secrets.CertificateKey(host))
	if err != nil {
		t.Fatal(err)
	}
	issued := db.IssuedCertificate{Hostname: host, AppID: f.app.ID, PEM: "pem", KeySealed: keySealed, Serial: "1",
		NotBefore: now, NotAfter: now.Add(90 * 24 * time.Hour), RenewAfter: now.Add(60 * 24 * time.Hour), NodeID: target.NodeID}
	if err := testStore.RecordCertificate(ctx, issued); err != nil {
		t.Fatal(err)
	}
	if _, ok := isDue(now.Add(time.Minute)); ok {
		t.Error("due right after it was issued on the app's node")
	}
	if _, ok := isDue(now.Add(61 * 24 * time.Hour)); !ok {
		t.Error("not due past its renewal time")
	}
	issued.NodeID = uuid.NewString() // installed on a node the app has left
	if err := testStore.RecordCertificate(ctx, issued); err != nil {
		t.Fatal(err)
	}
	if waiting, err := testStore.MovedCertificatesWaiting(ctx, now.Add(time.Minute)); err != nil || !waiting {
		t.Errorf("a certificate left on another node is not waiting: %v %v", waiting, err)
	}
	moved, ok := isDue(now.Add(time.Minute))
	if !ok || !moved.Moved(now.Add(time.Minute)) {
		t.Errorf("not due, as a move, on the app's new node: %v %+v", ok, moved)
	}
	if err := testStore.RecordInstalled(ctx, host, f.app.ID, moved.NodeID); err != nil {
		t.Fatal(err)
	}
	if _, ok := isDue(now.Add(2 * time.Minute)); ok {
		t.Error("due again once installed on the app's node")
	}
}
