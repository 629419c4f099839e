package apiserver

// Managed databases (docs/databases.md): the catalogue customers choose from, the databases of
// an organization, their operations (each a workflow in the database's own queue), and links
// that give an app a database's connection variables through a zero-downtime rollout.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/skypanel/skypanel/activities/contract"
	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
	"github.com/skypanel/skypanel/temporal/operations"
)

// databaseEngineView is one engine version customers can create.
type databaseEngineView struct {
	Engine  string `json:"engine" enum:"postgresql,mysql,mongodb,redis"`
	Version string `json:"version"`
	Image   string `json:"image" doc:"the container image it runs"`
	// Variables are the names a linked app gets.
	Variables []string `json:"variables" doc:"the environment variables a linked application gets"`
}

// databasePlanView is a database plan.
type databasePlanView struct {
	Slug              string `json:"slug"`
	Name              string `json:"name"`
	CPUMillis         int    `json:"cpu_millis"`
	MemoryMB          int    `json:"memory_mb"`
	StorageMB         int    `json:"storage_mb"`
	PricePerHourMinor int64  `json:"price_per_hour_minor" doc:"integer minor units (cents) per hour"`
	Currency          string `json:"currency"`
}

// databaseView is a managed database. Password is only in GET /databases/{id} (its
// organization's members are the only ones who reach it).
type databaseView struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Engine       string   `json:"engine"`
	Version      string   `json:"version"`
	Plan         string   `json:"plan"`
	Region       string   `json:"region"`
	Status       string   `json:"status" enum:"provisioning,available,failed,deleting,suspended" doc:"provisioning → available; failed: see status_reason; suspended: its organization's wallet cannot pay for it (stopped, its data kept; it starts again once funds are added)"`
	StatusReason string   `json:"status_reason,omitempty"`
	Host         string   `json:"host" doc:"the name it answers by on its organization's network: only its organization's applications reach it, never the internet"`
	Port         int      `json:"port"`
	Database     string   `json:"database"`
	User         string   `json:"user"`
	Password     string   `json:"password,omitempty" doc:"only in GET /databases/{id}, for its own organization"`
	LinkedApps   []string `json:"linked_apps" doc:"ids of the applications linked to it"`
	// The backup schedule.
	BackupInterval  string    `json:"backup_interval" doc:"how often it is backed up on its schedule, e.g. 24h0m0s; 0s: never"`
	BackupRetention int       `json:"backup_retention" doc:"how many scheduled backups it keeps (the oldest go)"`
	BackupStore     string    `json:"backup_store" enum:"file,s3" doc:"where its backups go: the control plane's directory, or the platform's S3 bucket"`
	CreatedAt       time.Time `json:"created_at"`
}

func databaseViewOf(d db.Database) databaseView {
	linked := d.LinkedApps
	if linked == nil {
		linked = []string{}
	}
	return databaseView{ID: d.ID, Name: d.Name, Engine: d.Engine, Version: d.Version, Plan: d.Plan, Region: d.Region,
		Status: d.Status, StatusReason: d.StatusReason, Host: contract.DatabaseHost(d.ID), Port: d.Port,
		Database: d.DBName, User: d.User, LinkedApps: linked, CreatedAt: d.CreatedAt,
		BackupInterval: (time.Duration(d.BackupIntervalSeconds) * time.Second).String(), BackupRetention: d.BackupRetention, BackupStore: d.BackupStore}
}

