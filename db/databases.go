package db

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Managed databases: the engine catalogue, the database plans, the databases and the links
// that give apps their connection variables. A database's operations have a queue of their own
// (database_operations.go).

// Database statuses.
const (
	DatabaseProvisioning = "provisioning"
	DatabaseAvailable    = "available"
	DatabaseFailed       = "failed"
	DatabaseDeleting     = "deleting"
	DatabaseDeleted      = "deleted"
)

// DatabaseEngine is one engine version of the catalogue.
type DatabaseEngine struct {
	ID             string
	Engine         string
	Version        string
	Image          string
	Port           int
	DataDir        string
	RunUser        string
	Env            map[string]string
	Command        []string
	HealthCommand  []string
	DumpCommand    []string
	RestoreCommand []string
	// CountCommand prints the rows (or keys) the database holds: what a restore reports.
	CountCommand []string
	// ConnectionVars are the variables a linked app gets: templates over {{host}}, {{port}},
	// {{user}}, {{password}} and {{database}}.
	ConnectionVars map[string]string
	Active         bool
}

const engineColumns = `e.id::text, e.engine, e.version, e.image, e.port, e.data_dir, e.run_user, e.env, e.command, e.health_command,
	e.dump_command, e.restore_command, e.count_command, e.connection_vars, e.active`

func scanEngine(row pgx.Row) (DatabaseEngine, error) {
	var e DatabaseEngine
	err := row.Scan(&e.ID, &e.Engine, &e.Version, &e.Image, &e.Port, &e.DataDir, &e.RunUser, &e.Env, &e.Command, &e.HealthCommand,
		&e.DumpCommand, &e.RestoreCommand, &e.CountCommand, &e.ConnectionVars, &e.Active)
	return e, translate(err)
}

// ListDatabaseEngines lists the catalogue, only the active versions unless includeInactive.
func (s *Store) ListDatabaseEngines(ctx context.Context, includeInactive bool) ([]DatabaseEngine, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+engineColumns+` FROM database_engines e WHERE e.active OR $1 ORDER BY e.engine, e.version`, includeInactive)
	if err != nil {
		return nil, fmt.Errorf("list database engines: %w", err)
	}
	return collect(rows, scanEngine)
}

// DatabaseEngineVersion finds an active engine version (ErrNotFound otherwise).
func (s *Store) DatabaseEngineVersion(ctx context.Context, engine, version string) (DatabaseEngine, error) {
	return scanEngine(s.pool.QueryRow(ctx, `SELECT `+engineColumns+` FROM database_engines e
		WHERE e.engine = $1 AND e.version = $2 AND e.active`, engine, version))
}

// DatabaseEngineByID reads a catalogue row, active or not (a database keeps its version).
func (s *Store) DatabaseEngineByID(ctx context.Context, id string) (DatabaseEngine, error) {
	return scanEngine(s.pool.QueryRow(ctx, `SELECT `+engineColumns+` FROM database_engines e WHERE e.id::text = $1`, id))
}

// DatabasePlan is a database's resources and hourly price.
type DatabasePlan struct {
	ID                string
	Slug              string
	Name              string
	CPUMillis         int
	MemoryMB          int
	StorageMB         int
	PricePerHourMinor int64
	Currency          string
	Active            bool
}

const databasePlanColumns = `id::text, slug, name, cpu_millis, memory_mb, storage_mb, price_per_hour_minor, currency, active`

func scanDatabasePlan(row pgx.Row) (DatabasePlan, error) {
	var p DatabasePlan
	err := row.Scan(&p.ID, &p.Slug, &p.Name, &p.CPUMillis, &p.MemoryMB, &p.StorageMB, &p.PricePerHourMinor, &p.Currency, &p.Active)
	return p, translate(err)
}

