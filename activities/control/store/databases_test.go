package store

import "testing"

// The connection variables are the catalogue's templates filled with the database's settings.
func TestLinkVariablesFillTheTemplates(t *testing.T) {
	got := LinkVariables(map[string]string{
		"DATABASE_URL": "postgresql://{{user}}:{{password}}@{{host}}:{{port}}/{{database}}",
		"PGHOST":       "{{host}}",
		"PLAIN":        "no placeholder",
	}, LinkSettings{Host: "skypanel-db-1", Port: 5432, User: "app", Password: "s3cr3t", Database: "main"})
	want := map[string]string{
		"DATABASE_URL": "postgresql://app:s3cr3t@skypanel-db-1:5432/main",
		"PGHOST":       "skypanel-db-1",
		"PLAIN":        "no placeholder",
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}
