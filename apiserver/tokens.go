package apiserver

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// Token prefixes tell at a glance what a leaked string is (and let secret scanners find it).
const (
	userTokenPrefix         = "sp_"
	nodeTokenPrefix         = "spn_"
	registrationTokenPrefix = "spr_"
)

// NewToken returns a random 256-bit bearer token with prefix and the hash that is stored. Only
// the hash ever reaches Postgres.
func NewToken(prefix string) (plain string, hash []byte, err error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", nil, fmt.Errorf("generate token: %w", err)
	}
	plain = prefix + base64.RawURLEncoding.EncodeToString(raw[:])
	return plain, HashToken(plain), nil
}

// NewUserToken, NewRegistrationToken: the token kinds the rest of the program mints.
func NewUserToken() (string, []byte, error)         { return NewToken(userTokenPrefix) }
func NewRegistrationToken() (string, []byte, error) { return NewToken(registrationTokenPrefix) }

// HashToken is SHA-256: tokens are high-entropy random values, so a fast hash is enough.
func HashToken(plain string) []byte {
	sum := sha256.Sum256([]byte(plain))
	return sum[:]
}
