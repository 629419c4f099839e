// Package contract holds what crosses the wire between the control plane and a node: the
// types both sides encode into Temporal payloads or HTTP bodies, and the rules both sides apply
// to the same input (a git source is checked by the API when it is saved and by the node before
// it clones). It imports nothing of the platform, so either side links it alone.
package contract

import "time"

// SealedVar is an environment variable whose value is a secrets envelope bound to the app and
// the key (secrets.AppEnvValue). BuildTime: the build sees it too, as a build argument.
type SealedVar struct {
	Key       string
	Sealed    string
	BuildTime bool `json:",omitempty"`
}

// StackImages are one stack's build and run images.
type StackImages struct {
	Build string
	Run   string
}

// Chunk is one piece of a deployment's log, posted by the node that produces it.
// (DeploymentID, Source, Attempt, Seq) is unique, so a chunk sent twice (an HTTP retry) is
// stored once; a retried activity has a new Attempt.
type Chunk struct {
	DeploymentID string `json:"deployment_id"`
	Source       string `json:"source" enum:"clone,build,start" doc:"the step that wrote it"`
	Attempt      int32  `json:"attempt"`
	Seq          int    `json:"seq"`
	Text         string `json:"text"`
}

// Instance is one container of an app as the node sees it.
type Instance struct {
	Name        string    `json:"name"`
	ContainerID string    `json:"container_id"`
	ReleaseID   string    `json:"release_id"`
	State       string    `json:"state"` // Docker's: running, restarting, exited, ...
	HostPort    int       `json:"host_port"`
	Restarts    int       `json:"restarts"`
	ExitCode    int       `json:"exit_code"`
	StartedAt   time.Time `json:"started_at"`
	// Healthy: running, and it answered HTTP on its port within a second when listed (the
	// same probe that gates an instance into nginx's upstream).
	Healthy bool `json:"healthy"`
	// Crashing: it keeps dying (restarted CrashingAfterRestarts times or more, and not running
	// now or running for less than CrashWindow). LastOutput is its last output then, for its
	// owner to read.
	Crashing   bool   `json:"crashing"`
	LastOutput string `json:"last_output,omitempty"`
}

// CrashingAfterRestarts is how many restarts make an instance "crashing", while it is down or
// within CrashWindow of its last start.
const (
	CrashingAfterRestarts = 3
	CrashWindow           = time.Minute
)

// ListInstancesResult lists an app's containers, sorted by name.
type ListInstancesResult struct {
	Instances []Instance
}
