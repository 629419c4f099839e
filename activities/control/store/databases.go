package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/activities/contract"
	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
)

// Database statuses workflows record (db's, for workflows, which import no db).
const (
	DatabaseAvailable = db.DatabaseAvailable
	DatabaseFailed    = db.DatabaseFailed
	DatabaseDeleted   = db.DatabaseDeleted
	DatabaseSuspended = db.DatabaseSuspended
)

// Database operation kinds billing queues.
const (
	DatabaseOpSuspend = db.DatabaseOpSuspend
	DatabaseOpResume  = db.DatabaseOpResume
)

// ErrTypeDatabaseNotFound: the database no longer exists.
const ErrTypeDatabaseNotFound = "DatabaseNotFound"

// ErrTypeNotDatabaseTurn: the workflow does not carry the database's running operation.
const ErrTypeNotDatabaseTurn = "NotDatabaseTurn"

// DatabaseTarget is a managed database as a workflow acts on it. The password stays sealed
// (the node opens it through its own key).
type DatabaseTarget struct {
	DatabaseID     string
	OrgID          string
	Name           string
	NodeID         string
	Engine         contract.DatabaseEngine
	User           string
	DBName         string
	PasswordSealed string
	CPUMillis      int
	MemoryMB       int
	StorageMB      int
	Status         string
	// NodeOffline says why the database's node cannot take work now; empty while it reports.
	NodeOffline string `json:",omitempty"`
}

// LoadDatabaseTargetInput names a database. Place: choose its node when it has none yet.
type LoadDatabaseTargetInput struct {
	DatabaseID string
	Place      bool `json:",omitempty"`
}

// LoadDatabaseTarget reads what a workflow needs to act on the database's node, for the
// workflow that holds the database's turn.
func (a *Activities) LoadDatabaseTarget(ctx context.Context, in LoadDatabaseTargetInput) (DatabaseTarget, error) {
	workflowID := activity.GetInfo(ctx).WorkflowExecution.ID
	held, err := a.Store.HoldsDatabaseTurn(ctx, in.DatabaseID, workflowID)
	if err != nil {
		return DatabaseTarget{}, err
	}
	if !held {
		return DatabaseTarget{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"workflow %s does not hold the turn of database %s: operations on a database start through the API, in the database's queue; this run changes nothing",
			workflowID, in.DatabaseID), ErrTypeNotDatabaseTurn, nil)
	}
	if in.Place {
		if _, err := a.Store.PlaceDatabase(ctx, in.DatabaseID); err != nil {
			return DatabaseTarget{}, notRetryable(err)
		}
	}
	d, err := a.Store.DatabaseByID(ctx, in.DatabaseID)
	if errors.Is(err, db.ErrNotFound) {
		return DatabaseTarget{}, temporal.NewNonRetryableApplicationError("the database no longer exists", ErrTypeDatabaseNotFound, nil)
	}
	if err != nil {
		return DatabaseTarget{}, err
	}
	engine, err := a.Store.DatabaseEngineByID(ctx, d.EngineID)
	if err != nil {
		return DatabaseTarget{}, err
	}
	plan, err := a.Store.DatabasePlanByID(ctx, d.PlanID)
	if err != nil {
		return DatabaseTarget{}, err
	}
	t := DatabaseTarget{
		DatabaseID: d.ID, OrgID: d.OrgID, Name: d.Name, User: d.User, DBName: d.DBName, PasswordSealed: d.PasswordSealed,
		Engine: contract.DatabaseEngine{
			Engine: engine.Engine, Version: engine.Version, Image: engine.Image, Port: engine.Port, DataDir: engine.DataDir,
			Env: engine.Env, Command: nonEmpty(engine.Command), HealthCommand: engine.HealthCommand, User: engine.RunUser,
			DumpCommand: nonEmpty(engine.DumpCommand), RestoreCommand: nonEmpty(engine.RestoreCommand), CountCommand: nonEmpty(engine.CountCommand),
		},
		CPUMillis: plan.CPUMillis, MemoryMB: plan.MemoryMB, StorageMB: plan.StorageMB, Status: d.Status,
	}
	if d.NodeID != nil {
		t.NodeID = *d.NodeID
		if t.NodeOffline, err = a.nodeOffline(ctx, t.NodeID); err != nil {
			return DatabaseTarget{}, err
		}
	}
	return t, nil
}

