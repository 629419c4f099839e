package apiserver

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"golang.org/x/time/rate"
)

// Default per-token rate limit: sustained requests per second and the burst above it. Generous
// for a person or a CI script, tight for a loop that would take the API from every other
// tenant.
const (
	DefaultRateLimit = 20
	DefaultRateBurst = 200
	// limiterIdle is how long a token's limiter is kept after its last request.
	limiterIdle = 10 * time.Minute
)

// tokenLimits holds one token bucket per API token (by token id), in this API process.
type tokenLimits struct {
	mu       sync.Mutex
	perSec   rate.Limit
	burst    int
	byToken  map[string]*tokenLimiter
	lastTrim time.Time
}

type tokenLimiter struct {
	limiter *rate.Limiter
	seen    time.Time
}

func newTokenLimits(perSec float64, burst int) *tokenLimits {
	if perSec <= 0 {
		perSec = DefaultRateLimit
	}
	if burst <= 0 {
		burst = DefaultRateBurst
	}
	return &tokenLimits{perSec: rate.Limit(perSec), burst: burst, byToken: map[string]*tokenLimiter{}}
}

// allow takes one request from the token's bucket; when it is empty it answers how long until
// the next request would be let through.
func (l *tokenLimits) allow(tokenID string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastTrim) > limiterIdle {
		for id, tl := range l.byToken {
			if now.Sub(tl.seen) > limiterIdle {
				delete(l.byToken, id)
			}
		}
		l.lastTrim = now
	}
	tl, ok := l.byToken[tokenID]
	if !ok {
		tl = &tokenLimiter{limiter: rate.NewLimiter(l.perSec, l.burst)}
		l.byToken[tokenID] = tl
	}
	tl.seen = now
	if tl.limiter.AllowN(now, 1) {
		return true, 0
	}
	r := tl.limiter.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return false, wait
}

// rateLimited answers 429 with Retry-After (whole seconds, at least 1).
func (s *Server) rateLimited(ctx huma.Context, wait time.Duration) {
	seconds := max(1, int(math.Ceil(wait.Seconds())))
	ctx.SetHeader("Retry-After", strconv.Itoa(seconds))
	huma.WriteErr(s.api, ctx, http.StatusTooManyRequests, //nolint:errcheck
		"too many requests with this token: at most "+strconv.FormatFloat(float64(s.limits.perSec), 'f', -1, 64)+
			" per second (bursts of "+strconv.Itoa(s.limits.burst)+"); retry after "+strconv.Itoa(seconds)+" s")
}
