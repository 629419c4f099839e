// Package buildlog carries a deployment's build output from the node that produces it to the
// control plane that stores it, chunk by chunk, so the log is readable while it grows.
package buildlog

import (
	"context"

	"github.com/skypanel/skypanel/activities/contract"
)

// Chunk is one piece of a deployment's log (contract.Chunk).
type Chunk = contract.Chunk

// Sink stores chunks. The agent's implementation posts them to the API with its node token.
type Sink interface {
	Append(ctx context.Context, chunk Chunk) error
}
