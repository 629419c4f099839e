package workernode

import (
	"context"
	"errors"
	"time"

	"github.com/skypanel/skypanel/activities/node/buildlog"
)

// HTTPLogSink is the node's buildlog.Sink: it posts each chunk to the control plane with the
// node token. The server deduplicates by (deployment, source, attempt, seq), so a chunk whose
// answer was lost is simply sent again.
type HTTPLogSink struct {
	api      *APIClient
	attempts int
	backoff  time.Duration
}

// NewHTTPLogSink posts through api, which must carry the node token.
func NewHTTPLogSink(api *APIClient) *HTTPLogSink {
	return &HTTPLogSink{api: api, attempts: 4, backoff: 250 * time.Millisecond}
}

var _ buildlog.Sink = (*HTTPLogSink)(nil)

// Append posts one chunk, retrying network failures and server errors with exponential backoff.
func (s *HTTPLogSink) Append(ctx context.Context, chunk buildlog.Chunk) error {
	if chunk.DeploymentID == "" {
		return errors.New("log chunk without a deployment id")
	}
	delay := s.backoff
	var err error
	for attempt := 1; ; attempt++ {
		err = s.api.post(ctx, appendLogPath(chunk.DeploymentID), chunk, nil)
		if err == nil || !retryable(err) || attempt >= s.attempts {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay *= 2
	}
}
