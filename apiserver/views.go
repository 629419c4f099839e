package apiserver

import (
	"encoding/json"
	"time"

	"github.com/skypanel/skypanel/db"
)

// The API's response types: what a client reads, apart from the rows db stores (which carry no
// JSON of their own). Each has the name of its row, so the OpenAPI schemas keep theirs, and a
// conversion from it.

// User is a person who calls the API.
type User struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	OrgID     string    `json:"organization_id"`
	CreatedAt time.Time `json:"created_at"`
}

// Application is a customer's app.
type Application struct {
	ID                  string    `json:"id"`
	OrgID               string    `json:"organization_id"`
	Name                string    `json:"name"`
	Runtime             string    `json:"runtime"`
	Plan                string    `json:"plan"`
	Region              string    `json:"region"`
	NodeID              *string   `json:"node_id,omitempty"`
	GitURL              string    `json:"git_url"`
	GitBranch           string    `json:"git_branch"`
	Status              string    `json:"status" doc:"created, deploying, running, degraded (running, but no longer healed: see status_reason), stopped, suspended, failed, deleting"`
	StatusReason        string    `json:"status_reason,omitempty" doc:"why the app is degraded"`
	Instances           int       `json:"instances"`
	DrainSeconds        int       `json:"drain_seconds"`
	URL                 string    `json:"url"`
	CurrentDeploymentID *string   `json:"current_deployment_id,omitempty"`
	ActiveWorkflowID    *string   `json:"active_workflow_id,omitempty"`
	CreatedAt           time.Time `json:"created_at"`
	UpdatedAt           time.Time `json:"updated_at"`
}

// Wallet is an organization's prepaid balance, in minor units of Currency.
type Wallet struct {
	OrgID    string `json:"organization_id"`
	Balance  int64  `json:"balance" doc:"Minor units (cents)"`
	Currency string `json:"currency"`
}

// LedgerEntry is one credit or charge.
type LedgerEntry struct {
	ID              int64      `json:"id"`
	Kind            string     `json:"kind" enum:"credit,charge"`
	Amount          int64      `json:"amount" doc:"Minor units, always positive; a charge lowers the balance"`
	Currency        string     `json:"currency"`
	AppID           *string    `json:"app_id,omitempty"`
	AppName         *string    `json:"app_name,omitempty"`
	PeriodStart     *time.Time `json:"period_start,omitempty"`
	PeriodEnd       *time.Time `json:"period_end,omitempty"`
	InstanceSeconds *float64   `json:"instance_seconds,omitempty" doc:"Charges: instances × seconds run in the period"`
	PricePerHour    *int64     `json:"price_per_hour,omitempty" doc:"Charges: the plan's price per instance-hour, minor units"`
	Reference       *string    `json:"reference,omitempty"`
	Description     string     `json:"description"`
	CreatedAt       time.Time  `json:"created_at"`
}

// Plan is a resource tier with an hourly price per instance in minor units.
type Plan struct {
	ID                string    `json:"id"`
	Slug              string    `json:"slug"`
	Name              string    `json:"name"`
	CPUMillis         int       `json:"cpu_millis"`
	MemoryMB          int       `json:"memory_mb"`
	PricePerHourMinor int64     `json:"price_per_hour_minor"`
	Currency          string    `json:"currency"`
	Active            bool      `json:"active"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
}

// Runtime is a language stack apps are built with.
type Runtime struct {
	ID         string    `json:"id"`
	Slug       string    `json:"slug"`
	Name       string    `json:"name"`
	Kind       string    `json:"kind"`
	Version    string    `json:"version"`
	BuildImage string    `json:"build_image"`
	RunImage   string    `json:"run_image"`
	Active     bool      `json:"active"`
	CreatedAt  time.Time `json:"created_at"`
}

// Region is a place nodes live in.
type Region struct {
	ID   string `json:"id"`
	Slug string `json:"slug"`
	Name string `json:"name"`
}

// Deployment is one build-and-release of an app.
type Deployment struct {
	ID            string `json:"id"`
	AppID         string `json:"app_id"`
	Status        string `json:"status"`
	WorkflowID    string `json:"workflow_id"`
	GitURL        string `json:"git_url"`
	GitBranch     string `json:"git_branch"`
	CommitSHA     string `json:"commit_sha"`
	Image         string `json:"image"`
	FailureReason string `json:"failure_reason,omitempty"`
	// SupersededBy is the newer deployment that replaced this one while it waited.
	SupersededBy *string    `json:"superseded_by,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	StartedAt    *time.Time `json:"started_at,omitempty"`
	FinishedAt   *time.Time `json:"finished_at,omitempty"`
}

