package buildlog

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Chunks are flushed when they reach chunkBytes or are chunkAge old (by a timer, so the last
// lines before a long silent step are readable while it runs), without one request per line.
const (
	chunkBytes = 8 << 10
	chunkAge   = time.Second
)

// MaxBytes is what one writer sends at most: the control plane keeps 10 MiB of a deployment's
// log (and says so in one line), so a step printing hundreds of megabytes costs the node's
// uplink and the API no more than that.
const MaxBytes = 10<<20 + chunkBytes

// Writer batches a deployment's log text into numbered chunks for the sink. The log is best
// effort: a sink failure is logged on the node and never fails the activity.
type Writer struct {
	sink         Sink
	deploymentID string
	source       string
	attempt      int32

	mu      sync.Mutex
	sent    int // bytes handed to the sink
	seq     int
	buf     strings.Builder
	started time.Time
	timer   *time.Timer // flushes a pending chunk once it is chunkAge old
}

// NewWriter writes deploymentID's log under source for one activity attempt. A nil sink or an
// empty deployment id makes a writer that drops everything (activities run without a log).
func NewWriter(sink Sink, deploymentID, source string, attempt int32) *Writer {
	return &Writer{sink: sink, deploymentID: deploymentID, source: source, attempt: attempt}
}

// Write adds text and flushes when the pending chunk is big or old enough.
func (w *Writer) Write(ctx context.Context, text string) {
	if w.sink == nil || w.deploymentID == "" || text == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sent+w.buf.Len()+len(text) > MaxBytes {
		return // past the log's cap: the control plane keeps none of it
	}
	if w.buf.Len() == 0 {
		w.started = time.Now()
	}
	w.buf.WriteString(text)
	if w.buf.Len() >= chunkBytes || time.Since(w.started) >= chunkAge {
		w.flushLocked(ctx)
		return
	}
	if w.timer == nil {
		flushCtx := context.WithoutCancel(ctx)
		w.timer = time.AfterFunc(chunkAge, func() { w.Flush(flushCtx) })
	}
}

// Flush sends whatever is pending.
func (w *Writer) Flush(ctx context.Context) {
	if w.sink == nil || w.deploymentID == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked(ctx)
}

func (w *Writer) flushLocked(ctx context.Context) {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	if w.buf.Len() == 0 {
		return
	}
	w.seq++
	w.sent += w.buf.Len()
	chunk := Chunk{DeploymentID: w.deploymentID, Source: w.source, Attempt: w.attempt, Seq: w.seq, Text: w.buf.String()}
	w.buf.Reset()
	if err := w.sink.Append(ctx, chunk); err != nil {
		slog.WarnContext(ctx, "append deployment log", "deployment_id", w.deploymentID, "source", w.source, "err", err)
	}
}
