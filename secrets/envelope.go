package secrets

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Sentinels for the ways an envelope fails to open; test with errors.Is.
var (
	// ErrMalformed: the input is not an envelope this package wrote (wrong shape, version or encoding).
	ErrMalformed = errors.New("secrets: malformed envelope")
	// ErrUnknownKey: the envelope names a key id the keyring does not hold.
	ErrUnknownKey = errors.New("secrets: envelope key is not in the keyring")
	// ErrTampered: GCM authentication failed.
	ErrTampered = errors.New("secrets: authentication failed: ciphertext was modified or belongs to another record")
)

const (
	binaryVersion = 1
	textVersion   = "v1"
	nonceSize     = 12
	tagSize       = 16
)

var textEncoding = base64.RawURLEncoding

// Encrypt seals plaintext under the primary key as a text envelope "v1:<key id>:<base64url>".
// associatedData names the envelope's place (e.g. "app_env:<appID>:<KEY>"); Decrypt must be given
// the same bytes.
func (r *Keyring) Encrypt(plaintext, associatedData []byte) (string, error) {
	sealed, err := r.primary.seal(plaintext, associatedData)
	if err != nil {
		return "", err
	}
	return textVersion + ":" + r.primary.id + ":" + textEncoding.EncodeToString(sealed), nil
}

// Decrypt opens a text envelope written by Encrypt under any key in the ring.
func (r *Keyring) Decrypt(envelope string, associatedData []byte) ([]byte, error) {
	id, sealed, err := parseTextEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	return r.open(id, sealed, associatedData)
}

// EncryptBytes seals plaintext under the primary key as a binary envelope (see the package doc).
func (r *Keyring) EncryptBytes(plaintext, associatedData []byte) ([]byte, error) {
	sealed, err := r.primary.seal(plaintext, associatedData)
	if err != nil {
		return nil, err
	}
	return append(binaryHeader(r.primary.id), sealed...), nil
}

// DecryptBytes opens a binary envelope written by EncryptBytes under any key in the ring.
func (r *Keyring) DecryptBytes(envelope, associatedData []byte) ([]byte, error) {
	id, sealed, err := parseBinaryEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	return r.open(id, sealed, associatedData)
}

// EnvelopeKeyID returns the id of the key a text envelope was sealed under, without opening it.
func EnvelopeKeyID(envelope string) (string, error) {
	id, _, err := parseTextEnvelope(envelope)
	return id, err
}

// NeedsReencrypt reports whether a text envelope should be rewritten under the primary key. It is
// also true for input that is not a valid envelope, so a rotation pass hands it to Reencrypt, which
// reports the problem instead of silently skipping the row.
func (r *Keyring) NeedsReencrypt(envelope string) bool {
	id, _, err := parseTextEnvelope(envelope)
	return err != nil || id != r.primary.id
}

// Reencrypt opens a text envelope under whichever key sealed it and seals the plaintext again
// under the primary key. An envelope already under the primary is verified and returned as is,
// so a rotation pass that runs twice rewrites nothing the second time.
func (r *Keyring) Reencrypt(envelope string, associatedData []byte) (string, error) {
	id, sealed, err := parseTextEnvelope(envelope)
	if err != nil {
		return "", err
	}
	plaintext, err := r.open(id, sealed, associatedData)
	if err != nil {
		return "", err
	}
	if id == r.primary.id {
		return envelope, nil
	}
	return r.Encrypt(plaintext, associatedData)
}

// seal returns nonce || ciphertext || tag.
func (k *key) seal(plaintext, associatedData []byte) ([]byte, error) {
	out := make([]byte, nonceSize, nonceSize+len(plaintext)+tagSize)
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("secrets: encrypt with key %s: nonce: %w", k.id, err)
	}
	return k.aead.Seal(out, out, plaintext, additionalData(k.id, associatedData)), nil
}

func (r *Keyring) open(id string, sealed, associatedData []byte) ([]byte, error) {
	k, ok := r.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: key %s (have %s): it was removed from SKYPANEL_SECRET_KEY before re-encryption finished; put it back as a non-primary key",
			ErrUnknownKey, id, strings.Join(r.IDs(), ","))
	}
	plaintext, err := k.aead.Open(nil, sealed[:nonceSize], sealed[nonceSize:], additionalData(id, associatedData))
	if err != nil {
		return nil, fmt.Errorf("%w (key %s)", ErrTampered, id)
	}
	return plaintext, nil
}

// additionalData binds the key id as well as the caller's place: the binary header is
// self-delimiting (its length byte), so header || associatedData is unambiguous.
func additionalData(id string, associatedData []byte) []byte {
	return append(binaryHeader(id), associatedData...)
}

func binaryHeader(id string) []byte {
	header := make([]byte, 0, 2+len(id))
	header = append(header, binaryVersion, byte(len(id)))
	return append(header, id...)
}

// parseTextEnvelope never echoes the input in its errors: a row that holds a legacy plaintext
// value instead of an envelope would otherwise leak it.
func parseTextEnvelope(envelope string) (id string, sealed []byte, err error) {
	version, rest, ok := strings.Cut(envelope, ":")
	if !ok {
		return "", nil, fmt.Errorf("%w: not an envelope (want %s:<key id>:<data>)", ErrMalformed, textVersion)
	}
	if version != textVersion {
		return "", nil, fmt.Errorf("%w: unsupported version (want %s)", ErrMalformed, textVersion)
	}
	id, data, ok := strings.Cut(rest, ":")
	if !ok || !keyIDPattern.MatchString(id) {
		return "", nil, fmt.Errorf("%w: missing or invalid key id", ErrMalformed)
	}
	sealed, err = textEncoding.DecodeString(data)
	if err != nil {
		return "", nil, fmt.Errorf("%w: key %s: data is not base64url without padding", ErrMalformed, id)
	}
	if len(sealed) < nonceSize+tagSize {
		return "", nil, fmt.Errorf("%w: key %s: data is %d bytes, shorter than nonce and tag", ErrMalformed, id, len(sealed))
	}
	return id, sealed, nil
}

func parseBinaryEnvelope(envelope []byte) (id string, sealed []byte, err error) {
	if len(envelope) < 2 {
		return "", nil, fmt.Errorf("%w: %d bytes is too short for a header", ErrMalformed, len(envelope))
	}
	if envelope[0] != binaryVersion {
		return "", nil, fmt.Errorf("%w: unsupported version %d (want %d)", ErrMalformed, envelope[0], binaryVersion)
	}
	idLen := int(envelope[1])
	if len(envelope) < 2+idLen {
		return "", nil, fmt.Errorf("%w: truncated key id", ErrMalformed)
	}
	id = string(envelope[2 : 2+idLen])
	if !keyIDPattern.MatchString(id) {
		return "", nil, fmt.Errorf("%w: invalid key id", ErrMalformed)
	}
	sealed = envelope[2+idLen:]
	if len(sealed) < nonceSize+tagSize {
		return "", nil, fmt.Errorf("%w: key %s: data is %d bytes, shorter than nonce and tag", ErrMalformed, id, len(sealed))
	}
	return id, sealed, nil
}

// Explain says in a few words why a value could not be opened, for an error message or an API
// field: never the value, never the key.
func Explain(err error) string {
	switch {
	case errors.Is(err, ErrUnknownKey):
		return "it was sealed with a key the keyring does not hold"
	case errors.Is(err, ErrTampered):
		return "the sealed value was modified or belongs to another record"
	default:
		return "the sealed value is malformed"
	}
}
