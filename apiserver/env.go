package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
	"github.com/skypanel/skypanel/temporal/operations"
)

// Limits of an app's environment.
const (
	maxEnvKeyBytes   = 256
	maxEnvValueBytes = 32 << 10
	envKeyPattern    = `^[A-Z_][A-Z0-9_]*$`
)

var envKeyRegexp = regexp.MustCompile(envKeyPattern)

// reservedEnv are names the platform sets itself; reservedEnvPrefixes cover its own variables.
var (
	reservedEnv         = []string{"PORT"}
	reservedEnvPrefixes = []string{"SKYPANEL_"}
)

type envVarView struct {
	Key string `json:"key"`
	// Value is omitted for administrators who did not ask to reveal values.
	Value     *string   `json:"value,omitempty"`
	BuildTime bool      `json:"build_time" doc:"also given to the build, as a build argument"`
	UpdatedAt time.Time `json:"updated_at"`
	// Unreadable says why a stored value cannot be opened with this server's keyring.
	Unreadable string `json:"unreadable,omitempty"`
}

type envSetBody struct {
	Key       string `json:"key" minLength:"1" maxLength:"256" pattern:"^[A-Z_][A-Z0-9_]*$" doc:"Upper case letters, digits and _, not starting with a digit"`
	Value     string `json:"value" doc:"At most 32 KiB"`
	BuildTime bool   `json:"build_time,omitempty" doc:"Also give the variable to the build (as a build argument; visible in the image's build history on the node)"`
}

type envPostInput struct {
	ID   string `path:"id" maxLength:"64"`
	Body envSetBody
}

type envPutInput struct {
	ID   string `path:"id" maxLength:"64"`
	Key  string `path:"key" maxLength:"256"`
	Body struct {
		Value     string `json:"value" doc:"At most 32 KiB"`
		BuildTime bool   `json:"build_time,omitempty" doc:"Also give the variable to the build"`
	}
}

type envDeleteInput struct {
	ID  string `path:"id" maxLength:"64"`
	Key string `path:"key" maxLength:"256"`
}

type envBulkInput struct {
	ID   string `path:"id" maxLength:"64"`
	Body struct {
		Set   []envSetBody `json:"set,omitempty" maxItems:"100" doc:"Variables to create or replace"`
		Unset []string     `json:"unset,omitempty" maxItems:"100" doc:"Names of variables to remove"`
	}
}

type envChangeOutput struct {
	Status int
	Body   struct {
		Changed []string `json:"changed" doc:"The names of the variables set or removed"`
		Created []string `json:"created" doc:"Those that did not exist before"`
		// Rollout: the app runs, so the change is being rolled out as a new release by this
		// workflow (no rebuild). Otherwise it applies at the next deploy or start.
		OperationID string `json:"operation_id,omitempty" doc:"The rollout's operation, in the app's queue (GET .../operations)"`
		WorkflowID  string `json:"workflow_id,omitempty"`
		Status      string `json:"status" enum:"rolling_out,saved" doc:"rolling_out: a new release with the new variables is queued (it runs after the operations ahead of it); saved: applies at the next deploy or start"`
		Position    int    `json:"position" doc:"The rollout's place in the app's queue: 0 when it runs already"`
	}
}

type adminEnvInput struct {
	ID     string `path:"id" maxLength:"64"`
	Reveal bool   `query:"reveal" doc:"Include the values; every reveal is logged with the administrator's id"`
}

