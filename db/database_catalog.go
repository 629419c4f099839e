package db

import (
	"context"
	"fmt"
)

// The admin's side of the database catalogue: engine versions and database plans are created
// and replaced through the admin API (docs/databases.md, "The catalogue"). A row a database uses
// is never deleted: it is deactivated, which hides it from new databases while the ones that use
// it keep running on it.

// CreateDatabaseEngine inserts an engine version (ErrConflict when the engine has that version).
func (s *Store) CreateDatabaseEngine(ctx context.Context, e DatabaseEngine) (DatabaseEngine, error) {
	return scanEngine(s.pool.QueryRow(ctx, `INSERT INTO database_engines AS e (engine, version, image, port, data_dir, run_user,
			env, command, health_command, dump_command, restore_command, count_command, connection_vars, active)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING `+engineColumns,
		e.Engine, e.Version, e.Image, e.Port, e.DataDir, e.RunUser, nonNilMap(e.Env), nonNilSlice(e.Command), nonNilSlice(e.HealthCommand),
		nonNilSlice(e.DumpCommand), nonNilSlice(e.RestoreCommand), nonNilSlice(e.CountCommand), nonNilMap(e.ConnectionVars), e.Active))
}

// UpdateDatabaseEngine replaces an engine version's fields, its engine and version included.
// Databases on it use the new commands from their next operation on, and the new image,
// environment and command when their container is next created.
func (s *Store) UpdateDatabaseEngine(ctx context.Context, e DatabaseEngine) (DatabaseEngine, error) {
	return scanEngine(s.pool.QueryRow(ctx, `UPDATE database_engines AS e SET engine = $2, version = $3, image = $4, port = $5,
			data_dir = $6, run_user = $7, env = $8, command = $9, health_command = $10, dump_command = $11,
			restore_command = $12, count_command = $13, connection_vars = $14, active = $15, updated_at = now()
		WHERE id::text = $1 RETURNING `+engineColumns,
		e.ID, e.Engine, e.Version, e.Image, e.Port, e.DataDir, e.RunUser, nonNilMap(e.Env), nonNilSlice(e.Command), nonNilSlice(e.HealthCommand),
		nonNilSlice(e.DumpCommand), nonNilSlice(e.RestoreCommand), nonNilSlice(e.CountCommand), nonNilMap(e.ConnectionVars), e.Active))
}

// ListAllDatabasePlans lists every database plan, inactive ones too, cheapest first.
func (s *Store) ListAllDatabasePlans(ctx context.Context) ([]DatabasePlan, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+databasePlanColumns+` FROM database_plans ORDER BY price_per_hour_minor, slug`)
	if err != nil {
		return nil, fmt.Errorf("list database plans: %w", err)
	}
	return collect(rows, scanDatabasePlan)
}

// CreateDatabasePlan inserts a database plan (ErrConflict when its slug is taken).
func (s *Store) CreateDatabasePlan(ctx context.Context, p DatabasePlan) (DatabasePlan, error) {
	return scanDatabasePlan(s.pool.QueryRow(ctx, `INSERT INTO database_plans (slug, name, cpu_millis, memory_mb, storage_mb,
			price_per_hour_minor, currency, active)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING `+databasePlanColumns,
		p.Slug, p.Name, p.CPUMillis, p.MemoryMB, p.StorageMB, p.PricePerHourMinor, p.Currency, p.Active))
}

// UpdateDatabasePlan replaces a database plan's fields (by id or slug). Databases on it keep
// their container's limits until it is next created; billing uses the new price from the next
// change of their usage on.
func (s *Store) UpdateDatabasePlan(ctx context.Context, p DatabasePlan) (DatabasePlan, error) {
	return scanDatabasePlan(s.pool.QueryRow(ctx, `UPDATE database_plans SET slug = $2, name = $3, cpu_millis = $4, memory_mb = $5,
			storage_mb = $6, price_per_hour_minor = $7, currency = $8, active = $9, updated_at = now()
		WHERE id::text = $1 OR slug = $1 RETURNING `+databasePlanColumns,
		p.ID, p.Slug, p.Name, p.CPUMillis, p.MemoryMB, p.StorageMB, p.PricePerHourMinor, p.Currency, p.Active))
}

// DeleteDatabasePlan deletes a plan no database has ever used (ErrConflict, in use, otherwise:
// deleted databases keep their plan for their history; deactivate it instead).
func (s *Store) DeleteDatabasePlan(ctx context.Context, ref string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM database_plans WHERE id::text = $1 OR slug = $1`, ref)
	if err != nil {
		return translate(err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func nonNilSlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