// ListDatabasePlans lists the active database plans, cheapest first.
func (s *Store) ListDatabasePlans(ctx context.Context) ([]DatabasePlan, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+databasePlanColumns+` FROM database_plans WHERE active ORDER BY price_per_hour_minor, slug`)
	if err != nil {
		return nil, fmt.Errorf("list database plans: %w", err)
	}
	return collect(rows, scanDatabasePlan)
}

// DatabasePlanByRef finds an active database plan by id or slug.
func (s *Store) DatabasePlanByRef(ctx context.Context, ref string) (DatabasePlan, error) {
	return scanDatabasePlan(s.pool.QueryRow(ctx, `SELECT `+databasePlanColumns+` FROM database_plans
		WHERE (id::text = $1 OR slug = $1) AND active`, ref))
}

// DatabasePlanByID reads a database plan, active or not (a database keeps its plan).
func (s *Store) DatabasePlanByID(ctx context.Context, id string) (DatabasePlan, error) {
	return scanDatabasePlan(s.pool.QueryRow(ctx, `SELECT `+databasePlanColumns+` FROM database_plans WHERE id::text = $1`, id))
}

// Database is a managed database of an organization.
type Database struct {
	ID             string
	OrgID          string
	Name           string
	Engine         string
	Version        string
	EngineID       string
	PlanID         string
	Plan           string // the plan's slug
	RegionID       string
	Region         string // the region's slug
	NodeID         *string
	User           string
	DBName         string
	PasswordSealed string
	Port           int
	Status         string
	StatusReason   string
	LinkedApps     []string // ids of the apps linked to it
	// BackupIntervalSeconds is how often its schedule backs it up (0: never); BackupRetention
	// how many scheduled backups it keeps.
	BackupIntervalSeconds int
	BackupRetention       int
	// BackupStore is where its backups go: BackupStoreFile or BackupStoreS3.
	BackupStore string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Backup stores: a database's backups go to the control plane's directory or to S3.
const (
	BackupStoreFile = "file"
	BackupStoreS3   = "s3"
)

const databaseColumns = `d.id::text, d.org_id::text, d.name, e.engine, e.version, d.engine_id::text, d.plan_id::text, p.slug,
	d.region_id::text, rg.slug, d.node_id::text, d.db_user, d.db_name, d.password_sealed, e.port, d.status, d.status_reason,
	ARRAY(SELECT l.app_id::text FROM app_database_links l WHERE l.database_id = d.id ORDER BY l.created_at, l.app_id),
	d.backup_interval_seconds, d.backup_retention, d.backup_store, d.created_at, d.updated_at`

const databaseFrom = ` FROM databases d JOIN database_engines e ON e.id = d.engine_id JOIN database_plans p ON p.id = d.plan_id
	JOIN regions rg ON rg.id = d.region_id `

func scanDatabase(row pgx.Row) (Database, error) {
	var d Database
	err := row.Scan(&d.ID, &d.OrgID, &d.Name, &d.Engine, &d.Version, &d.EngineID, &d.PlanID, &d.Plan, &d.RegionID, &d.Region, &d.NodeID,
		&d.User, &d.DBName, &d.PasswordSealed, &d.Port, &d.Status, &d.StatusReason, &d.LinkedApps,
		&d.BackupIntervalSeconds, &d.BackupRetention, &d.BackupStore, &d.CreatedAt, &d.UpdatedAt)
	return d, translate(err)
}

// GetDatabase returns a database of orgID that is not deleted (ErrNotFound for any other,
// another organization's included).
func (s *Store) GetDatabase(ctx context.Context, orgID, databaseID string) (Database, error) {
	return scanDatabase(s.pool.QueryRow(ctx, `SELECT `+databaseColumns+databaseFrom+`
		WHERE d.id::text = $1 AND d.org_id::text = $2 AND d.status <> 'deleted'`, databaseID, orgID))
}

// DatabaseByID returns a database whatever its organization and status (workflows, admins).
func (s *Store) DatabaseByID(ctx context.Context, databaseID string) (Database, error) {
	return scanDatabase(s.pool.QueryRow(ctx, `SELECT `+databaseColumns+databaseFrom+` WHERE d.id::text = $1`, databaseID))
}

// ListDatabases lists the organization's databases (all organizations' when orgID is empty),
// oldest first, the deleted ones left out.
func (s *Store) ListDatabases(ctx context.Context, orgID string) ([]Database, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+databaseColumns+databaseFrom+`
		WHERE d.status <> 'deleted' AND ($1 = '' OR d.org_id::text = $1) ORDER BY d.created_at, d.id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	return collect(rows, scanDatabase)
}

// NewDatabase is a database a customer asks for. The caller makes its id (the password is
// sealed bound to it before the row exists).
type NewDatabase struct {
	ID, OrgID, Name, EngineID, PlanID, RegionID string
	User, DBName, PasswordSealed                string
	// BackupIntervalSeconds (0: no scheduled backups) and BackupRetention; zero values take the
	// defaults (a day, 7) unless NoSchedule.
	BackupIntervalSeconds, BackupRetention int
	NoSchedule                             bool
	// BackupStore is where its backups go (empty: BackupStoreFile).
	BackupStore string
}

// Scheduled backups' defaults.
const (
	DefaultBackupIntervalSeconds = 86400
	DefaultBackupRetention       = 7
)

// CreateDatabase records a new database and queues its provisioning in one transaction: a name
// the organization uses already is a *ConflictError, and nothing is stored.
func (s *Store) CreateDatabase(ctx context.Context, n NewDatabase, provision NewOperation) (Database, DatabaseEnqueued, error) {
	var d Database
	var enq DatabaseEnqueued
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		interval := orDefault(n.BackupIntervalSeconds, DefaultBackupIntervalSeconds)
		if n.NoSchedule {
			interval = 0
		}
		if _, err := tx.Exec(ctx, `INSERT INTO databases (id, org_id, name, engine_id, plan_id, region_id, db_user, db_name, password_sealed,
				backup_interval_seconds, backup_retention, backup_store)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			n.ID, n.OrgID, n.Name, n.EngineID, n.PlanID, n.RegionID, n.User, n.DBName, n.PasswordSealed,
			interval, orDefault(n.BackupRetention, DefaultBackupRetention), cmp.Or(n.BackupStore, BackupStoreFile)); err != nil {
			return translate(err)
		}
		var err error
		if enq, err = enqueueDatabaseOperation(ctx, tx, n.OrgID, n.ID, provision); err != nil {
			return err
		}
		d, err = scanDatabase(tx.QueryRow(ctx, `SELECT `+databaseColumns+databaseFrom+` WHERE d.id = $1`, n.ID))
		return err
	})
	return d, enq, translate(err)
}

