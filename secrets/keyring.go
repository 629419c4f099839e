package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// KeySize is the length of every key: AES-256.
const KeySize = 32

// ErrInvalidKeyring is wrapped by every error about a keyring's text form.
var ErrInvalidKeyring = errors.New("secrets: invalid keyring")

var keyIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// Keyring is the set of keys a process can open envelopes with; the primary also seals them.
// It is immutable and safe for concurrent use. Printing it shows key ids, never key bytes.
type Keyring struct {
	// Keys are held behind pointers so that even printing a dereferenced Keyring with %v shows
	// addresses rather than key bytes.
	primary *key
	ordered []*key
	byID    map[string]*key
}

type key struct {
	id       string
	material []byte
	aead     cipher.AEAD
}

func newKey(id string, material []byte) (*key, error) {
	block, err := aes.NewCipher(material)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", id, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", id, err)
	}
	return &key{id: id, material: material, aead: aead}, nil
}

// ParseKeyring reads the text form "id:base64,id:base64,..."; the first entry is the primary.
// Errors name the bad entry by position (and id when it is valid), never its key bytes.
func ParseKeyring(spec string) (*Keyring, error) {
	ring := &Keyring{byID: map[string]*key{}}
	position := 0
	for entry := range strings.SplitSeq(spec, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue // a trailing comma or newline is not worth failing a boot over
		}
		position++
		k, err := parseEntry(position, entry)
		if err != nil {
			return nil, err
		}
		if _, dup := ring.byID[k.id]; dup {
			return nil, fmt.Errorf("%w: entry %d: key id %s appears more than once", ErrInvalidKeyring, position, k.id)
		}
		ring.byID[k.id] = k
		ring.ordered = append(ring.ordered, k)
	}
	if len(ring.ordered) == 0 {
		return nil, fmt.Errorf("%w: no keys (want id:base64key[,id:base64key...])", ErrInvalidKeyring)
	}
	ring.primary = ring.ordered[0]
	return ring, nil
}

func parseEntry(position int, entry string) (*key, error) {
	id, encoded, ok := strings.Cut(entry, ":")
	if !ok {
		return nil, fmt.Errorf("%w: entry %d: want id:base64key", ErrInvalidKeyring, position)
	}
	id, encoded = strings.TrimSpace(id), strings.TrimSpace(encoded)
	if !keyIDPattern.MatchString(id) {
		// The bad id is not echoed: a mangled entry may be key material pasted in the wrong place.
		return nil, fmt.Errorf("%w: entry %d: key id must match %s", ErrInvalidKeyring, position, keyIDPattern)
	}
	material, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return nil, fmt.Errorf("%w: entry %d (key %s): key is not valid standard base64", ErrInvalidKeyring, position, id)
	}
	if len(material) != KeySize {
		return nil, fmt.Errorf("%w: entry %d (key %s): key is %d bytes, want %d", ErrInvalidKeyring, position, id, len(material), KeySize)
	}
	k, err := newKey(id, material)
	if err != nil {
		return nil, fmt.Errorf("%w: entry %d: %w", ErrInvalidKeyring, position, err)
	}
	return k, nil
}

// NewKeyID returns a fresh key id such as "k20261125-3f9a": the UTC date says when the key was
// made, the random suffix keeps two keys made the same day apart.
func NewKeyID(now time.Time) (string, error) {
	suffix := make([]byte, 2)
	if _, err := rand.Read(suffix); err != nil {
		return "", fmt.Errorf("secrets: new key id: %w", err)
	}
	return "k" + now.UTC().Format("20060102") + "-" + hex.EncodeToString(suffix), nil
}

// NewKeyEntry returns a keyring entry "id:base64" holding 32 fresh random bytes, ready to be put
// first in SKYPANEL_SECRET_KEY.
func NewKeyEntry(id string) (string, error) {
	if !keyIDPattern.MatchString(id) {
		return "", fmt.Errorf("secrets: new key: key id %q must match %s", id, keyIDPattern)
	}
	material := make([]byte, KeySize)
	if _, err := rand.Read(material); err != nil {
		return "", fmt.Errorf("secrets: new key %s: %w", id, err)
	}
	return id + ":" + base64.StdEncoding.EncodeToString(material), nil
}

// PrimaryID is the id of the key that seals new envelopes.
func (r *Keyring) PrimaryID() string { return r.primary.id }

// IDs lists every key id, primary first.
func (r *Keyring) IDs() []string {
	ids := make([]string, len(r.ordered))
	for i, k := range r.ordered {
		ids[i] = k.id
	}
	return ids
}

// Has reports whether the ring can open envelopes sealed under id.
func (r *Keyring) Has(id string) bool {
	_, ok := r.byID[id]
	return ok
}

// String describes the ring without key material, so a keyring in a log line is harmless.
func (r *Keyring) String() string {
	return fmt.Sprintf("keyring(primary=%s, keys=%s)", r.primary.id, strings.Join(r.IDs(), ","))
}

// GoString keeps %#v as harmless as %v.
func (r *Keyring) GoString() string { return r.String() }

// Spec returns the ring's text form, key bytes included: only for writing the key file.
func (r *Keyring) Spec() string {
	entries := make([]string, len(r.ordered))
	for i, k := range r.ordered {
		entries[i] = k.id + ":" + base64.StdEncoding.EncodeToString(k.material)
	}
	return strings.Join(entries, ",")
}

// NewKeyring makes a keyring of one fresh random key named id.
func NewKeyring(id string) (*Keyring, error) {
	entry, err := NewKeyEntry(id)
	if err != nil {
		return nil, err
	}
	return ParseKeyring(entry)
}
