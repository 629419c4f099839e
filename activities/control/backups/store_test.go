package backups

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	dbID     = "0b7e1c52-3a4f-4d6e-9b8a-1c2d3e4f5a60"
	backupID = "1c8f2d63-4b5a-4e7f-8c9b-2d3e4f5a6b71"
)

// A stored backup reads back byte for byte with the size and checksum Put answered; a body
// over the limit is refused and leaves nothing; ids that are not uuids never make a path.
func TestFileStoreKeepsBackupsWhole(t *testing.T) {
	ctx := context.Background()
	s := FileStore{Dir: t.TempDir()}
	body := bytes.Repeat([]byte("row\n"), 10000)
	size, sum, err := s.Put(ctx, dbID, backupID, bytes.NewReader(body), 0)
	want := sha256.Sum256(body)
	if err != nil || size != int64(len(body)) || sum != hex.EncodeToString(want[:]) {
		t.Fatalf("Put: %d %s %v", size, sum, err)
	}
	f, n, err := s.Open(ctx, dbID, backupID)
	if err != nil || n != size {
		t.Fatalf("Open: %d %v", n, err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, body) {
		t.Error("the stored backup reads back different bytes")
	}
	if n2, sum2, err := s.Checksum(ctx, dbID, backupID); err != nil || n2 != size || sum2 != sum {
		t.Errorf("Checksum: %d %s %v", n2, sum2, err)
	}
	info, err := os.Stat(filepath.Join(s.Dir, dbID, backupID+".dump"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("the stored file: %v %v, want mode 0600", info, err)
	}

	other := "2d9a3e74-5c6b-4f8a-9dac-3e4f5a6b7c82"
	if _, _, err := s.Put(ctx, dbID, other, strings.NewReader(strings.Repeat("x", 101)), 100); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a body over the limit: %v, want ErrTooLarge", err)
	}
	if _, _, err := s.Open(ctx, dbID, other); !errors.Is(err, ErrNotStored) {
		t.Errorf("the refused backup was stored: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(s.Dir, dbID))
	if len(entries) != 1 {
		t.Errorf("the store's directory holds %d entries, want only the stored backup", len(entries))
	}
	for _, bad := range []string{"../../etc/passwd", "x", dbID + "/.."} {
		if _, _, err := s.Put(ctx, bad, backupID, strings.NewReader("x"), 0); err == nil {
			t.Errorf("Put with database id %q was taken", bad)
		}
	}
	if err := s.Remove(ctx, dbID, backupID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Checksum(ctx, dbID, backupID); !errors.Is(err, ErrNotStored) {
		t.Errorf("after Remove: %v", err)
	}
	if err := s.Remove(ctx, dbID, backupID); err != nil {
		t.Errorf("removing an absent backup: %v", err)
	}
}
