package apiserver

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
)

func TestTokensAreRandomPrefixedAndOnlyTheirHashIsKept(t *testing.T) {
	a, hashA, err := NewUserToken()
	if err != nil {
		t.Fatal(err)
	}
	b, hashB, _ := NewUserToken()
	if a == b || bytes.Equal(hashA, hashB) {
		t.Fatal("two tokens are equal")
	}
	if !strings.HasPrefix(a, userTokenPrefix) || len(a) < len(userTokenPrefix)+43 {
		t.Errorf("token %q: want the %s prefix and 256 random bits", a, userTokenPrefix)
	}
	if !bytes.Equal(HashToken(a), hashA) {
		t.Error("the stored hash does not match the token")
	}
	// The stored value is SHA-256 of the whole token, as HashToken documents: every character
	// counts, so a token differing only in its last character looks up nothing.
	if want := sha256.Sum256([]byte(a)); !bytes.Equal(hashA, want[:]) {
		t.Errorf("stored hash %x, want SHA-256 of the token %x", hashA, want)
	}
	other := "A"
	if strings.HasSuffix(a, other) {
		other = "B"
	}
	nearMiss := a[:len(a)-1] + other
	if bytes.Equal(HashToken(nearMiss), hashA) {
		t.Errorf("%q and %q hash alike", a, nearMiss)
	}
	reg, _, _ := NewRegistrationToken()
	if !strings.HasPrefix(reg, registrationTokenPrefix) {
		t.Errorf("registration token %q", reg)
	}
}

func TestAppNamesAreRFC1123Labels(t *testing.T) {
	for name, ok := range map[string]bool{
		"a": true, "my-app": true, "app1": true, "1app": true, "a" + strings.Repeat("b", 62): true,
		"": false, "-a": false, "a-": false, "My-App": false, "a.b": false, "a_b": false, "a b": false,
		"a" + strings.Repeat("b", 63): false, "ünï": false, "a\n": false,
	} {
		if appNamePattern.MatchString(name) != ok {
			t.Errorf("%q: valid=%v, want %v", name, !ok, ok)
		}
	}
}
