package apiserver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/db"
)

// The admin's database catalogue: engine versions and database plans (docs/databases.md, "The
// catalogue"). Engines and plans are deactivated rather than deleted once a database uses them.

// databaseEngineFields are what an admin sets on an engine version. The commands run inside the
// database's container (exec form, never through a shell on the platform's side).
type databaseEngineFields struct {
	Engine  string `json:"engine" enum:"postgresql,mysql,mongodb,redis"`
	Version string `json:"version" pattern:"^[0-9A-Za-z][0-9A-Za-z._-]{0,31}$" doc:"e.g. 15 or 7.0"`
	Image   string `json:"image" pattern:"^[a-z0-9][a-z0-9._/:@-]{0,254}$" doc:"a container image reference, e.g. postgres:15-bookworm"`
	Port    int    `json:"port" minimum:"1" maximum:"65535" doc:"where the engine listens inside its container (never published)"`
	DataDir string `json:"data_dir" pattern:"^(/[A-Za-z0-9._-]+)+$" maxLength:"255" doc:"where the database's volume is mounted, an absolute path"`
	RunUser string `json:"run_user,omitempty" pattern:"^([0-9]{1,10}(:[0-9]{1,10})?)?$" doc:"uid[:gid] the container runs as; empty: the image's user"`
	// Env and Command may name {{user}}, {{password}}, {{database}} and {{port}}, filled in on
	// the node.
	Env     map[string]string `json:"env,omitempty" doc:"the container's environment; values may name {{user}}, {{password}}, {{database}}, {{port}}"`
	Command []string          `json:"command,omitempty" maxItems:"64" doc:"the container's command (exec form); empty: the image's; may name the same placeholders"`
	// The commands the node runs in the container.
	HealthCommand  []string `json:"health_command" minItems:"1" maxItems:"64" doc:"Docker's health check, exit 0 when the database serves"`
	DumpCommand    []string `json:"dump_command" minItems:"1" maxItems:"64" doc:"writes a consistent dump of the database to stdout"`
	RestoreCommand []string `json:"restore_command" minItems:"1" maxItems:"64" doc:"reads a dump on stdin into this database"`
	CountCommand   []string `json:"count_command" minItems:"1" maxItems:"64" doc:"prints the number of rows (keys, documents) the database holds"`
	// ConnectionVars are what a linked app gets.
	ConnectionVars map[string]string `json:"connection_vars" doc:"the variables a linked application gets, templates over {{host}}, {{port}}, {{user}}, {{password}}, {{database}}"`
	Active         *bool             `json:"active,omitempty" default:"true" doc:"inactive: no new database on it; the ones on it keep running"`
}

// databaseEngineAdminView is an engine version with every field, for admins.
type databaseEngineAdminView struct {
	ID string `json:"id"`
	databaseEngineFields
}

var (
	envName          = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	placeholderRef   = regexp.MustCompile(`\{\{[^{}]*\}\}`)
	nodePlaceholders = []string{"{{user}}", "{{password}}", "{{database}}", "{{port}}"}
	linkPlaceholders = []string{"{{host}}", "{{port}}", "{{user}}", "{{password}}", "{{database}}"}
)

