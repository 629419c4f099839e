// Package secrets is the one envelope scheme for every secret SkyPanel keeps: app environment
// values in Postgres, Temporal payloads, anything else that must not be readable at rest.
//
// # Keys
//
// A Keyring holds one primary key, which encrypts, and any number of older keys, which only
// decrypt. Keeping old keys readable is what makes rotation possible without downtime: add a new
// primary, re-encrypt the rows (NeedsReencrypt, Reencrypt), then drop the old key.
//
// The keyring's text form, used for the SKYPANEL_SECRET_KEY environment variable and the dev key
// file, is a comma-separated list of entries; the first is the primary:
//
//	k20261125-3f9a:<base64 std of 32 bytes>,k1:<base64 std of 32 bytes>
//
// A key id matches ^[a-z0-9][a-z0-9-]{0,31}$. Whitespace around entries is ignored.
//
// # Envelopes
//
// Every envelope is AES-256-GCM with a fresh random 12-byte nonce. The GCM additional data is the
// binary header below followed by the caller's associated data, so a ciphertext is bound both to
// its key id and to its place (for example "app_env:<appID>:<KEY>"): copied to another record it
// fails to open with ErrTampered.
//
// Text envelope (Encrypt, Decrypt), safe for TEXT columns and logs:
//
//	v1:<key id>:<base64url without padding of nonce || ciphertext || tag>
//
// Binary envelope (EncryptBytes, DecryptBytes), used for Temporal payloads:
//
//	0x01 | len(key id) as one byte | key id | nonce (12 bytes) | ciphertext || tag (16 bytes)
//
// Both forms carry the same bytes under the same additional data, so one converts to the other.
//
// Errors never contain plaintext or key material. Decryption fails closed with errors that wrap
// ErrMalformed, ErrUnknownKey or ErrTampered.
package secrets
