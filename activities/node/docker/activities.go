package docker

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/docker/docker/api/types/filters"

	"github.com/docker/docker/client"
	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/activities/node/buildlog"
)

// Error types of the non-retryable application errors this package returns.
const (
	ErrTypeInvalidInput     = "InvalidInput"
	ErrTypeBuildFailed      = "BuildFailed"
	ErrTypeInstanceExited   = "InstanceExited"
	ErrTypeInstanceNotReady = "InstanceNotReady"
	ErrTypeNameTaken        = "ContainerNameTaken"
)

// Activities drives the node's Docker Engine. Register a pointer with the node's worker.
type Activities struct {
	Client *client.Client
	Logs   buildlog.Sink
	NodeID string
	// Secrets opens the apps' sealed environment values through the node's own key: a node
	// holds no platform key.
	Secrets NodeSecrets
	// Backups carries database backups to and from the platform's backup store.
	Backups BackupTransfer
	// BackupDir holds a restore's downloaded backup until it is restored (os.TempDir() when
	// empty); the agent's is private to root.
	BackupDir string

	// Pool is the private range the organizations' networks get their subnets from; the zero
	// value means DefaultSubnetPool.
	Pool SubnetPool

	// RegistryAuth is the node's credential for the platform registry's gate, an
	// X-Registry-Auth value (RegistryCredential); empty: anonymous.
	RegistryAuth string

	// BuildSlots is how many builds the node runs at once; zero means two per core.
	BuildSlots int
	// BuildPidsLimit and BuildTimeout bound each build; zero means DefaultBuildPidsLimit and
	// DefaultBuildTimeout.
	BuildPidsLimit int
	BuildTimeout   time.Duration
	// BuildDiskMB bounds what one build writes (its context and layers) when its input names
	// no limit; zero means DefaultBuildDiskMB.
	BuildDiskMB int

	networks orgNetworks
	builds   buildSlots
	cgroups  cgroupSupport
}

// NewClient dials the Engine named by the environment (DOCKER_HOST, default the local socket),
// negotiating the API version so an older Engine (20.10, API 1.41) works.
func NewClient() (*client.Client, error) {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return c, nil
}

// NewActivities returns the node's Docker activities with a client from NewClient.
func NewActivities(nodeID string, logs buildlog.Sink) (*Activities, error) {
	c, err := NewClient()
	if err != nil {
		return nil, err
	}
	return &Activities{Client: c, Logs: logs, NodeID: nodeID}, nil
}

var (
	idPattern        = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)
	containerNamePat = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	imageIDPattern   = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	envKeyPattern    = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
)

func invalidInput(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), ErrTypeInvalidInput, nil)
}

func checkID(what, value string) error {
	if !idPattern.MatchString(value) {
		return invalidInput("invalid %s %q: letters, digits, '-' or '_' only, at most 128", what, value)
	}
	return nil
}

// ownFilter selects what SkyPanel made on this node (labels managed and node), plus more.
// Every listing that may lead to a removal goes through it: two agents on one engine (two nodes
// in tests, or a node being replaced) must never see or remove each other's containers.
func (a *Activities) ownFilter(more ...filters.KeyValuePair) filters.Args {
	args := filters.NewArgs(filters.Arg("label", LabelManaged+"=true"))
	if a.NodeID != "" {
		args.Add("label", LabelNode+"="+a.NodeID)
	}
	for _, kv := range more {
		args.Add(kv.Key, kv.Value)
	}
	return args
}

func (a *Activities) ready() error {
	if a.Client == nil {
		return errors.New("docker activities: no Engine client")
	}
	return nil
}