// validate checks what the schema cannot: variable names, the placeholders each field may name,
// and arguments' sizes. It answers the first fault as a 422 naming its field.
func (f databaseEngineFields) validate() error {
	fault := func(location, message string, value any) error {
		return huma.Error422UnprocessableEntity("invalid database engine", &huma.ErrorDetail{Location: location, Message: message, Value: value})
	}
	placeholders := func(location, s string, allowed []string) error {
		for _, ref := range placeholderRef.FindAllString(s, -1) {
			if !slices.Contains(allowed, ref) {
				return fault(location, fmt.Sprintf("unknown placeholder %s: it may name %s", ref, strings.Join(allowed, ", ")), s)
			}
		}
		return nil
	}
	for _, seg := range strings.Split(f.DataDir, "/") {
		if seg == "." || seg == ".." {
			return fault("body.data_dir", "no . or .. in the path", f.DataDir)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(f.Env)) {
		if !envName.MatchString(name) {
			return fault("body.env", "not a variable name: letters, digits and _, not starting with a digit", name)
		}
		if err := placeholders("body.env."+name, f.Env[name], nodePlaceholders); err != nil {
			return err
		}
	}
	if len(f.ConnectionVars) == 0 {
		return fault("body.connection_vars", "a linked application needs at least one variable", nil)
	}
	for _, name := range slices.Sorted(maps.Keys(f.ConnectionVars)) {
		if !envName.MatchString(name) {
			return fault("body.connection_vars", "not a variable name: letters, digits and _, not starting with a digit", name)
		}
		if err := placeholders("body.connection_vars."+name, f.ConnectionVars[name], linkPlaceholders); err != nil {
			return err
		}
	}
	commands := []struct {
		location string
		args     []string
		allowed  []string
	}{
		{"body.command", f.Command, nodePlaceholders},
		// Only env and command are filled in: a placeholder anywhere else would reach the
		// container as it is written.
		{"body.health_command", f.HealthCommand, nil},
		{"body.dump_command", f.DumpCommand, nil},
		{"body.restore_command", f.RestoreCommand, nil},
		{"body.count_command", f.CountCommand, nil},
	}
	for _, c := range commands {
		for i, arg := range c.args {
			location := fmt.Sprintf("%s[%d]", c.location, i)
			if len(arg) > 16384 || strings.ContainsRune(arg, 0) {
				return fault(location, "an argument is at most 16 KiB, without NUL bytes", len(arg))
			}
			if i == 0 && strings.TrimSpace(arg) == "" {
				return fault(location, "the program to run is empty", arg)
			}
			if err := placeholders(location, arg, c.allowed); err != nil {
				return err
			}
		}
	}
	for name, v := range f.Env {
		if len(v) > 16384 || strings.ContainsRune(v, 0) {
			return fault("body.env."+name, "a value is at most 16 KiB, without NUL bytes", len(v))
		}
	}
	return nil
}

func (f databaseEngineFields) engine() db.DatabaseEngine {
	return db.DatabaseEngine{Engine: f.Engine, Version: f.Version, Image: f.Image, Port: f.Port, DataDir: f.DataDir,
		RunUser: f.RunUser, Env: f.Env, Command: f.Command, HealthCommand: f.HealthCommand, DumpCommand: f.DumpCommand,
		RestoreCommand: f.RestoreCommand, CountCommand: f.CountCommand, ConnectionVars: f.ConnectionVars,
		Active: f.Active == nil || *f.Active}
}

func databaseEngineAdminViewOf(e db.DatabaseEngine) databaseEngineAdminView {
	active := e.Active
	return databaseEngineAdminView{ID: e.ID, databaseEngineFields: databaseEngineFields{Engine: e.Engine, Version: e.Version,
		Image: e.Image, Port: e.Port, DataDir: e.DataDir, RunUser: e.RunUser, Env: e.Env, Command: e.Command,
		HealthCommand: e.HealthCommand, DumpCommand: e.DumpCommand, RestoreCommand: e.RestoreCommand,
		CountCommand: e.CountCommand, ConnectionVars: e.ConnectionVars, Active: &active}}
}

// databasePlanFields are what an admin sets on a database plan.
type databasePlanFields struct {
	Slug              string `json:"slug" pattern:"^[a-z0-9][a-z0-9-]{0,62}$" doc:"URL-safe identifier, e.g. db-large"`
	Name              string `json:"name" minLength:"1" maxLength:"100"`
	CPUMillis         int    `json:"cpu_millis" minimum:"10" maximum:"64000" doc:"CPU in thousandths of a core"`
	MemoryMB          int    `json:"memory_mb" minimum:"64" maximum:"1048576"`
	StorageMB         int    `json:"storage_mb" minimum:"64" maximum:"16777216"`
	PricePerHourMinor int64  `json:"price_per_hour_minor" minimum:"0" doc:"price per hour in minor units (cents)"`
	Currency          string `json:"currency,omitempty" pattern:"^[A-Z]{3}$" default:"USD"`
	Active            *bool  `json:"active,omitempty" default:"true" doc:"inactive: no new database on it; the ones on it keep it"`
}

type databasePlanAdminView struct {
	ID string `json:"id"`
	databasePlanFields
}

func (f databasePlanFields) plan() db.DatabasePlan {
	currency := f.Currency
	if currency == "" {
		currency = "USD"
	}
	return db.DatabasePlan{Slug: f.Slug, Name: f.Name, CPUMillis: f.CPUMillis, MemoryMB: f.MemoryMB, StorageMB: f.StorageMB,
		PricePerHourMinor: f.PricePerHourMinor, Currency: currency, Active: f.Active == nil || *f.Active}
}

func databasePlanAdminViewOf(p db.DatabasePlan) databasePlanAdminView {
	active := p.Active
	return databasePlanAdminView{ID: p.ID, databasePlanFields: databasePlanFields{Slug: p.Slug, Name: p.Name, CPUMillis: p.CPUMillis,
		MemoryMB: p.MemoryMB, StorageMB: p.StorageMB, PricePerHourMinor: p.PricePerHourMinor, Currency: p.Currency, Active: &active}}
}

func (s *Server) registerDatabaseCatalog() {
	engineTaken := func(f databaseEngineFields) error {
		return huma.Error409Conflict(fmt.Sprintf("the catalogue has %s %s already", f.Engine, f.Version),
			&huma.ErrorDetail{Location: "body.version", Value: f.Version})
	}
	huma.Register(s.api, s.op("admin-list-database-engines", http.MethodGet, "/api/paas/admin/database-engines",
		"List every database engine version with its commands, inactive ones too", "admin", 0, true),
		func(ctx context.Context, _ *struct{}) (*items[databaseEngineAdminView], error) {
			engines, err := s.store.ListDatabaseEngines(ctx, true)
			if err != nil {
				return nil, s.problem(ctx, "database engine", err)
			}
			return listOf(viewsOf(engines, databaseEngineAdminViewOf)), nil
		})
	huma.Register(s.api, s.op("admin-create-database-engine", http.MethodPost, "/api/paas/admin/database-engines",
		"Add an engine version to the database catalogue", "admin", http.StatusCreated, true),
		func(ctx context.Context, in *body[databaseEngineFields]) (*body[databaseEngineAdminView], error) {
			if err := in.Body.validate(); err != nil {
				return nil, err
			}
			e, err := s.store.CreateDatabaseEngine(ctx, in.Body.engine())
			if errors.Is(err, db.ErrConflict) {
				return nil, engineTaken(in.Body)
			}
			if err != nil {
				return nil, s.problem(ctx, "database engine", err)
			}
			return bodyOf(databaseEngineAdminViewOf(e)), nil
		})
	huma.Register(s.api, s.op("admin-update-database-engine", http.MethodPut, "/api/paas/admin/database-engines/{id}",
		"Replace an engine version's fields; its databases use the new commands from their next operation on", "admin", 0, true),
		func(ctx context.Context, in *struct {
			ID   string `path:"id" maxLength:"64"`
			Body databaseEngineFields
		}) (*body[databaseEngineAdminView], error) {
			if err := in.Body.validate(); err != nil {
				return nil, err
			}
			e := in.Body.engine()
			e.ID = in.ID
			e, err := s.store.UpdateDatabaseEngine(ctx, e)
			if errors.Is(err, db.ErrConflict) {
				return nil, engineTaken(in.Body)
			}
			if err != nil {
				return nil, s.problem(ctx, "database engine", err)
			}
			return bodyOf(databaseEngineAdminViewOf(e)), nil
		})

	planTaken := func(f databasePlanFields) error {
		return huma.Error409Conflict("a database plan with this slug already exists", &huma.ErrorDetail{Location: "body.slug", Value: f.Slug})
	}
	huma.Register(s.api, s.op("admin-list-database-plans", http.MethodGet, "/api/paas/admin/database-plans",
		"List every database plan, inactive ones too", "admin", 0, true),
		func(ctx context.Context, _ *struct{}) (*items[databasePlanAdminView], error) {
			plans, err := s.store.ListAllDatabasePlans(ctx)
			if err != nil {
				return nil, s.problem(ctx, "database plan", err)
			}
			return listOf(viewsOf(plans, databasePlanAdminViewOf)), nil
		})
	huma.Register(s.api, s.op("admin-create-database-plan", http.MethodPost, "/api/paas/admin/database-plans",
		"Create a database plan", "admin", http.StatusCreated, true),
		func(ctx context.Context, in *body[databasePlanFields]) (*body[databasePlanAdminView], error) {
			p, err := s.store.CreateDatabasePlan(ctx, in.Body.plan())
			if errors.Is(err, db.ErrConflict) {
				return nil, planTaken(in.Body)
			}
			if err != nil {
				return nil, s.problem(ctx, "database plan", err)
			}
			return bodyOf(databasePlanAdminViewOf(p)), nil
		})
	huma.Register(s.api, s.op("admin-update-database-plan", http.MethodPut, "/api/paas/admin/database-plans/{id}",
		"Replace a database plan's fields; its databases get new limits when their container is next created", "admin", 0, true),
		func(ctx context.Context, in *struct {
			ID   string `path:"id" maxLength:"64"`
			Body databasePlanFields
		}) (*body[databasePlanAdminView], error) {
			p := in.Body.plan()
			p.ID = in.ID
			p, err := s.store.UpdateDatabasePlan(ctx, p)
			if errors.Is(err, db.ErrConflict) {
				return nil, planTaken(in.Body)
			}
			if err != nil {
				return nil, s.problem(ctx, "database plan", err)
			}
			return bodyOf(databasePlanAdminViewOf(p)), nil
		})
	huma.Register(s.api, s.op("admin-delete-database-plan", http.MethodDelete, "/api/paas/admin/database-plans/{id}",
		"Delete a database plan no database has used (409 otherwise: deactivate it)", "admin", http.StatusNoContent, true),
		func(ctx context.Context, in *idPath) (*struct{}, error) {
			if err := s.store.DeleteDatabasePlan(ctx, in.ID); err != nil {
				return nil, s.problem(ctx, "database plan", err)
			}
			return &struct{}{}, nil
		})
}
