package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Plan is a resource tier with an hourly price per instance in minor units.
type Plan struct {
	ID                string
	Slug              string
	Name              string
	CPUMillis         int
	MemoryMB          int
	PricePerHourMinor int64
	Currency          string
	Active            bool
	// BuildTimeoutSeconds is how long one build of an app on the plan may run.
	BuildTimeoutSeconds int
	// BuildDiskMB is how much disk one build of an app on the plan may fill.
	BuildDiskMB int
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

const planColumns = `id, slug, name, cpu_millis, memory_mb, price_per_hour_minor, currency, active, build_timeout_seconds, build_disk_mb, created_at, updated_at`

func scanPlan(row pgx.Row) (Plan, error) {
	var p Plan
	err := row.Scan(&p.ID, &p.Slug, &p.Name, &p.CPUMillis, &p.MemoryMB, &p.PricePerHourMinor, &p.Currency, &p.Active, &p.BuildTimeoutSeconds, &p.BuildDiskMB, &p.CreatedAt, &p.UpdatedAt)
	return p, translate(err)
}

// ListPlans lists plans, only the active ones unless includeInactive.
func (s *Store) ListPlans(ctx context.Context, includeInactive bool) ([]Plan, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+planColumns+` FROM plans WHERE active OR $1 ORDER BY price_per_hour_minor, slug`, includeInactive)
	if err != nil {
		return nil, fmt.Errorf("list plans: %w", err)
	}
	return collect(rows, scanPlan)
}

// PlanByRef finds a plan by id or slug.
func (s *Store) PlanByRef(ctx context.Context, ref string) (Plan, error) {
	return scanPlan(s.pool.QueryRow(ctx, `SELECT `+planColumns+` FROM plans WHERE id::text = $1 OR slug = $1`, ref))
}

// CreatePlan inserts a plan.
func (s *Store) CreatePlan(ctx context.Context, p Plan) (Plan, error) {
	return scanPlan(s.pool.QueryRow(ctx, `INSERT INTO plans (slug, name, cpu_millis, memory_mb, price_per_hour_minor, currency, active, build_timeout_seconds, build_disk_mb)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING `+planColumns,
		p.Slug, p.Name, p.CPUMillis, p.MemoryMB, p.PricePerHourMinor, p.Currency, p.Active, buildTimeoutOrDefault(p.BuildTimeoutSeconds), orDefault(p.BuildDiskMB, DefaultBuildDiskMB)))
}

// UpdatePlan replaces a plan's editable fields.
func (s *Store) UpdatePlan(ctx context.Context, p Plan) (Plan, error) {
	return scanPlan(s.pool.QueryRow(ctx, `UPDATE plans SET slug = $2, name = $3, cpu_millis = $4, memory_mb = $5,
		price_per_hour_minor = $6, currency = $7, active = $8, build_timeout_seconds = $9, build_disk_mb = $10, updated_at = now()
		WHERE id::text = $1 OR slug = $1 RETURNING `+planColumns,
		p.ID, p.Slug, p.Name, p.CPUMillis, p.MemoryMB, p.PricePerHourMinor, p.Currency, p.Active, buildTimeoutOrDefault(p.BuildTimeoutSeconds), orDefault(p.BuildDiskMB, DefaultBuildDiskMB)))
}

// DefaultBuildDiskMB is a plan's build disk limit when its creator names none.
const DefaultBuildDiskMB = 10240

// DefaultBuildTimeoutSeconds is a plan's build time limit when its creator names none.
const DefaultBuildTimeoutSeconds = 900

func buildTimeoutOrDefault(seconds int) int { return orDefault(seconds, DefaultBuildTimeoutSeconds) }