type createDatabaseInput struct {
	Body struct {
		Name    string `json:"name" minLength:"1" maxLength:"40" doc:"2-40 lower-case letters, digits or '-', starting with a letter; unique in the organization"`
		Engine  string `json:"engine" minLength:"1" maxLength:"32" doc:"postgresql, mysql, mongodb or redis (GET /api/paas/database-engines)"`
		Version string `json:"version,omitempty" maxLength:"32" doc:"one of the engine's versions; the newest when omitted"`
		Plan    string `json:"plan" minLength:"1" maxLength:"64" doc:"a database plan's slug (GET /api/paas/database-plans)"`
		Region  string `json:"region,omitempty" maxLength:"64" doc:"a region's slug; may be omitted when the platform has one"`
		// The backup schedule: daily and 7 kept unless said otherwise.
		BackupInterval  string `json:"backup_interval,omitempty" maxLength:"32" doc:"how often to back it up, a duration such as 24h or 6h (default 24h); 0 for no scheduled backups"`
		BackupRetention int    `json:"backup_retention,omitempty" minimum:"0" maximum:"100" doc:"how many scheduled backups to keep (default 7)"`
		BackupStore     string `json:"backup_store,omitempty" enum:"file,s3" doc:"where its backups go: file (the control plane's directory) or s3 (the platform's bucket, when configured); the platform's default when omitted"`
	}
}

type databaseOperationOutput struct {
	Status int
	Body   struct {
		Database    *databaseView `json:"database,omitempty"`
		OperationID string        `json:"operation_id"`
		WorkflowID  string        `json:"workflow_id"`
		State       string        `json:"status" doc:"queued or running: the operation runs in the database's queue"`
	}
}

type deleteDatabaseInput struct {
	ID          string `path:"id" maxLength:"64"`
	FinalBackup string `query:"final_backup" enum:"true,false" default:"true" doc:"take a final backup first (kept for the platform's retention period, listed and downloadable meanwhile); false deletes at once"`
}

type databaseLinkInput struct {
	ID         string `path:"id" maxLength:"64"`
	DatabaseID string `path:"dbId" maxLength:"64"`
}

type databaseLinkOutput struct {
	Status int
	Body   struct {
		Variables   []string `json:"variables" doc:"the variables the link gives the application"`
		Shadowed    []string `json:"shadowed,omitempty" doc:"variables of the link the application does not get: its own variable (or an earlier link) of that name wins"`
		OperationID string   `json:"operation_id,omitempty" doc:"the rollout that gives the running application the change, in its queue"`
		WorkflowID  string   `json:"workflow_id,omitempty"`
		State       string   `json:"status" enum:"rolling-out,saved,unchanged" doc:"rolling-out: a zero-downtime rollout is queued; saved: the application does not run a release, its next deploy or start reads the link; unchanged: it was so already"`
	}
}

