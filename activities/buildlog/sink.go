// Package buildlog carries a deployment's build output from the node that produces it to the
// control plane that stores it, chunk by chunk, so the log is readable while it grows.
package buildlog

import "context"

// Chunk is one piece of a deployment's log. (DeploymentID, Source, Attempt, Seq) is unique, so a
// chunk sent twice (an HTTP retry) is stored once; a retried activity has a new Attempt.
type Chunk struct {
	DeploymentID string `json:"deployment_id"`
	Source       string `json:"source"` // "clone", "build", "start", ...
	Attempt      int32  `json:"attempt"`
	Seq          int    `json:"seq"`
	Text         string `json:"text"`
}

// Sink stores chunks. The agent's implementation posts them to the API with its node token.
type Sink interface {
	Append(ctx context.Context, chunk Chunk) error
}
