package apiserver

import (
	"context"
	"net/http"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/humatest"

	"github.com/skypanel/skypanel/db"
)

// engineFieldsAPI validates engine fields as the admin engine routes do and answers what would
// be stored.
func engineFieldsAPI(t *testing.T) humatest.TestAPI {
	_, api := humatest.New(t)
	huma.Register(api, huma.Operation{OperationID: "post-engine", Method: http.MethodPost, Path: "/engines"},
		func(_ context.Context, in *body[databaseEngineFields]) (*body[db.DatabaseEngine], error) {
			if err := in.Body.validate(); err != nil {
				return nil, err
			}
			return bodyOf(in.Body.engine()), nil
		})
	return api
}

func validEngine() map[string]any {
	return map[string]any{
		"engine": "postgresql", "version": "16", "image": "postgres:16-bookworm", "port": 5432,
		"data_dir":        "/var/lib/postgresql/data",
		"env":             map[string]string{"POSTGRES_USER": "{{user}}", "POSTGRES_PASSWORD": "{{password}}", "POSTGRES_DB": "{{database}}"},
		"health_command":  []string{"pg_isready", "-h", "127.0.0.1"},
		"dump_command":    []string{"sh", "-c", `exec pg_dump -Fc -U "$POSTGRES_USER" -d "$POSTGRES_DB"`},
		"restore_command": []string{"sh", "-c", `exec pg_restore --single-transaction -U "$POSTGRES_USER" -d "$POSTGRES_DB"`},
		"count_command":   []string{"sh", "-c", "echo 0"},
		"connection_vars": map[string]string{"DATABASE_URL": "postgresql://{{user}}:{{password}}@{{host}}:{{port}}/{{database}}"},
	}
}

func TestDatabaseEngineFieldsAreValidated(t *testing.T) {
	api := engineFieldsAPI(t)
	if resp := api.Post("/engines", validEngine()); resp.Code != http.StatusOK {
		t.Fatalf("a valid engine: %d %s", resp.Code, resp.Body)
	}
	for _, c := range []struct {
		field    string
		value    any
		location string
	}{
		{"engine", "oracle", "body.engine"},
		{"version", "1 6", "body.version"},
		{"image", "Postgres; rm -rf /", "body.image"},
		{"port", 0, "body.port"},
		{"data_dir", "var/lib", "body.data_dir"},
		{"data_dir", "/var/../etc", "body.data_dir"},
		{"data_dir", "/", "body.data_dir"},
		{"run_user", "root", "body.run_user"},
		{"env", map[string]string{"1BAD": "x"}, "body.env"},
		{"env", map[string]string{"POSTGRES_PASSWORD": "{{secret}}"}, "body.env.POSTGRES_PASSWORD"},
		{"env", map[string]string{"POSTGRES_HOST": "{{host}}"}, "body.env.POSTGRES_HOST"},
		{"command", []string{"postgres", "-c", "x={{host}}"}, "body.command[2]"},
		{"health_command", []string{}, "body.health_command"},
		{"dump_command", []string{"pg_dump", "{{password}}"}, "body.dump_command[1]"},
		{"restore_command", []string{" ", "x"}, "body.restore_command[0]"},
		{"connection_vars", map[string]string{}, "body.connection_vars"},
		{"connection_vars", map[string]string{"URL": "x://{{host}}:{{pass}}"}, "body.connection_vars.URL"},
		{"connection_vars", map[string]string{"bad-name": "x"}, "body.connection_vars"},
	} {
		in := validEngine()
		in[c.field] = c.value
		p := decodeProblem(t, api.Post("/engines", in), http.StatusUnprocessableEntity)
		if len(p.Errors) == 0 || p.Errors[0].Location != c.location {
			t.Errorf("%s = %v: errors %+v, want one at %s", c.field, c.value, p.Errors, c.location)
		}
	}
}
