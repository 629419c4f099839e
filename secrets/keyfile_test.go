package secrets

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoadKeyringPrefersEnv(t *testing.T) {
	entry, _ := testEntry(t, "prod1")
	ring, created, err := LoadKeyring(KeySource{EnvValue: entry, DevKeyFile: filepath.Join(t.TempDir(), "key"), GenerateDevKey: true})
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, "prod1", ring.PrimaryID())

	_, _, err = LoadKeyring(KeySource{EnvValue: "prod1:nope"})
	require.ErrorIs(t, err, ErrInvalidKeyring)
	require.ErrorContains(t, err, KeyringEnv)
}

func TestLoadKeyringRequiresAKeyInProduction(t *testing.T) {
	_, _, err := LoadKeyring(KeySource{})
	require.ErrorIs(t, err, ErrKeyringRequired)

	path := filepath.Join(t.TempDir(), "key")
	_, _, err = LoadKeyring(KeySource{DevKeyFile: path})
	require.ErrorIs(t, err, ErrKeyringRequired)
	require.NoFileExists(t, path)
}

func TestLoadKeyringGeneratesDevKeyOnceAndReloadsIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "secret.key")
	src := KeySource{DevKeyFile: path, GenerateDevKey: true}

	first, created, err := LoadKeyring(src)
	require.NoError(t, err)
	require.True(t, created)
	require.Regexp(t, `^k\d{8}-[0-9a-f]{4}$`, first.PrimaryID())

	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	leftovers, err := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*"))
	require.NoError(t, err)
	require.Empty(t, leftovers)

	second, created, err := LoadKeyring(src)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, first.Spec(), second.Spec())

	envelope, err := first.Encrypt([]byte("value"), place)
	require.NoError(t, err)
	_, err = second.Decrypt(envelope, place)
	require.NoError(t, err)
}

func TestLoadKeyringConcurrentGeneratorsAgree(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	const processes = 8
	specs := make([]string, processes)
	var created sync.WaitGroup
	var mu sync.Mutex
	creators := 0
	for i := range processes {
		created.Go(func() {
			ring, wasCreated, err := LoadKeyring(KeySource{DevKeyFile: path, GenerateDevKey: true})
			if err != nil {
				t.Errorf("load %d: %v", i, err)
				return
			}
			specs[i] = ring.Spec()
			if wasCreated {
				mu.Lock()
				creators++
				mu.Unlock()
			}
		})
	}
	created.Wait()
	require.Equal(t, 1, creators)
	for _, spec := range specs {
		require.Equal(t, specs[0], spec)
	}
}

func TestLoadKeyringRefusesAReadableKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	entry, key := testEntry(t, "k1")
	require.NoError(t, os.WriteFile(path, []byte(entry+"\n"), 0o644))
	require.NoError(t, os.Chmod(path, 0o644)) // umask may have narrowed it

	_, _, err := LoadKeyring(KeySource{DevKeyFile: path, GenerateDevKey: true})
	require.ErrorContains(t, err, "chmod 600")
	require.NotContains(t, err.Error(), key)

	require.NoError(t, os.Chmod(path, 0o600))
	ring, created, err := LoadKeyring(KeySource{DevKeyFile: path, GenerateDevKey: true})
	require.NoError(t, err)
	require.False(t, created, "an existing file must never be regenerated")
	require.Equal(t, entry, ring.Spec())
}

func TestRotateKeyFileKeepsOldKeysReadable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	before, _, err := LoadKeyring(KeySource{DevKeyFile: path, GenerateDevKey: true})
	require.NoError(t, err)
	old, err := before.Encrypt([]byte("value"), place)
	require.NoError(t, err)

	newID, err := RotateKeyFile(path)
	require.NoError(t, err)
	require.NotEqual(t, before.PrimaryID(), newID)

	after, created, err := LoadKeyring(KeySource{DevKeyFile: path})
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, []string{newID, before.PrimaryID()}, after.IDs())
	require.True(t, strings.HasSuffix(after.Spec(), before.Spec()), "old entries kept verbatim")

	got, err := after.Decrypt(old, place)
	require.NoError(t, err)
	require.Equal(t, []byte("value"), got)
	require.True(t, after.NeedsReencrypt(old))

	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	_, err = RotateKeyFile(filepath.Join(t.TempDir(), "missing"))
	require.Error(t, err)
}