func (s *Server) registerEnv() {
	huma.Register(s.api, s.op("list-env", http.MethodGet, "/api/paas/applications/{id}/env",
		"List an application's environment variables with their values", "environment", 0, false),
		func(ctx context.Context, in *idPath) (*items[envVarView], error) {
			app, err := s.store.GetApplication(ctx, principal(ctx).OrgID, in.ID)
			if err != nil {
				return nil, s.problem(ctx, "application", err)
			}
			return s.envViews(ctx, app.ID, true)
		})
	huma.Register(s.api, s.op("set-env", http.MethodPost, "/api/paas/applications/{id}/env",
		"Add or replace an environment variable; a running app gets a new release with it, without a rebuild", "environment", http.StatusCreated, false),
		func(ctx context.Context, in *envPostInput) (*envChangeOutput, error) {
			return s.changeEnv(ctx, in.ID, []envSetBody{in.Body}, nil, "body")
		})
	huma.Register(s.api, s.op("update-env", http.MethodPut, "/api/paas/applications/{id}/env/{key}",
		"Set an environment variable's value", "environment", 0, false),
		func(ctx context.Context, in *envPutInput) (*envChangeOutput, error) {
			return s.changeEnv(ctx, in.ID, []envSetBody{{Key: in.Key, Value: in.Body.Value, BuildTime: in.Body.BuildTime}}, nil, "path")
		})
	huma.Register(s.api, s.op("delete-env", http.MethodDelete, "/api/paas/applications/{id}/env/{key}",
		"Remove an environment variable", "environment", 0, false),
		func(ctx context.Context, in *envDeleteInput) (*envChangeOutput, error) {
			return s.changeEnv(ctx, in.ID, nil, []string{in.Key}, "path")
		})
	huma.Register(s.api, s.op("change-env", http.MethodPatch, "/api/paas/applications/{id}/env",
		"Set and remove several variables in one change (one release)", "environment", 0, false),
		func(ctx context.Context, in *envBulkInput) (*envChangeOutput, error) {
			if len(in.Body.Set)+len(in.Body.Unset) == 0 {
				return nil, huma.Error422UnprocessableEntity("nothing to change", &huma.ErrorDetail{Location: "body.set", Message: "give set or unset"})
			}
			return s.changeEnv(ctx, in.ID, in.Body.Set, in.Body.Unset, "bulk")
		})
	huma.Register(s.api, s.op("admin-list-env", http.MethodGet, "/api/paas/admin/applications/{id}/env",
		"Any application's environment: names only, values when reveal=true (logged)", "admin", 0, true),
		func(ctx context.Context, in *adminEnvInput) (*items[envVarView], error) {
			if _, err := s.store.AppTargetByID(ctx, in.ID); err != nil {
				return nil, s.problem(ctx, "application", err)
			}
			views, err := s.envViews(ctx, in.ID, in.Reveal)
			if err == nil && in.Reveal {
				keys := make([]string, len(views.Body.Items))
				for i, v := range views.Body.Items {
					keys[i] = v.Key
				}
				s.log.WarnContext(ctx, "administrator revealed environment values", "admin_user_id", principal(ctx).UserID, "app_id", in.ID, "keys", keys)
			}
			return views, err
		})
}

// envViews lists the app's variables, opening the values when withValues is set.
func (s *Server) envViews(ctx context.Context, appID string, withValues bool) (*items[envVarView], error) {
	vars, err := s.store.ListEnv(ctx, appID)
	if err != nil {
		return nil, s.problem(ctx, "application", err)
	}
	views := make([]envVarView, len(vars))
	for i, v := range vars {
		views[i] = envVarView{Key: v.Key, BuildTime: v.BuildTime, UpdatedAt: v.UpdatedAt}
		if !withValues {
			continue
		}
		plain, err := s.cfg.Keyring.Decrypt(v.Sealed, secrets.AppEnvValue(appID, v.Key))
		if err != nil {
			views[i].Unreadable = secrets.Explain(err)
			s.log.ErrorContext(ctx, "stored environment value cannot be opened", "app_id", appID, "key", v.Key, "error", err)
			continue
		}
		value := string(plain)
		views[i].Value = &value
	}
	return listOf(views), nil
}

// changeEnv validates, seals and stores the changes in one transaction, then, when the app
// runs, starts ConfigureApp to roll them out. where says how the request named the variables
// ("body", "path" or "bulk"), for the location of a problem.
func (s *Server) changeEnv(ctx context.Context, appID string, set []envSetBody, unset []string, where string) (*envChangeOutput, error) {
	changes, err := s.envChanges(appID, set, unset, where)
	if err != nil {
		return nil, err
	}
	p := principal(ctx)
	var res db.EnvChangeResult
	op, err := s.ops.Submit(ctx, operations.Request{
		OrgID: p.OrgID, AppID: appID, Kind: db.OpConfigure, UserID: p.UserID, Description: describeEnvChange(changes),
	}, func(rollout db.NewOperation) (db.Enqueued, error) {
		var err error
		res, err = s.store.ChangeEnv(ctx, p.OrgID, appID, changes, rollout)
		return res.Enqueued, err
	}, func(ctx context.Context) error {
		return s.store.UndoEnvChange(ctx, appID, res)
	})
	var missing *db.EnvKeyNotFoundError
	if errors.As(err, &missing) {
		return nil, huma.Error404NotFound("no environment variable "+missing.Key, &huma.ErrorDetail{Location: keyLocation(where, "unset"), Value: missing.Key})
	}
	if errors.Is(err, operations.ErrUnavailable) {
		return nil, huma.Error503ServiceUnavailable("could not roll the change out: the workflow service is unavailable; nothing was changed, try again")
	}
	if err != nil {
		return nil, s.problem(ctx, "application", err)
	}
	names := make([]string, len(changes))
	for i, c := range changes {
		names[i] = c.Key
	}
	out := &envChangeOutput{Status: http.StatusOK}
	if where == "body" && len(res.Created) == 1 {
		out.Status = http.StatusCreated
	}
	out.Body.Changed, out.Body.Created = names, append([]string{}, res.Created...)
	out.Body.Status = "saved"
	s.log.InfoContext(ctx, "environment changed", "app_id", appID, "keys", names, "rollout", res.Rollout)
	if !res.Rollout {
		return out, nil
	}
	out.Status = http.StatusAccepted
	out.Body.OperationID, out.Body.WorkflowID, out.Body.Status, out.Body.Position = op.ID, op.WorkflowID, "rolling_out", op.Position
	return out, nil
}

