package secrets

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// KeyringEnv is the environment variable that holds the keyring in production.
const KeyringEnv = "SKYPANEL_SECRET_KEY"

// ErrKeyringRequired is returned when no keyring is configured and generating one is not allowed.
var ErrKeyringRequired = errors.New("secrets: " + KeyringEnv + " is required in production")

// KeySource says where a process finds its keyring.
type KeySource struct {
	// EnvValue is the value of SKYPANEL_SECRET_KEY. When non-empty it is the keyring and the key
	// file is not looked at.
	EnvValue string
	// DevKeyFile is read when EnvValue is empty. It must not be readable by group or others.
	DevKeyFile string
	// GenerateDevKey creates DevKeyFile with one fresh key when it does not exist. Dev only: in
	// production a fresh disk would quietly get a new key and every stored secret would be lost.
	GenerateDevKey bool
}

// LoadKeyring returns the keyring described by src; created reports that this call generated a
// new dev key file (worth a log line: secrets written from now on need that file).
func LoadKeyring(src KeySource) (ring *Keyring, created bool, err error) {
	if src.EnvValue != "" {
		ring, err := ParseKeyring(src.EnvValue)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", KeyringEnv, err)
		}
		return ring, false, nil
	}
	if src.DevKeyFile == "" {
		return nil, false, ErrKeyringRequired
	}
	ring, err = readKeyFile(src.DevKeyFile)
	switch {
	case err == nil:
		return ring, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, err
	case !src.GenerateDevKey:
		return nil, false, fmt.Errorf("%w (and no key file at %s)", ErrKeyringRequired, src.DevKeyFile)
	}
	return createKeyFile(src.DevKeyFile)
}

// RotateKeyFile puts a fresh primary key at the front of a dev key file, keeping the older keys
// so existing envelopes still open. It returns the new key's id.
func RotateKeyFile(path string) (newID string, err error) {
	ring, err := readKeyFile(path)
	if err != nil {
		return "", err
	}
	newID, err = NewKeyID(time.Now())
	if err != nil {
		return "", err
	}
	entry, err := NewKeyEntry(newID)
	if err != nil {
		return "", err
	}
	rotated, err := ParseKeyring(entry + "," + ring.Spec())
	if err != nil {
		return "", fmt.Errorf("secrets: rotate key file %s: %w", path, err)
	}
	tmp, err := writeTempKeyFile(path, rotated)
	if err != nil {
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("secrets: rotate key file %s: %w", path, err)
	}
	return newID, syncDir(filepath.Dir(path))
}

func readKeyFile(path string) (*Keyring, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("secrets: key file: %w", err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("secrets: key file %s has mode %04o, readable beyond its owner; chmod 600 it", path, perm)
	}
	spec, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secrets: key file: %w", err)
	}
	ring, err := ParseKeyring(string(spec))
	if err != nil {
		return nil, fmt.Errorf("secrets: key file %s: %w", path, err)
	}
	return ring, nil
}

// createKeyFile writes the new ring to a temporary file and hard-links it into place. Unlike a
// rename, a link never replaces an existing file, so when the API and the worker start together
// and both generate a key, one wins and the other reads the winner's key instead of silently
// overwriting a key that may already have sealed something.
func createKeyFile(path string) (*Keyring, bool, error) {
	id, err := NewKeyID(time.Now())
	if err != nil {
		return nil, false, err
	}
	entry, err := NewKeyEntry(id)
	if err != nil {
		return nil, false, err
	}
	ring, err := ParseKeyring(entry)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("secrets: create key file: %w", err)
	}
	tmp, err := writeTempKeyFile(path, ring)
	if err != nil {
		return nil, false, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			ring, err := readKeyFile(path)
			return ring, false, err
		}
		return nil, false, fmt.Errorf("secrets: create key file: %w", err)
	}
	return ring, true, syncDir(filepath.Dir(path))
}

// writeTempKeyFile writes ring's spec, mode 0600, next to path so a rename or link stays on one
// filesystem. It returns the temporary file's path.
func writeTempKeyFile(path string, ring *Keyring) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("secrets: write key file: %w", err)
	}
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.WriteString(ring.Spec() + "\n")
	}
	if err == nil {
		err = f.Sync()
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("secrets: write key file: %w", err)
	}
	return f.Name(), nil
}

// syncDir makes a new directory entry durable: losing the key file in a crash loses every secret.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("secrets: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("secrets: sync %s: %w", dir, err)
	}
	return nil
}
