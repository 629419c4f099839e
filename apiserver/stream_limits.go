package apiserver

import (
	"net/http"
	"strconv"
	"sync"

	"github.com/danielgtaylor/huma/v2"
)

// maxStreamsPerOrg bounds an organization's open log streams on one API process: each holds
// a connection and reads Postgres while its log grows, so one tenant's tabs or scripts cannot
// take the API's.
const maxStreamsPerOrg = 10

// streamRetryAfter is what a refused stream is told to wait, in seconds.
const streamRetryAfter = 5

// openStreams counts each organization's open streams.
type openStreams struct {
	mu    sync.Mutex
	byOrg map[string]int
}

// acquire takes one of the organization's stream slots, or answers 429 with Retry-After.
func (o *openStreams) acquire(orgID string) (release func(), err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.byOrg == nil {
		o.byOrg = map[string]int{}
	}
	if o.byOrg[orgID] >= maxStreamsPerOrg {
		return nil, huma.ErrorWithHeaders(
			huma.Error429TooManyRequests("this organization already has "+strconv.Itoa(maxStreamsPerOrg)+" open log streams: close one, or read the log without Accept: text/event-stream"),
			http.Header{"Retry-After": {strconv.Itoa(streamRetryAfter)}})
	}
	o.byOrg[orgID]++
	var once sync.Once
	return func() {
		once.Do(func() {
			o.mu.Lock()
			defer o.mu.Unlock()
			if o.byOrg[orgID]--; o.byOrg[orgID] <= 0 {
				delete(o.byOrg, orgID)
			}
		})
	}, nil
}