// PlaceDatabase returns the database's node, choosing one the first time: the node of the apps
// linked to it when it has any (Docker's DNS works within one engine), else the online node of
// its region with room for its plan's memory whose share reserved is the smallest (a
// *NoRoomError when none has room).
func (s *Store) PlaceDatabase(ctx context.Context, databaseID string) (string, error) {
	var nodeID string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var current *string
		var regionID, region string
		var need int64
		if err := tx.QueryRow(ctx, `SELECT d.node_id::text, d.region_id::text, rg.slug, p.memory_mb::bigint
			FROM databases d JOIN database_plans p ON p.id = d.plan_id JOIN regions rg ON rg.id = d.region_id
			WHERE d.id::text = $1 FOR UPDATE OF d`, databaseID).Scan(&current, &regionID, &region, &need); err != nil {
			return translate(err)
		}
		if current != nil {
			nodeID = *current
			return nil
		}
		var err error
		if nodeID, err = chooseNodeInRegion(ctx, tx, regionID, region, need); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE databases SET node_id = $2, updated_at = now() WHERE id::text = $1`, databaseID, nodeID)
		return err
	})
	return nodeID, err
}

// SetDatabaseStatus records a database's status and why (reason is shown to its owner).
// Its usage (billing) follows in the same transaction: open while it is available (or being
// deleted), closed once it is suspended, failed or deleted.
func (s *Store) SetDatabaseStatus(ctx context.Context, databaseID, status, reason string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE databases SET status = $2, status_reason = $3, updated_at = now(),
				deleted_at = CASE WHEN $2 = 'deleted' THEN now() ELSE deleted_at END
			WHERE id::text = $1`, databaseID, status, reason)
		if err != nil {
			return fmt.Errorf("set status of database %s: %w", databaseID, err)
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		return syncDatabaseUsage(ctx, tx, databaseID)
	})
	if errors.Is(err, ErrNotFound) {
		return ErrNotFound
	}
	return err
}

