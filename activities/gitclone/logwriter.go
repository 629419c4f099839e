package gitclone

import (
	"context"
	"log/slog"
	"strings"
	"sync"

	"github.com/skypanel/skypanel/activities/buildlog"
)

// logWriter numbers the clone's output lines and hands them to the sink. The log is best
// effort: a sink failure is logged and never fails the clone.
type logWriter struct {
	sink         buildlog.Sink
	deploymentID string
	attempt      int32

	mu  sync.Mutex
	seq int
}

func (w *logWriter) line(ctx context.Context, text string) {
	if w.sink == nil || w.deploymentID == "" {
		return
	}
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seq++
	chunk := buildlog.Chunk{DeploymentID: w.deploymentID, Source: "clone", Attempt: w.attempt, Seq: w.seq, Text: text}
	if err := w.sink.Append(ctx, chunk); err != nil {
		slog.WarnContext(ctx, "append clone log", "deployment_id", w.deploymentID, "err", err)
	}
}
