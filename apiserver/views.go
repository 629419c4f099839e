package apiserver

import (
	"encoding/json"
	"time"

	"github.com/skypanel/skypanel/activities/contract"
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
	NodeName            string    `json:"node_name,omitempty" doc:"the node that serves the app"`
	NodeHost            string    `json:"node_host,omitempty" doc:"the serving node's host: where the app's host name must point (DNS, load balancer); it changes when the app moves to another node"`
	GitURL              string    `json:"git_url"`
	GitBranch           string    `json:"git_branch"`
	GitHubRepository    string    `json:"github_repository,omitempty" doc:"owner/repo when the app is connected to GitHub (git_url is then its clone URL)"`
	AutoDeploy          bool      `json:"auto_deploy" doc:"a push to git_branch of github_repository deploys the pushed commit"`
	Status              string    `json:"status" doc:"created, deploying, running, degraded (running, but no longer healed: see status_reason), stopped, suspended, failed, deleting"`
	StatusReason        string    `json:"status_reason,omitempty" doc:"why the app is degraded"`
	Instances           int       `json:"instances"`
	DrainSeconds        int       `json:"drain_seconds"`
	MaxConnections      int       `json:"max_connections" doc:"Concurrent client connections nginx lets through to the app"`
	ReadTimeoutSeconds  int       `json:"read_timeout_seconds" doc:"Seconds nginx waits for the app's answer"`
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
	DatabaseID      *string    `json:"database_id,omitempty" doc:"A database's charge: the database charged (kept after it is deleted)"`
	DatabaseName    *string    `json:"database_name,omitempty"`
	PeriodStart     *time.Time `json:"period_start,omitempty"`
	PeriodEnd       *time.Time `json:"period_end,omitempty"`
	InstanceSeconds *float64   `json:"instance_seconds,omitempty" doc:"Charges: instances × seconds run in the period (a database counts as one instance)"`
	PricePerHour    *int64     `json:"price_per_hour,omitempty" doc:"Charges: the plan's price per instance-hour, minor units"`
	Reference       *string    `json:"reference,omitempty"`
	Description     string     `json:"description"`
	CreatedAt       time.Time  `json:"created_at"`
}

// Plan is a resource tier with an hourly price per instance in minor units.
type Plan struct {
	ID                string `json:"id"`
	Slug              string `json:"slug"`
	Name              string `json:"name"`
	CPUMillis         int    `json:"cpu_millis"`
	MemoryMB          int    `json:"memory_mb"`
	PricePerHourMinor int64  `json:"price_per_hour_minor"`
	Currency          string `json:"currency"`
	Active            bool   `json:"active"`
	// BuildTimeoutSeconds is how long one build of an app on the plan may run.
	BuildTimeoutSeconds int `json:"build_timeout_seconds"`
	// BuildDiskMB is how much disk one build of an app on the plan may fill.
	BuildDiskMB int       `json:"build_disk_mb"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Runtime is a language stack apps are built with.
type Runtime struct {
	ID         string `json:"id"`
	Slug       string `json:"slug"`
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	Version    string `json:"version"`
	BuildImage string `json:"build_image"`
	RunImage   string `json:"run_image"`
	Active     bool   `json:"active"`
	// ReadOnlyRoot and WritablePaths: how the runtime's apps treat their root filesystem.
	ReadOnlyRoot  bool      `json:"read_only_root" doc:"Apps of this runtime run on a read-only root filesystem: only /tmp and writable_paths can be written"`
	WritablePaths []string  `json:"writable_paths" doc:"Paths that stay writable on a read-only root besides /tmp, each an empty, size-bounded tmpfs at every start"`
	CreatedAt     time.Time `json:"created_at"`
}

// Region is a place nodes live in.
type Region struct {
	ID   string `json:"id"`
	Slug string `json:"slug"`
	Name string `json:"name"`
}

// Deployment is one build-and-release of an app.
type Deployment struct {
	ID         string `json:"id"`
	AppID      string `json:"app_id"`
	Status     string `json:"status"`
	WorkflowID string `json:"workflow_id"`
	GitURL     string `json:"git_url"`
	GitBranch  string `json:"git_branch"`
	CommitSHA  string `json:"commit_sha"`
	// RequestedCommit and CommitMessage: the commit asked for ("" the branch's head) and the
	// built commit's message.
	RequestedCommit string `json:"requested_commit,omitempty" doc:"the exact commit asked for (a push, or POST …/deploy {\"commit\"}); absent: the branch's newest"`
	CommitMessage   string `json:"commit_message,omitempty"`
	Image           string `json:"image"`
	FailureReason   string `json:"failure_reason,omitempty"`
	// SupersededBy is the newer deployment that replaced this one while it waited.
	SupersededBy *string    `json:"superseded_by,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	StartedAt    *time.Time `json:"started_at,omitempty"`
	FinishedAt   *time.Time `json:"finished_at,omitempty"`
}