// databaseNamePattern is the databases.name check.
var databaseNamePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,38}[a-z0-9]$`)

func (s *Server) registerDatabases() {
	huma.Register(s.api, s.op("list-database-engines", http.MethodGet, "/api/paas/database-engines",
		"List the database engines and versions customers can create", "databases", 0, false),
		func(ctx context.Context, _ *struct{}) (*items[databaseEngineView], error) {
			engines, err := s.store.ListDatabaseEngines(ctx, false)
			if err != nil {
				return nil, s.problem(ctx, "database engine", err)
			}
			views := make([]databaseEngineView, len(engines))
			for i, e := range engines {
				views[i] = databaseEngineView{Engine: e.Engine, Version: e.Version, Image: e.Image, Variables: slices.Sorted(maps.Keys(e.ConnectionVars))}
			}
			return listOf(views), nil
		})
	huma.Register(s.api, s.op("list-database-plans", http.MethodGet, "/api/paas/database-plans",
		"List the database plans customers can choose", "databases", 0, false),
		func(ctx context.Context, _ *struct{}) (*items[databasePlanView], error) {
			plans, err := s.store.ListDatabasePlans(ctx)
			if err != nil {
				return nil, s.problem(ctx, "database plan", err)
			}
			views := make([]databasePlanView, len(plans))
			for i, p := range plans {
				views[i] = databasePlanView{Slug: p.Slug, Name: p.Name, CPUMillis: p.CPUMillis, MemoryMB: p.MemoryMB, StorageMB: p.StorageMB,
					PricePerHourMinor: p.PricePerHourMinor, Currency: p.Currency}
			}
			return listOf(views), nil
		})
	huma.Register(s.api, s.op("list-databases", http.MethodGet, "/api/paas/databases", "List the organization's databases", "databases", 0, false),
		func(ctx context.Context, _ *struct{}) (*items[databaseView], error) {
			list, err := s.store.ListDatabases(ctx, principal(ctx).OrgID)
			if err != nil {
				return nil, s.problem(ctx, "database", err)
			}
			views := make([]databaseView, len(list))
			for i, d := range list {
				views[i] = databaseViewOf(d)
			}
			return listOf(views), nil
		})
	huma.Register(s.api, s.op("create-database", http.MethodPost, "/api/paas/databases",
		"Create a managed database: it is provisioned by a workflow (provisioning → available)", "databases", http.StatusAccepted, false),
		s.createDatabase)
	huma.Register(s.api, s.op("get-database", http.MethodGet, "/api/paas/databases/{id}",
		"A database with its connection settings, the password included", "databases", 0, false),
		func(ctx context.Context, in *idPath) (*body[databaseView], error) {
			d, err := s.store.GetDatabase(ctx, principal(ctx).OrgID, in.ID)
			if err != nil {
				return nil, s.problem(ctx, "database", err)
			}
			view := databaseViewOf(d)
			password, err := s.cfg.Keyring.Decrypt(d.PasswordSealed, secrets.DatabasePassword(d.ID))
			if err != nil {
				s.log.ErrorContext(ctx, "open a database's password", "database_id", d.ID, "error", secrets.Explain(err))
				return nil, huma.Error500InternalServerError("the database's password cannot be opened with the platform's keys")
			}
			view.Password = string(password)
			return bodyOf(view), nil
		})
	huma.Register(s.api, s.op("delete-database", http.MethodDelete, "/api/paas/databases/{id}",
		"Delete a database and its data, after a final backup unless final_backup=false (refused while applications are linked to it)", "databases", http.StatusAccepted, false),
		func(ctx context.Context, in *deleteDatabaseInput) (*databaseOperationOutput, error) {
			p := principal(ctx)
			finalBackupID := uuid.NewString()
			if in.FinalBackup == "false" {
				finalBackupID = ""
			}
			op, err := s.ops.SubmitDatabase(ctx, operations.DatabaseRequest{OrgID: p.OrgID, DatabaseID: in.ID, Kind: db.DatabaseOpDelete, UserID: p.UserID,
				BackupID: finalBackupID},
				func(op db.NewOperation) (db.DatabaseEnqueued, error) {
					return s.store.QueueDelete(ctx, p.OrgID, in.ID, finalBackupID, op)
				})
			if err != nil {
				return nil, s.databaseProblem(ctx, err)
			}
			s.log.InfoContext(ctx, "database delete queued", "database_id", in.ID, "operation_id", op.ID, "final_backup_id", finalBackupID)
			return databaseOperationOf(op, nil), nil
		})
	huma.Register(s.api, s.op("link-database", http.MethodPost, "/api/paas/applications/{id}/databases/{dbId}",
		"Link a database to an application: it gets the database's connection variables through a zero-downtime rollout", "databases", http.StatusOK, false),
		func(ctx context.Context, in *databaseLinkInput) (*databaseLinkOutput, error) {
			return s.changeDatabaseLink(ctx, in, false)
		})
	huma.Register(s.api, s.op("unlink-database", http.MethodDelete, "/api/paas/applications/{id}/databases/{dbId}",
		"Unlink a database from an application: its connection variables go with another rollout", "databases", http.StatusOK, false),
		func(ctx context.Context, in *databaseLinkInput) (*databaseLinkOutput, error) {
			return s.changeDatabaseLink(ctx, in, true)
		})
}

func databaseOperationOf(op db.DatabaseOperation, d *databaseView) *databaseOperationOutput {
	out := &databaseOperationOutput{Status: http.StatusAccepted}
	out.Body.Database, out.Body.OperationID, out.Body.WorkflowID, out.Body.State = d, op.ID, op.WorkflowID, op.Status
	return out
}

func (s *Server) createDatabase(ctx context.Context, in *createDatabaseInput) (*databaseOperationOutput, error) {
	b := in.Body
	if !databaseNamePattern.MatchString(b.Name) {
		return nil, fieldError("body.name", "name must be 2-40 lower-case letters, digits or '-', starting with a letter and ending with a letter or digit", b.Name)
	}
	// Before anything is read or stored.
	backupStore, err := s.backupStore(b.BackupStore)
	if err != nil {
		return nil, err
	}
	engine, err := s.resolveDatabaseEngine(ctx, b.Engine, b.Version)
	if err != nil {
		return nil, err
	}
	plan, err := s.store.DatabasePlanByRef(ctx, b.Plan)
	if errors.Is(err, db.ErrNotFound) {
		return nil, fieldError("body.plan", "unknown database plan; see GET /api/paas/database-plans", b.Plan)
	}
	if err != nil {
		return nil, s.problem(ctx, "database plan", err)
	}
	region, err := s.resolveRegion(ctx, b.Region)
	if err != nil {
		return nil, err
	}
	interval, noSchedule, err := s.backupInterval(b.BackupInterval)
	if err != nil {
		return nil, err
	}
	p := principal(ctx)
	if err := s.requireFunds(ctx, p.OrgID, plan.PricePerHourMinor, ""); err != nil {
		return nil, err
	}
	id := uuid.NewString()
	password, err := newDatabasePassword()
	if err != nil {
		return nil, fmt.Errorf("make a database password: %w", err)
	}
	sealed, err := s.cfg.Keyring.Encrypt([]byte(password), secrets.DatabasePassword(id))
	if err != nil {
		return nil, fmt.Errorf("seal a database password: %w", err)
	}
	var created db.Database
	op, err := s.ops.SubmitDatabase(ctx, operations.DatabaseRequest{OrgID: p.OrgID, DatabaseID: id, Kind: db.DatabaseOpProvision, UserID: p.UserID},
		func(op db.NewOperation) (db.DatabaseEnqueued, error) {
			var enq db.DatabaseEnqueued
			var err error
			created, enq, err = s.store.CreateDatabase(ctx, db.NewDatabase{
				ID: id, OrgID: p.OrgID, Name: b.Name, EngineID: engine.ID, PlanID: plan.ID, RegionID: region.ID,
				User: "app", DBName: strings.ReplaceAll(b.Name, "-", "_"), PasswordSealed: sealed,
				BackupIntervalSeconds: int(interval / time.Second), BackupRetention: b.BackupRetention, NoSchedule: noSchedule,
				BackupStore: backupStore,
			}, op)
			return enq, err
		})
	if errors.Is(err, db.ErrConflict) {
		return nil, huma.Error409Conflict("the organization has a database of this name already",
			&huma.ErrorDetail{Location: "body.name", Message: "name taken", Value: b.Name})
	}
	if err != nil {
		return nil, s.databaseProblem(ctx, err)
	}
	s.log.InfoContext(ctx, "database created", "database_id", id, "org_id", p.OrgID, "engine", engine.Engine, "version", engine.Version, "operation_id", op.ID)
	view := databaseViewOf(created)
	view.Status = db.DatabaseProvisioning
	return databaseOperationOf(op, &view), nil
}

// backupInterval reads a requested backup schedule: "" is the default (a day), "0" none; any
// other must be a whole number of seconds no shorter than the platform's minimum.
func (s *Server) backupInterval(raw string) (time.Duration, bool, error) {
	if raw == "" {
		return 0, false, nil
	}
	if raw == "0" || raw == "0s" {
		return 0, true, nil
	}
	min := s.cfg.MinBackupInterval
	if min <= 0 {
		min = time.Hour
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d%time.Second != 0 || d > 365*24*time.Hour {
		return 0, false, fieldError("body.backup_interval", "a duration such as 24h or 6h, in whole seconds, at most a year; 0 for no scheduled backups", raw)
	}
	if d < min {
		return 0, false, fieldError("body.backup_interval", "backups may be scheduled at most every "+min.String(), raw)
	}
	return d, false, nil
}

// backupStore reads the backup store asked for at creation: the platform's default when
// omitted; a store this platform is not given is refused, naming body.backup_store.
func (s *Server) backupStore(raw string) (string, error) {
	if raw == "" {
		if s.cfg.Backups == nil || s.cfg.Backups.Default == "" {
			return db.BackupStoreFile, nil
		}
		return s.cfg.Backups.Default, nil
	}
	if raw != db.BackupStoreFile && raw != db.BackupStoreS3 {
		return "", fieldError("body.backup_store", "file or s3", raw)
	}
	if !s.cfg.Backups.Has(raw) {
		return "", fieldError("body.backup_store", "this platform has no "+raw+" backup store configured", raw)
	}
	return raw, nil
}

// resolveDatabaseEngine finds the engine version asked for (the newest active one when version
// is empty), or says what there is.
func (s *Server) resolveDatabaseEngine(ctx context.Context, engine, version string) (db.DatabaseEngine, error) {
	all, err := s.store.ListDatabaseEngines(ctx, false)
	if err != nil {
		return db.DatabaseEngine{}, s.problem(ctx, "database engine", err)
	}
	var versions []string
	var engines []string
	var newest *db.DatabaseEngine
	for i, e := range all {
		if !slices.Contains(engines, e.Engine) {
			engines = append(engines, e.Engine)
		}
		if e.Engine != engine {
			continue
		}
		versions = append(versions, e.Version)
		if e.Version == version {
			return e, nil
		}
		if newest == nil || versionLess(newest.Version, e.Version) {
			newest = &all[i]
		}
	}
	if len(versions) == 0 {
		return db.DatabaseEngine{}, fieldError("body.engine", "unknown engine; one of: "+strings.Join(engines, ", "), engine)
	}
	if version == "" {
		return *newest, nil
	}
	return db.DatabaseEngine{}, fieldError("body.version", "unknown version of "+engine+"; one of: "+strings.Join(versions, ", "), version)
}

// versionLess compares dotted versions number by number ("9.6" < "10.11").
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		var x, y int
		_, errA := fmt.Sscanf(as[i], "%d", &x)
		_, errB := fmt.Sscanf(bs[i], "%d", &y)
		if errA != nil || errB != nil {
			if as[i] != bs[i] {
				return as[i] < bs[i]
			}
			continue
		}
		if x != y {
			return x < y
		}
	}
	return len(as) < len(bs)
}

// newDatabasePassword is 192 random bits in hex: nothing in it needs escaping in a URL, a
// shell word or a connection string.
func newDatabasePassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func (s *Server) changeDatabaseLink(ctx context.Context, in *databaseLinkInput, unlink bool) (*databaseLinkOutput, error) {
	p := principal(ctx)
	d, err := s.store.GetDatabase(ctx, p.OrgID, in.DatabaseID)
	if errors.Is(err, db.ErrNotFound) {
		// Another organization's database is not found either: nothing says it exists.
		return nil, huma.Error404NotFound("database not found", &huma.ErrorDetail{Location: "path.dbId", Value: in.DatabaseID})
	}
	if err != nil {
		return nil, s.problem(ctx, "database", err)
	}
	engine, err := s.store.DatabaseEngineByID(ctx, d.EngineID)
	if err != nil {
		return nil, s.problem(ctx, "database", err)
	}
	verb := "Link"
	if unlink {
		verb = "Unlink"
	}
	var changed bool
	var enq db.Enqueued
	op, err := s.ops.Submit(ctx, operations.Request{OrgID: p.OrgID, AppID: in.ID, Kind: db.OpConfigure, UserID: p.UserID,
		Description: verb + " database " + d.Name},
		func(rollout db.NewOperation) (db.Enqueued, error) {
			var err error
			changed, enq, err = s.store.ChangeDatabaseLink(ctx, p.OrgID, in.ID, d.ID, unlink, rollout)
			return enq, err
		}, func(ctx context.Context) error { return s.store.UndoDatabaseLink(ctx, in.ID, d.ID, unlink) })
	if err != nil {
		return nil, s.databaseLinkProblem(ctx, err, unlink)
	}
	out := &databaseLinkOutput{Status: http.StatusOK}
	out.Body.Variables = slices.Sorted(maps.Keys(engine.ConnectionVars))
	if !unlink {
		if out.Body.Shadowed, err = s.shadowedLinkVars(ctx, in.ID, d.ID, engine.ConnectionVars); err != nil {
			return nil, s.problem(ctx, "application", err)
		}
	}
	switch {
	case !changed:
		out.Body.State = "unchanged"
	case op.ID != "":
		out.Status = http.StatusAccepted
		out.Body.State, out.Body.OperationID, out.Body.WorkflowID = "rolling-out", op.ID, op.WorkflowID
	default:
		out.Body.State = "saved"
	}
	s.log.InfoContext(ctx, "database link changed", "app_id", in.ID, "database_id", d.ID, "unlink", unlink, "state", out.Body.State)
	return out, nil
}

// shadowedLinkVars names the link's variables the app does not get: its own variables of the
// same name, and those an earlier link gives already.
func (s *Server) shadowedLinkVars(ctx context.Context, appID, databaseID string, vars map[string]string) ([]string, error) {
	own, err := s.store.ListEnv(ctx, appID)
	if err != nil {
		return nil, err
	}
	taken := map[string]bool{}
	for _, v := range own {
		taken[v.Key] = true
	}
	links, err := s.store.LinkedDatabases(ctx, appID)
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		if l.DatabaseID == databaseID {
			break
		}
		for k := range l.ConnectionVars {
			taken[k] = true
		}
	}
	var shadowed []string
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		if taken[k] {
			shadowed = append(shadowed, k)
		}
	}
	return shadowed, nil
}

// databaseProblem answers a database operation the store or the owner refused.
func (s *Server) databaseProblem(ctx context.Context, err error) error {
	var full *db.QueueFullError
	switch {
	case errors.Is(err, db.ErrDatabaseLinked):
		return huma.Error409Conflict(err.Error(), &huma.ErrorDetail{Location: "path.id", Message: "unlink it from every application first"})
	case errors.As(err, &full):
		return huma.NewError(http.StatusTooManyRequests, fmt.Sprintf("%d operations already wait on this database: wait for some to finish", full.Limit),
			&huma.ErrorDetail{Location: "path.id", Message: "the database's queue is full", Value: full.Limit})
	case errors.Is(err, operations.ErrUnavailable):
		return huma.Error503ServiceUnavailable("the workflow service is unavailable; nothing was changed, try again")
	}
	return s.problem(ctx, "database", err)
}

func (s *Server) databaseLinkProblem(ctx context.Context, err error, unlink bool) error {
	var across *db.DatabaseLinkConflictError
	switch {
	case errors.As(err, &across):
		return huma.Error409Conflict(across.Reason, &huma.ErrorDetail{Location: "path.dbId", Message: "the database runs on another node"})
	case unlink && errors.Is(err, db.ErrNotFound):
		return huma.Error404NotFound("the database is not linked to this application, or the application does not exist",
			&huma.ErrorDetail{Location: "path.dbId"})
	case errors.Is(err, operations.ErrUnavailable):
		return huma.Error503ServiceUnavailable("could not roll the change out: the workflow service is unavailable; nothing was changed, try again")
	}
	return s.problem(ctx, "application", err)
}