// orDefault is v, or def when v names nothing (0).
func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// DeletePlan removes a plan no application uses (ErrConflict otherwise).
func (s *Store) DeletePlan(ctx context.Context, ref string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM plans WHERE id::text = $1 OR slug = $1`, ref)
	if err != nil {
		return translate(err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// Runtime is a language stack apps are built with.
type Runtime struct {
	ID         string
	Slug       string
	Name       string
	Kind       string
	Version    string
	BuildImage string
	RunImage   string
	Active     bool
	// ReadOnlyRoot: the runtime's apps run on a read-only root filesystem, where only /tmp and
	// WritablePaths (each a tmpfs) can be written.
	ReadOnlyRoot  bool
	WritablePaths []string
	CreatedAt     time.Time
}

const runtimeColumns = `id, slug, name, kind, version, build_image, run_image, active, read_only_root, writable_paths, created_at`

func scanRuntime(row pgx.Row) (Runtime, error) {
	var r Runtime
	err := row.Scan(&r.ID, &r.Slug, &r.Name, &r.Kind, &r.Version, &r.BuildImage, &r.RunImage, &r.Active, &r.ReadOnlyRoot, &r.WritablePaths, &r.CreatedAt)
	return r, translate(err)
}

// ListRuntimes lists runtimes, only the active ones unless includeInactive.
func (s *Store) ListRuntimes(ctx context.Context, includeInactive bool) ([]Runtime, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+runtimeColumns+` FROM runtimes WHERE active OR $1 ORDER BY slug`, includeInactive)
	if err != nil {
		return nil, fmt.Errorf("list runtimes: %w", err)
	}
	return collect(rows, scanRuntime)
}

// RuntimeByRef finds a runtime by id or slug.
func (s *Store) RuntimeByRef(ctx context.Context, ref string) (Runtime, error) {
	return scanRuntime(s.pool.QueryRow(ctx, `SELECT `+runtimeColumns+` FROM runtimes WHERE id::text = $1 OR slug = $1`, ref))
}

// CreateRuntime inserts a runtime.
func (s *Store) CreateRuntime(ctx context.Context, r Runtime) (Runtime, error) {
	return scanRuntime(s.pool.QueryRow(ctx, `INSERT INTO runtimes (slug, name, kind, version, build_image, run_image, active, read_only_root, writable_paths)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING `+runtimeColumns,
		r.Slug, r.Name, r.Kind, r.Version, r.BuildImage, r.RunImage, r.Active, r.ReadOnlyRoot, nonNil(r.WritablePaths)))
}

// nonNil is paths, or an empty list for the NOT NULL array column.
func nonNil(paths []string) []string {
	if paths == nil {
		return []string{}
	}
	return paths
}

// UpdateRuntime replaces a runtime's editable fields (found by id or slug).
func (s *Store) UpdateRuntime(ctx context.Context, ref string, r Runtime) (Runtime, error) {
	return scanRuntime(s.pool.QueryRow(ctx, `UPDATE runtimes SET slug = $2, name = $3, kind = $4, version = $5,
		build_image = $6, run_image = $7, active = $8, read_only_root = $9, writable_paths = $10
		WHERE id::text = $1 OR slug = $1 RETURNING `+runtimeColumns,
		ref, r.Slug, r.Name, r.Kind, r.Version, r.BuildImage, r.RunImage, r.Active, r.ReadOnlyRoot, nonNil(r.WritablePaths)))
}

// Region is a place nodes live in.
type Region struct {
	ID   string
	Slug string
	Name string
}

// RegionByRef finds a region by id or slug.
func (s *Store) RegionByRef(ctx context.Context, ref string) (Region, error) {
	var r Region
	err := s.pool.QueryRow(ctx, `SELECT id, slug, name FROM regions WHERE id::text = $1 OR slug = $1`, ref).Scan(&r.ID, &r.Slug, &r.Name)
	return r, translate(err)
}

// EnsureRegion returns the region with slug, creating it when missing.
func (s *Store) EnsureRegion(ctx context.Context, slug, name string) (Region, error) {
	var r Region
	err := s.pool.QueryRow(ctx, `INSERT INTO regions (slug, name) VALUES ($1, $2)
		ON CONFLICT (slug) DO UPDATE SET slug = EXCLUDED.slug RETURNING id, slug, name`, slug, name).Scan(&r.ID, &r.Slug, &r.Name)
	return r, translate(err)
}

// ListRegions lists regions.
func (s *Store) ListRegions(ctx context.Context) ([]Region, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, slug, name FROM regions ORDER BY slug`)
	if err != nil {
		return nil, fmt.Errorf("list regions: %w", err)
	}
	return collect(rows, func(row pgx.Row) (Region, error) {
		var r Region
		return r, row.Scan(&r.ID, &r.Slug, &r.Name)
	})
}

func collect[T any](rows pgx.Rows, scan func(pgx.Row) (T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, translate(rows.Err())
}

// StackRuntime is what the auto runtime takes from the catalogue runtime of one stack: its
// images and its root filesystem setting.
type StackRuntime struct {
	BuildImage    string
	RunImage      string
	ReadOnlyRoot  bool
	WritablePaths []string
}

// StackRuntimes returns, for each buildpack stack (node, python, php), its catalogue runtime:
// the one whose slug is the stack's name when active, else the oldest active one naming images.
// The auto runtime builds a detected stack with its images and runs it with its root
// filesystem setting.
func (s *Store) StackRuntimes(ctx context.Context) (map[string]StackRuntime, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT ON (kind) kind, build_image, run_image, read_only_root, writable_paths FROM runtimes
		WHERE active AND kind IN ('node', 'python', 'php') AND (build_image <> '' OR run_image <> '')
		ORDER BY kind, (slug = kind) DESC, created_at`)
	if err != nil {
		return nil, fmt.Errorf("stack runtimes: %w", err)
	}
	defer rows.Close()
	out := map[string]StackRuntime{}
	for rows.Next() {
		var kind string
		var r StackRuntime
		if err := rows.Scan(&kind, &r.BuildImage, &r.RunImage, &r.ReadOnlyRoot, &r.WritablePaths); err != nil {
			return nil, fmt.Errorf("stack runtimes: %w", err)
		}
		out[kind] = r
	}
	return out, translate(rows.Err())
}