// DatabasePlacedFor reports whether the database runs (or is being provisioned) on nodeID: the
// only node its password is opened for.
func (s *Store) DatabasePlacedFor(ctx context.Context, databaseID, nodeID string) (bool, error) {
	var placed bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM databases WHERE id::text = $1 AND node_id::text = $2 AND status <> 'deleted')`,
		databaseID, nodeID).Scan(&placed)
	if err != nil {
		return false, fmt.Errorf("placement of database %s: %w", databaseID, err)
	}
	return placed, nil
}

// DatabaseLinkConflictError refuses a link across nodes: the app and the database run on
// different nodes, and Docker's DNS reaches only within one.
type DatabaseLinkConflictError struct{ Reason string }

func (e *DatabaseLinkConflictError) Error() string { return e.Reason }

// LinkedDatabase is a database linked to an app, with what its connection variables need.
type LinkedDatabase struct {
	DatabaseID     string
	Name           string
	Engine         string
	Port           int
	User           string
	DBName         string
	PasswordSealed string
	ConnectionVars map[string]string
	Status         string
}

// LinkedDatabases lists the databases linked to an app, in the order they were linked.
func (s *Store) LinkedDatabases(ctx context.Context, appID string) ([]LinkedDatabase, error) {
	rows, err := s.pool.Query(ctx, `SELECT d.id::text, d.name, e.engine, e.port, d.db_user, d.db_name, d.password_sealed, e.connection_vars, d.status
		FROM app_database_links l JOIN databases d ON d.id = l.database_id JOIN database_engines e ON e.id = d.engine_id
		WHERE l.app_id::text = $1 ORDER BY l.created_at, d.id`, appID)
	if err != nil {
		return nil, fmt.Errorf("list databases linked to app %s: %w", appID, err)
	}
	return collect(rows, func(row pgx.Row) (LinkedDatabase, error) {
		var l LinkedDatabase
		err := row.Scan(&l.DatabaseID, &l.Name, &l.Engine, &l.Port, &l.User, &l.DBName, &l.PasswordSealed, &l.ConnectionVars, &l.Status)
		return l, err
	})
}

// ChangeDatabaseLink links (or, with unlink, unlinks) a database of orgID to an app of orgID
// and queues the app's rollout (a configure operation, described by describe) in the same
// transaction when the app runs a release or has operations queued. The database must be
// available; a database on another node than the app's is a *DatabaseLinkConflictError. A
// link that exists already (or an unlink of none) changes nothing and queues nothing
// (changed false).
func (s *Store) ChangeDatabaseLink(ctx context.Context, orgID, appID, databaseID string, unlink bool, rollout NewOperation) (changed bool, enq Enqueued, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var appNode, currentRelease *string
		var appStatus string
		if err := tx.QueryRow(ctx, `SELECT node_id::text, status, current_release_id::text FROM applications
			WHERE id::text = $1 AND org_id::text = $2 FOR UPDATE`, appID, orgID).Scan(&appNode, &appStatus, &currentRelease); err != nil {
			return translate(err)
		}
		queued, running, deleting, err := queueState(ctx, tx, appID)
		if err != nil {
			return err
		}
		if appStatus == AppDeleting || deleting {
			return &InvalidStateError{Reason: "the application is being deleted"}
		}
		var dbNode *string
		var dbStatus, dbName string
		if err := tx.QueryRow(ctx, `SELECT node_id::text, status, name FROM databases
			WHERE id::text = $1 AND org_id::text = $2 AND status <> 'deleted' FOR UPDATE`, databaseID, orgID).Scan(&dbNode, &dbStatus, &dbName); err != nil {
			return translate(err)
		}
		if unlink {
			tag, err := tx.Exec(ctx, `DELETE FROM app_database_links WHERE app_id::text = $1 AND database_id::text = $2`, appID, databaseID)
			if err != nil {
				return fmt.Errorf("unlink database %s from app %s: %w", databaseID, appID, err)
			}
			if tag.RowsAffected() == 0 {
				return ErrNotFound
			}
		} else {
			if dbStatus != DatabaseAvailable {
				return &InvalidStateError{Reason: fmt.Sprintf("the database %s is %s: it can be linked once it is available", dbName, dbStatus)}
			}
			if appNode != nil && dbNode != nil && *appNode != *dbNode {
				return &DatabaseLinkConflictError{Reason: fmt.Sprintf("the database %s runs on another node than the application: "+
					"an application reaches a database by its name on the organization's network, which spans one node; "+
					"create the database again beside the application, or link it to an application that has not been deployed yet", dbName)}
			}
			tag, err := tx.Exec(ctx, `INSERT INTO app_database_links (app_id, database_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, appID, databaseID)
			if err != nil {
				return translate(err)
			}
			if tag.RowsAffected() == 0 {
				return nil // linked already
			}
			if appNode == nil && dbNode != nil {
				// An app that has not been placed yet goes where its database runs.
				if _, err := tx.Exec(ctx, `UPDATE applications SET node_id = $2 WHERE id::text = $1`, appID, *dbNode); err != nil {
					return fmt.Errorf("place app %s beside database %s: %w", appID, databaseID, err)
				}
			}
		}
		changed = true
		// As an environment change: a running release rolls out now; otherwise the next
		// deploy, start or resume reads the links.
		if !(appStatus == AppRunning && currentRelease != nil) && queued+running == 0 {
			return nil
		}
		enq, err = enqueueOperation(ctx, tx, orgID, appID, rollout)
		return err
	})
	return changed, enq, translate(err)
}

