package apiserver

import (
	"bytes"
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
	if bytes.Contains(hashA, []byte(a)) {
		t.Error("the hash contains the token")
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