// envChanges checks every variable of the request before anything is stored and seals the
// values, bound to the app and the key.
func (s *Server) envChanges(appID string, set []envSetBody, unset []string, where string) ([]db.EnvChange, error) {
	var changes []db.EnvChange
	seen := map[string]bool{}
	var details []error
	add := func(location, key string) bool {
		if detail := checkEnvKey(location, key); detail != nil {
			details = append(details, detail)
			return false
		}
		if seen[key] {
			details = append(details, &huma.ErrorDetail{Location: location, Message: "the same variable is changed twice", Value: key})
			return false
		}
		seen[key] = true
		return true
	}
	for i, v := range set {
		location := keyLocation(where, "set")
		valueLocation := "body.value"
		if where == "bulk" {
			location, valueLocation = fmt.Sprintf("body.set[%d].key", i), fmt.Sprintf("body.set[%d].value", i)
		}
		if !add(location, v.Key) {
			continue
		}
		if len(v.Value) > maxEnvValueBytes {
			details = append(details, &huma.ErrorDetail{Location: valueLocation, Message: fmt.Sprintf("the value of %s is %d bytes; at most %d", v.Key, len(v.Value), maxEnvValueBytes)})
			continue
		}
		if strings.ContainsRune(v.Value, 0) {
			details = append(details, &huma.ErrorDetail{Location: valueLocation, Message: "the value of " + v.Key + " contains a NUL character"})
			continue
		}
		sealed, err := s.cfg.Keyring.Encrypt([]byte(v.Value), secrets.AppEnvValue(appID, v.Key))
		if err != nil {
			return nil, huma.Error500InternalServerError("could not seal the value")
		}
		changes = append(changes, db.EnvChange{Key: v.Key, Sealed: sealed, BuildTime: v.BuildTime})
	}
	for i, key := range unset {
		location := keyLocation(where, "unset")
		if where == "bulk" {
			location = fmt.Sprintf("body.unset[%d]", i)
		}
		if add(location, key) {
			changes = append(changes, db.EnvChange{Key: key, Unset: true})
		}
	}
	if len(details) > 0 {
		return nil, huma.Error422UnprocessableEntity("invalid environment variables", details...)
	}
	return changes, nil
}

func keyLocation(where, kind string) string {
	switch where {
	case "path":
		return "path.key"
	case "bulk":
		return "body." + kind
	}
	return "body.key"
}

// checkEnvKey refuses malformed, oversized and reserved names (the path's key is not checked by
// the schema's pattern, so this is the one check for every way a key arrives).
func checkEnvKey(location, key string) *huma.ErrorDetail {
	switch {
	case len(key) == 0 || len(key) > maxEnvKeyBytes:
		return &huma.ErrorDetail{Location: location, Message: fmt.Sprintf("a variable name has 1 to %d bytes", maxEnvKeyBytes)}
	case !envKeyRegexp.MatchString(key):
		return &huma.ErrorDetail{Location: location, Message: "use upper case letters, digits and _, not starting with a digit", Value: key}
	case slices.Contains(reservedEnv, key):
		return &huma.ErrorDetail{Location: location, Message: key + " is set by the platform and cannot be changed", Value: key}
	}
	for _, prefix := range reservedEnvPrefixes {
		if strings.HasPrefix(key, prefix) {
			return &huma.ErrorDetail{Location: location, Message: "names starting with " + prefix + " are reserved for the platform", Value: key}
		}
	}
	return nil
}

// describeEnvChange names what changed, by key only: it becomes the release's description.
func describeEnvChange(changes []db.EnvChange) string {
	var set, unset []string
	for _, c := range changes {
		if c.Unset {
			unset = append(unset, c.Key)
		} else {
			set = append(set, c.Key)
		}
	}
	sort.Strings(set)
	sort.Strings(unset)
	var parts []string
	if len(set) > 0 {
		parts = append(parts, "Set "+strings.Join(set, ", "))
	}
	if len(unset) > 0 {
		parts = append(parts, "Unset "+strings.Join(unset, ", "))
	}
	description := strings.Join(parts, "; ")
	if len(description) > 200 {
		description = fmt.Sprintf("Change %d variables", len(changes))
	}
	return description
}
