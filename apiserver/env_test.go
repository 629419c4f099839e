package apiserver

import (
	"strings"
	"testing"

	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
)

func testKeyring(t *testing.T) *secrets.Keyring {
	t.Helper()
	ring, err := secrets.NewKeyring("k1")
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func TestCheckEnvKey(t *testing.T) {
	for key, ok := range map[string]bool{
		"DATABASE_URL": true, "_PRIVATE": true, "A1": true, strings.Repeat("A", 256): true,
		"": false, "lower": false, "1A": false, "A-B": false, "A B": false, "A=B": false, "PORT": false,
		"SKYPANEL_ANYTHING": false, strings.Repeat("A", 257): false, "ÄPFEL": false,
	} {
		detail := checkEnvKey("body.key", key)
		if (detail == nil) != ok {
			t.Errorf("checkEnvKey(%.20q) = %v, want ok=%v", key, detail, ok)
		}
		if detail != nil && detail.Location != "body.key" {
			t.Errorf("checkEnvKey(%.20q) names %q", key, detail.Location)
		}
	}
}

// Values are sealed for their app and key: the envelope opens only there, and the change names
// keys, never values.
func TestEnvChangesSealValuesForTheirPlace(t *testing.T) {
	s := &Server{cfg: Config{Keyring: testKeyring(t)}}
	changes, err := s.envChanges("app-1", []envSetBody{{Key: "TOKEN", Value: "s3cr3t"}}, []string{"OLD"}, "bulk")
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2 || changes[0].Key != "TOKEN" || strings.Contains(changes[0].Sealed, "s3cr3t") || !changes[1].Unset {
		t.Fatalf("changes %+v", changes)
	}
	if plain, err := s.cfg.Keyring.Decrypt(changes[0].Sealed, secrets.AppEnvValue("app-1", "TOKEN")); err != nil || string(plain) != "s3cr3t" {
		t.Errorf("open for its place: %q %v", plain, err)
	}
	if _, err := s.cfg.Keyring.Decrypt(changes[0].Sealed, secrets.AppEnvValue("app-2", "TOKEN")); err == nil {
		t.Error("the value opened for another app")
	}
	if got := describeEnvChange(changes); got != "Set TOKEN; Unset OLD" {
		t.Errorf("description %q", got)
	}
	many := make([]db.EnvChange, 60)
	for i := range many {
		many[i] = db.EnvChange{Key: strings.Repeat("K", 10) + string(rune('A'+i%26))}
	}
	if got := describeEnvChange(many); got != "Change 60 variables" {
		t.Errorf("long description %q", got)
	}
}
