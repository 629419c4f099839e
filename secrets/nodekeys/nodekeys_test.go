package nodekeys

import (
	"context"
	"strings"
	"testing"

	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
)

// fakeStore keeps keys as db.EnsureNodeKeys does: newest first, at most keep.
type fakeStore struct {
	keys  map[string][]db.NodeKey
	calls int
}

func (f *fakeStore) EnsureNodeKeys(_ context.Context, nodeID string, rotate bool, keep int, newKey func() (db.NodeKey, error)) ([]db.NodeKey, error) {
	f.calls++
	if len(f.keys[nodeID]) == 0 || rotate {
		k, err := newKey()
		if err != nil {
			return nil, err
		}
		f.keys[nodeID] = append([]db.NodeKey{k}, f.keys[nodeID]...)
		if len(f.keys[nodeID]) > keep {
			f.keys[nodeID] = f.keys[nodeID][:keep]
		}
	}
	return f.keys[nodeID], nil
}

func TestANodesKeysAreItsOwnSealedUnderThePlatformKeyAndRotate(t *testing.T) {
	ctx := context.Background()
	platform, err := secrets.NewKeyring("k1")
	if err != nil {
		t.Fatal(err)
	}
	store := &fakeStore{keys: map[string][]db.NodeKey{}}
	keys := New(store, platform)

	a, err := keys.Keyring(ctx, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if ids := a.IDs(); len(ids) != 1 || !strings.HasPrefix(ids[0], "n") || platform.Has(ids[0]) {
		t.Fatalf("node a's first keyring %v: want one key of its own", ids)
	}
	stored := store.keys["node-a"][0]
	if strings.Contains(stored.Sealed, a.Spec()) || stored.ID != a.PrimaryID() {
		t.Fatal("the key is stored in the clear")
	}
	if _, err := platform.Decrypt(stored.Sealed, secrets.NodeKeyEntry("node-b", stored.ID)); err == nil {
		t.Error("node a's stored key opens as node b's")
	}
	if again, _ := keys.Keyring(ctx, "node-a"); again != a || store.calls != 1 {
		t.Errorf("a second read within the cache time went to the store (%d calls)", store.calls)
	}
	b, _ := keys.Keyring(ctx, "node-b")
	if b.PrimaryID() == a.PrimaryID() {
		t.Error("two nodes share a key")
	}

	sealed, err := a.Encrypt([]byte("v"), []byte("label"))
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := keys.Rotate(ctx, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if rotated.PrimaryID() == a.PrimaryID() || len(rotated.IDs()) != 2 {
		t.Fatalf("after a rotation %v, want a new primary and the old key still opening", rotated.IDs())
	}
	if plain, err := rotated.Decrypt(sealed, []byte("label")); err != nil || string(plain) != "v" {
		t.Errorf("the rotated ring opens what the old key sealed: %q %v", plain, err)
	}
	if _, err := b.Decrypt(sealed, []byte("label")); err == nil {
		t.Error("node b's keys open node a's value")
	}
}