// Node is a worker machine running the agent.
type Node struct {
	ID              string     `json:"id"`
	Name            string     `json:"name"`
	Region          string     `json:"region"`
	Host            string     `json:"host"`
	Status          string     `json:"status"` // pending, online, offline
	RegisteredAt    *time.Time `json:"registered_at,omitempty"`
	LastHeartbeatAt *time.Time `json:"last_heartbeat_at,omitempty"`
	LastReportAt    *time.Time `json:"last_report_at,omitempty" doc:"when the node last reported what runs on it (every few seconds; apps short of instances are healed from it)"`
	CPUs            int        `json:"cpus"`
	MemoryMB        int64      `json:"memory_mb"`
	Containers      int        `json:"containers"`
	AgentVersion    string     `json:"agent_version"`
	CreatedAt       time.Time  `json:"created_at"`
}

// Release is one version an app served: a deployment's image, or an earlier release restored by
// a rollback, with the config it ran with.
type Release struct {
	ID              string          `json:"id"`
	AppID           string          `json:"app_id"`
	Version         int             `json:"version"`
	Kind            string          `json:"kind"`
	Description     string          `json:"description"`
	DeploymentID    *string         `json:"deployment_id,omitempty"`
	RestoredVersion *int            `json:"restored_version,omitempty"`
	CommitSHA       string          `json:"commit_sha"`
	Image           string          `json:"image"`
	ImageAvailable  bool            `json:"image_available" doc:"false once the image was removed by the retention policy: such a release cannot be rolled back to"`
	Config          json.RawMessage `json:"config"`
	CreatedBy       *string         `json:"created_by,omitempty" doc:"e-mail of the user who started it"`
	CreatedAt       time.Time       `json:"created_at"`
	Current         bool            `json:"current"`
}

// Conversions from the rows: a plain conversion where the row has no field of its own beyond
// the view's, a copy of the fields where it has (Application, Release).

func userView(r db.User) User { return User(r) }

func applicationView(r db.Application) Application {
	status := r.Status
	if status == db.AppRunning && r.DegradedReason != "" {
		status = "degraded"
	}
	return Application{
		ID:                  r.ID,
		OrgID:               r.OrgID,
		Name:                r.Name,
		Runtime:             r.Runtime,
		Plan:                r.Plan,
		Region:              r.Region,
		NodeID:              r.NodeID,
		GitURL:              r.GitURL,
		GitBranch:           r.GitBranch,
		Status:              status,
		StatusReason:        r.DegradedReason,
		Instances:           r.Instances,
		DrainSeconds:        r.DrainSeconds,
		URL:                 r.URL,
		CurrentDeploymentID: r.CurrentDeploymentID,
		ActiveWorkflowID:    r.ActiveWorkflowID,
		CreatedAt:           r.CreatedAt,
		UpdatedAt:           r.UpdatedAt,
	}
}

func walletView(r db.Wallet) Wallet { return Wallet(r) }

func ledgerEntryView(r db.LedgerEntry) LedgerEntry { return LedgerEntry(r) }

func planView(r db.Plan) Plan { return Plan(r) }

func runtimeView(r db.Runtime) Runtime { return Runtime(r) }

func regionView(r db.Region) Region { return Region(r) }

func deploymentView(r db.Deployment) Deployment { return Deployment(r) }

func nodeView(r db.Node) Node { return Node(r) }

func releaseView(r db.Release) Release {
	return Release{
		ID:              r.ID,
		AppID:           r.AppID,
		Version:         r.Version,
		Kind:            r.Kind,
		Description:     r.Description,
		DeploymentID:    r.DeploymentID,
		RestoredVersion: r.RestoredVersion,
		CommitSHA:       r.CommitSHA,
		Image:           r.Image,
		ImageAvailable:  r.ImageAvailable,
		Config:          r.Config,
		CreatedBy:       r.CreatedBy,
		CreatedAt:       r.CreatedAt,
		Current:         r.Current,
	}
}

// viewsOf converts rows with view.
func viewsOf[R, V any](rows []R, view func(R) V) []V {
	out := make([]V, len(rows))
	for i, r := range rows {
		out[i] = view(r)
	}
	return out
}
