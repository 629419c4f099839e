// Package docker runs an application's images and containers on a node through the Docker
// Engine API: build, tenant networks, hardened instances, readiness and removal.
package docker

import (
	"time"

	"github.com/skypanel/skypanel/activities/contract"
)

// Labels put on everything SkyPanel creates, so a node can find what belongs to an app.
const (
	LabelManaged = "skypanel.managed" // "true"
	LabelApp     = "skypanel.app"
	LabelOrg     = "skypanel.org"
	LabelRelease = "skypanel.release"
	LabelNode    = "skypanel.node"
)

// BuildImageInput builds ContextDir's Dockerfile into ImageTag, streaming the log to the sink
// under the deployment's id.
type BuildImageInput struct {
	AppID string
	// OrgID is the app's organization: the build's RUN steps run on its network, and its
	// Dockerfile may start only from its own organization's app images.
	OrgID        string
	DeploymentID string
	ContextDir   string
	ImageTag     string
	// ReleaseID labels the image (skypanel.release); when empty the DeploymentID is used.
	ReleaseID string
	// Runtime is the app's runtime kind: dockerfile, node, python, php, or auto (detect).
	// Without a Dockerfile in the repository, the buildpack of the kind generates one.
	Runtime string
	// BuildImage and RunImage are the runtime's base images (configuration: official images
	// in production, local equivalents here). Empty for the dockerfile kind.
	BuildImage string
	RunImage   string
	// StackImages are the catalogue's images per stack (node, python, php), for the auto
	// runtime: the detected stack's entry is used.
	StackImages map[string]StackImages
	// Env is the app's environment, sealed; the build-time variables among it are given to the
	// build as build arguments.
	Env []SealedVar `json:",omitempty"`
	// Push: push ImageTag (host:port/repository:tag) to the platform registry and answer its
	// digest reference, the exact image every node pulls.
	Push bool `json:",omitempty"`
	// MemoryMB and CPUMillis are the app plan's; the build gets at least BuildMinMemoryMB and
	// BuildMinCPUMillis.
	MemoryMB  int `json:",omitempty"`
	CPUMillis int `json:",omitempty"`
	// TimeoutSeconds is the plan's time limit of the build (0: the node's --build-timeout).
	TimeoutSeconds int `json:",omitempty"`
	// DiskMB is the plan's disk limit of the build: its context and the layers its steps write
	// (0: the node's --build-disk-mb).
	DiskMB int `json:",omitempty"`
}

// BuildImageResult names the built image: its local id and, once pushed, its digest reference
// (host:port/repository@sha256:…) and how long the push took.
type BuildImageResult struct {
	ImageID    string
	ImageRef   string `json:",omitempty"`
	PushMillis int64  `json:",omitempty"`
}

// EnsureNetworkInput asks for the organization's own bridge network.
type EnsureNetworkInput struct {
	OrgID string
}

// EnsureNetworkResult names it.
type EnsureNetworkResult struct {
	Network string
}

// StartInstanceInput starts one hardened container of a release. InstanceName is derived from
// app and operation ids by the workflow, so a retried start finds the container it made before.
type StartInstanceInput struct {
	AppID        string
	OrgID        string
	ReleaseID    string
	InstanceName string
	Image        string
	Network      string
	CPUMillis    int
	MemoryMB     int
	Port         int // the port the app must listen on, given to it as $PORT
	// Env is the app's environment, values sealed; the node opens them with the platform's
	// keyring just before it creates the container.
	Env []SealedVar
	// DeploymentID, when set, receives the container's last log lines (source "start") if it
	// exits right after starting.
	DeploymentID string
	// RuntimeKind is the app's runtime kind (node, python, php, dockerfile, auto), RootFS its
	// runtime's root filesystem setting and, for auto, StackRootFS each stack's. The instance
	// gets the setting of the runtime that built its image, which the image's skypanel.buildpack
	// label names (rootFSOf). Absent in runs recorded before: a writable root.
	RuntimeKind string            `json:",omitempty"`
	RootFS      RootFS            `json:",omitzero"`
	StackRootFS map[string]RootFS `json:",omitempty"`
}

// StartInstanceResult tells where the instance answers on the node's loopback.
type StartInstanceResult struct {
	ContainerID  string
	InstanceName string
	HostPort     int
}

// WaitReadyInput waits until the instance answers HTTP on 127.0.0.1:HostPort, or fails early
// when the container exits.
type WaitReadyInput struct {
	InstanceName string
	HostPort     int
	Timeout      time.Duration
	// AppID and DeploymentID are optional: AppID for the node's logs, DeploymentID to receive
	// the container's last log lines (source "start") when it exits or never answers.
	AppID        string
	DeploymentID string
}

// RemoveInstancesInput stops and removes the app's containers except those named in Keep.
// When Names is set, only those of the app's containers are removed (a failed new instance),
// and Keep is ignored.
type RemoveInstancesInput struct {
	AppID string
	// OrgID, when set, has the organization's network removed if no container of it is left,
	// even when this call removed none (a deploy that failed before its first instance made
	// the network during its build).
	OrgID string
	Keep  []string
	Names []string
	// GracePeriod is how long each container may take to stop before it is killed; zero
	// means DefaultStopGrace.
	GracePeriod time.Duration
}

// RemoveInstancesResult lists what was removed.
type RemoveInstancesResult struct {
	Removed []string
}

// RemoveAppImagesInput removes every image built for the app (on delete).
type RemoveAppImagesInput struct {
	AppID string
}

// RemoveImagesInput removes some of the app's images (old releases past the retention count).
// Only images labelled with the app are touched.
type RemoveImagesInput struct {
	AppID  string
	Images []string
}

// ListInstancesInput names the app whose containers are listed.
type ListInstancesInput struct {
	AppID string
}

// The wire types the control plane shares (activities/contract), under their node names.
type (
	SealedVar           = contract.SealedVar
	StackImages         = contract.StackImages
	RootFS              = contract.RootFS
	Instance            = contract.Instance
	ListInstancesResult = contract.ListInstancesResult
)

// CrashingAfterRestarts and CrashWindow: see contract.
const (
	CrashingAfterRestarts = contract.CrashingAfterRestarts
	CrashWindow           = contract.CrashWindow
)

// ImagePresentInput names an app's release image a heal wants to start again.
type ImagePresentInput struct {
	AppID string
	Image string
}