// Node is a worker machine running the agent.
type Node struct {
	ID                       string     `json:"id"`
	Name                     string     `json:"name"`
	Region                   string     `json:"region"`
	Host                     string     `json:"host"`
	Status                   string     `json:"status" enum:"pending,online,offline" doc:"pending until the agent registers; offline after 3 missed heartbeats of the node's own interval, online again at its next one"`
	AdminState               string     `json:"admin_state" enum:"active,cordoned,draining,drained,revoked" doc:"what administrators decided about the node"`
	RegisteredAt             *time.Time `json:"registered_at,omitempty"`
	LastHeartbeatAt          *time.Time `json:"last_heartbeat_at,omitempty"`
	HeartbeatIntervalSeconds int        `json:"heartbeat_interval_seconds" doc:"the agent's reported heartbeat interval (10 until it reports one)"`
	LastReportAt             *time.Time `json:"last_report_at,omitempty" doc:"when the node last reported what runs on it (every few seconds; apps short of instances are healed from it)"`
	CPUs                     int        `json:"cpus"`
	MemoryMB                 int64      `json:"memory_mb"`
	Containers               int        `json:"containers" doc:"running containers of this node at its last heartbeat"`
	NodeUsage
	AgentVersion string    `json:"agent_version"`
	CreatedAt    time.Time `json:"created_at"`
}

// NodeUsage is the machine's load at one heartbeat, or averaged over a bucket of them. A figure
// the agent could not read is absent.
type NodeUsage struct {
	CPUPercent    *float64 `json:"cpu_percent,omitempty" doc:"all CPUs busy, percent, since the previous heartbeat"`
	MemoryUsedMB  *int64   `json:"memory_used_mb,omitempty" doc:"MemTotal - MemAvailable, MiB"`
	MemoryTotalMB *int64   `json:"memory_total_mb,omitempty"`
	DiskUsedMB    *int64   `json:"disk_used_mb,omitempty" doc:"of the filesystem holding Docker's data root, MiB"`
	DiskTotalMB   *int64   `json:"disk_total_mb,omitempty"`
	Load1         *float64 `json:"load1,omitempty"`
	Load5         *float64 `json:"load5,omitempty"`
	Load15        *float64 `json:"load15,omitempty"`
}

// NodeMetrics is a node's heartbeat samples over a window, averaged per time bucket.
type NodeMetrics struct {
	From          time.Time         `json:"from"`
	To            time.Time         `json:"to"`
	BucketSeconds float64           `json:"bucket_seconds" doc:"width of each point's bucket"`
	Points        []NodeMetricPoint `json:"points" doc:"oldest first; buckets without a sample have no point"`
}

// NodeMetricPoint is the average of one bucket's samples.
type NodeMetricPoint struct {
	At      time.Time `json:"at" doc:"the bucket's start"`
	Samples int       `json:"samples"`
	NodeUsage
	Containers *float64 `json:"containers,omitempty"`
}

// NodeEvent is one thing that happened to a node.
type NodeEvent struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Kind   string    `json:"kind" doc:"registered, online, offline, cordoned, uncordoned, …"`
	Detail string    `json:"detail"`
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
	CommitMessage   string          `json:"commit_message,omitempty"`
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
		NodeName:            r.NodeName,
		NodeHost:            r.NodeHost,
		GitURL:              r.GitURL,
		GitBranch:           r.GitBranch,
		GitHubRepository:    r.GitHubRepository,
		AutoDeploy:          r.AutoDeploy,
		Status:              status,
		StatusReason:        r.DegradedReason,
		Instances:           r.Instances,
		DrainSeconds:        r.DrainSeconds,
		MaxConnections:      orDefault(r.MaxConnections, contract.DefaultMaxConnections),
		ReadTimeoutSeconds:  orDefault(r.ReadTimeoutSeconds, contract.DefaultReadTimeoutSeconds),
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

func runtimeView(r db.Runtime) Runtime {
	v := Runtime(r)
	if v.WritablePaths == nil {
		v.WritablePaths = []string{}
	}
	return v
}

func regionView(r db.Region) Region { return Region(r) }

func deploymentView(r db.Deployment) Deployment { return Deployment(r) }

func nodeView(r db.Node) Node {
	return Node{
		ID:                       r.ID,
		Name:                     r.Name,
		Region:                   r.Region,
		Host:                     r.Host,
		Status:                   r.Status,
		AdminState:               r.AdminState,
		RegisteredAt:             r.RegisteredAt,
		LastHeartbeatAt:          r.LastHeartbeatAt,
		HeartbeatIntervalSeconds: r.HeartbeatIntervalSeconds,
		LastReportAt:             r.LastReportAt,
		CPUs:                     r.CPUs,
		MemoryMB:                 r.MemoryMB,
		Containers:               r.Containers,
		NodeUsage:                NodeUsage(r.Usage),
		AgentVersion:             r.AgentVersion,
		CreatedAt:                r.CreatedAt,
	}
}

func nodeMetricsView(r db.NodeMetricSeries) NodeMetrics {
	points := make([]NodeMetricPoint, len(r.Points))
	for i, p := range r.Points {
		points[i] = NodeMetricPoint{At: p.At, Samples: p.Samples, NodeUsage: NodeUsage(p.Usage), Containers: p.Containers}
	}
	return NodeMetrics{From: r.From, To: r.To, BucketSeconds: r.BucketSeconds, Points: points}
}

func nodeEventView(r db.NodeEvent) NodeEvent { return NodeEvent(r) }

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
		CommitMessage:   r.CommitMessage,
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

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}
