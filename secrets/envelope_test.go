package secrets

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func testRing(t *testing.T, entries ...string) *Keyring {
	t.Helper()
	ring, err := ParseKeyring(strings.Join(entries, ","))
	require.NoError(t, err)
	return ring
}

var place = []byte("app_env:app-1:DATABASE_URL")

func TestEncryptDecryptRoundTrip(t *testing.T) {
	k1, _ := testEntry(t, "k1")
	ring := testRing(t, k1)
	plaintext := []byte("postgres://user:canary-password@db/app")

	envelope, err := ring.Encrypt(plaintext, place)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(envelope, "v1:k1:"), envelope)
	require.NotContains(t, envelope, "canary-password")

	again, err := ring.Encrypt(plaintext, place)
	require.NoError(t, err)
	require.NotEqual(t, envelope, again, "each call must use a fresh nonce")

	got, err := ring.Decrypt(envelope, place)
	require.NoError(t, err)
	require.Equal(t, plaintext, got)

	id, err := EnvelopeKeyID(envelope)
	require.NoError(t, err)
	require.Equal(t, "k1", id)
}

func TestBinaryRoundTripAndLayout(t *testing.T) {
	k1, _ := testEntry(t, "k1")
	ring := testRing(t, k1)
	plaintext := []byte("canary payload")

	envelope, err := ring.EncryptBytes(plaintext, place)
	require.NoError(t, err)
	require.Equal(t, []byte{1, 2, 'k', '1'}, envelope[:4])
	require.Len(t, envelope, 4+nonceSize+len(plaintext)+tagSize)
	require.False(t, bytes.Contains(envelope, plaintext))

	got, err := ring.DecryptBytes(envelope, place)
	require.NoError(t, err)
	require.Equal(t, plaintext, got)

	_, err = ring.DecryptBytes(envelope, []byte("temporal-payload"))
	require.ErrorIs(t, err, ErrTampered)
}

func TestDecryptWithAnotherPlaceIsTampered(t *testing.T) {
	k1, _ := testEntry(t, "k1")
	ring := testRing(t, k1)
	envelope, err := ring.Encrypt([]byte("s3cret-canary"), place)
	require.NoError(t, err)

	_, err = ring.Decrypt(envelope, []byte("app_env:app-2:DATABASE_URL"))
	require.ErrorIs(t, err, ErrTampered)
	require.ErrorContains(t, err, "belongs to another record")
	require.NotContains(t, err.Error(), "s3cret-canary")
}

func TestDecryptFlippedByteIsTampered(t *testing.T) {
	k1, _ := testEntry(t, "k1")
	ring := testRing(t, k1)
	envelope, err := ring.Encrypt([]byte("s3cret-canary"), place)
	require.NoError(t, err)

	_, sealed, err := parseTextEnvelope(envelope)
	require.NoError(t, err)
	for _, i := range []int{0, nonceSize, len(sealed) - 1} { // nonce, ciphertext, tag
		flipped := bytes.Clone(sealed)
		flipped[i] ^= 0x01
		_, err = ring.Decrypt("v1:k1:"+textEncoding.EncodeToString(flipped), place)
		require.ErrorIs(t, err, ErrTampered, "byte %d", i)
	}

	binary, err := ring.EncryptBytes([]byte("s3cret-canary"), place)
	require.NoError(t, err)
	binary[len(binary)-5] ^= 0x80
	_, err = ring.DecryptBytes(binary, place)
	require.ErrorIs(t, err, ErrTampered)
}

func TestDecryptMalformed(t *testing.T) {
	k1, _ := testEntry(t, "k1")
	ring := testRing(t, k1)
	envelope, err := ring.Encrypt([]byte("value"), place)
	require.NoError(t, err)

	for name, input := range map[string]string{
		"empty":              "",
		"legacy plaintext":   "hunter2-canary",
		"wrong version":      "v2" + strings.TrimPrefix(envelope, "v1"),
		"plaintext w/colons": "hunter2-canary:x:y",
		"no key id":          "v1::" + strings.TrimPrefix(envelope, "v1:k1:"),
		"no data separator":  "v1:k1",
		"bad base64":         envelope + "!",
		"truncated":          envelope[:len("v1:k1:")+20],
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ring.Decrypt(input, place)
			require.ErrorIs(t, err, ErrMalformed)
			require.NotContains(t, err.Error(), "hunter2")
		})
	}

	binary, err := ring.EncryptBytes([]byte("value"), place)
	require.NoError(t, err)
	for name, input := range map[string][]byte{
		"empty":         nil,
		"wrong version": append([]byte{2}, binary[1:]...),
		"id too long":   {1, 200, 'k'},
		"bad id":        append([]byte{1, 2, 'K', '!'}, binary[4:]...),
		"truncated":     binary[:4+nonceSize+tagSize-1],
	} {
		t.Run("binary "+name, func(t *testing.T) {
			_, err := ring.DecryptBytes(input, place)
			require.ErrorIs(t, err, ErrMalformed)
		})
	}
}

func TestDecryptUnknownKeyNamesIt(t *testing.T) {
	k1, key1 := testEntry(t, "k1")
	k2, key2 := testEntry(t, "k2")
	envelope, err := testRing(t, k1).Encrypt([]byte("value"), place)
	require.NoError(t, err)

	_, err = testRing(t, k2).Decrypt(envelope, place)
	require.ErrorIs(t, err, ErrUnknownKey)
	require.ErrorContains(t, err, "key k1")
	require.ErrorContains(t, err, "removed from SKYPANEL_SECRET_KEY before re-encryption finished")
	require.NotContains(t, err.Error(), key1)
	require.NotContains(t, err.Error(), key2)
}

func TestRotation(t *testing.T) {
	k1, _ := testEntry(t, "k1")
	k2, _ := testEntry(t, "k2")
	plaintext := []byte("rotate-me")

	old, err := testRing(t, k1).Encrypt(plaintext, place)
	require.NoError(t, err)

	rotating := testRing(t, k2, k1)
	got, err := rotating.Decrypt(old, place)
	require.NoError(t, err, "old keys stay readable")
	require.Equal(t, plaintext, got)
	require.True(t, rotating.NeedsReencrypt(old))
	require.True(t, rotating.NeedsReencrypt("not an envelope"), "malformed rows must reach Reencrypt to be reported")

	fresh, err := rotating.Reencrypt(old, place)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(fresh, "v1:k2:"), fresh)
	require.False(t, rotating.NeedsReencrypt(fresh))

	again, err := rotating.Reencrypt(fresh, place)
	require.NoError(t, err)
	require.Equal(t, fresh, again, "an envelope already under the primary is left alone")

	_, err = rotating.Reencrypt(old, []byte("app_env:other:KEY"))
	require.ErrorIs(t, err, ErrTampered, "re-encryption must verify the place too")

	onlyK2 := testRing(t, k2)
	got, err = onlyK2.Decrypt(fresh, place)
	require.NoError(t, err)
	require.Equal(t, plaintext, got)
	_, err = onlyK2.Decrypt(old, place)
	require.ErrorIs(t, err, ErrUnknownKey)
}

func TestKeyIDIsAuthenticated(t *testing.T) {
	// Two ids for the same key bytes: relabelling an envelope must not open it.
	k1, key := testEntry(t, "k1")
	ring := testRing(t, k1, "k9:"+key)
	envelope, err := ring.Encrypt([]byte("value"), place)
	require.NoError(t, err)

	_, err = ring.Decrypt("v1:k9:"+strings.TrimPrefix(envelope, "v1:k1:"), place)
	require.ErrorIs(t, err, ErrTampered)
}