// SetDatabaseStatusInput records a database's status.
type SetDatabaseStatusInput struct {
	DatabaseID string
	Status     string
	Reason     string
}

// SetDatabaseStatus records a database's status (available, failed, deleted) and why.
func (a *Activities) SetDatabaseStatus(ctx context.Context, in SetDatabaseStatusInput) error {
	err := a.Store.SetDatabaseStatus(ctx, in.DatabaseID, in.Status, in.Reason)
	if errors.Is(err, db.ErrNotFound) {
		return temporal.NewNonRetryableApplicationError("the database no longer exists", ErrTypeDatabaseNotFound, nil)
	}
	return err
}

// ReleaseDatabaseOperationInput is how a database's operation ended.
type ReleaseDatabaseOperationInput struct {
	DatabaseID string
	WorkflowID string
	Status     string // a db.Operation* status
	Reason     string
}

// ReleaseDatabaseOperation records how the workflow's operation ended and gives the
// database's turn to its next operation, starting its workflow.
func (a *Activities) ReleaseDatabaseOperation(ctx context.Context, in ReleaseDatabaseOperationInput) error {
	if a.Operations == nil {
		return errors.New("store activities: Operations is not set")
	}
	status := in.Status
	if status == "" {
		status = db.OperationSucceeded
	}
	return a.Operations.FinishDatabase(ctx, in.DatabaseID, in.WorkflowID, status, in.Reason)
}

// linkedDatabaseVars are the connection variables of the databases linked to appID, each value
// sealed for the app at once (secrets.AppEnvValue): the node opens them as it opens the app's
// own variables, and no workflow history holds a plaintext one. A name the app's own variables
// (taken) or an earlier link already gives is left out: a user variable wins.
func (a *Activities) linkedDatabaseVars(ctx context.Context, appID string, taken map[string]bool) ([]contract.SealedVar, error) {
	links, err := a.Store.LinkedDatabases(ctx, appID)
	if err != nil || len(links) == 0 {
		return nil, err
	}
	if a.Keyring == nil {
		return nil, temporal.NewNonRetryableApplicationError(
			"the control worker has no secret keyring: a linked database's variables cannot be made", "SecretUnavailable", nil)
	}
	var out []contract.SealedVar
	for _, l := range links {
		if l.Status == db.DatabaseDeleted {
			continue
		}
		password, err := a.Keyring.Decrypt(l.PasswordSealed, secrets.DatabasePassword(l.DatabaseID))
		if err != nil {
			return nil, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("the password of database %s cannot be opened: %s", l.Name, secrets.Explain(err)), "SecretUnavailable", err)
		}
		vars := LinkVariables(l.ConnectionVars, LinkSettings{
			Host: contract.DatabaseHost(l.DatabaseID), Port: l.Port, User: l.User, Password: string(password), Database: l.DBName,
		})
		clear(password)
		for _, k := range slices.Sorted(maps.Keys(vars)) {
			if taken[k] {
				continue
			}
			taken[k] = true
			sealed, err := a.Keyring.Encrypt([]byte(vars[k]), secrets.AppEnvValue(appID, k))
			if err != nil {
				return nil, fmt.Errorf("seal %s of database %s for app %s: %w", k, l.Name, appID, err)
			}
			out = append(out, contract.SealedVar{Key: k, Sealed: sealed})
		}
	}
	return out, nil
}

// LinkSettings are what a database's connection variable templates are filled with.
type LinkSettings struct {
	Host     string
	Port     int
	User     string
	Password string
	Database string
}

// LinkVariables fills the engine's connection variable templates ({{host}}, {{port}},
// {{user}}, {{password}}, {{database}}). The platform makes user, database and password from
// [a-z0-9_] only, so they need no escaping inside a URL.
func LinkVariables(templates map[string]string, s LinkSettings) map[string]string {
	r := strings.NewReplacer("{{host}}", s.Host, "{{port}}", strconv.Itoa(s.Port), "{{user}}", s.User,
		"{{password}}", s.Password, "{{database}}", s.Database)
	out := make(map[string]string, len(templates))
	for k, v := range templates {
		out[k] = r.Replace(v)
	}
	return out
}