// DatabaseLinkedApps names the apps linked to a database (ids, oldest link first).
func (s *Store) DatabaseLinkedApps(ctx context.Context, databaseID string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT app_id::text FROM app_database_links WHERE database_id::text = $1 ORDER BY created_at, app_id`, databaseID)
	if err != nil {
		return nil, fmt.Errorf("apps linked to database %s: %w", databaseID, err)
	}
	return collect(rows, func(row pgx.Row) (string, error) {
		var id string
		err := row.Scan(&id)
		return id, err
	})
}

// UndoDatabaseLink puts a link back as it was before ChangeDatabaseLink, when the rollout's
// workflow could not be started (its operation is abandoned apart).
func (s *Store) UndoDatabaseLink(ctx context.Context, appID, databaseID string, unlinked bool) error {
	var err error
	if unlinked {
		_, err = s.pool.Exec(ctx, `INSERT INTO app_database_links (app_id, database_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, appID, databaseID)
	} else {
		_, err = s.pool.Exec(ctx, `DELETE FROM app_database_links WHERE app_id::text = $1 AND database_id::text = $2`, appID, databaseID)
	}
	if err != nil {
		return fmt.Errorf("undo the link of database %s to app %s: %w", databaseID, appID, err)
	}
	return nil
}

// ErrDatabaseLinked refuses to delete a database apps are linked to.
var ErrDatabaseLinked = errors.New("the database is linked to applications: unlink it first")
