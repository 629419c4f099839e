package apiserver

import (
	"testing"
	"time"
)

// A token gets its burst, then is told how long to wait; another token is not affected; the
// bucket refills with time.
func TestTokenLimitsBurstThenWait(t *testing.T) {
	l := newTokenLimits(10, 5)
	now := time.Unix(1_700_000_000, 0)
	for i := range 5 {
		if ok, _ := l.allow("a", now); !ok {
			t.Fatalf("request %d of the burst was refused", i+1)
		}
	}
	ok, wait := l.allow("a", now)
	if ok || wait <= 0 || wait > 200*time.Millisecond {
		t.Fatalf("past the burst: allowed=%v wait=%s, want refused with about 100ms to wait", ok, wait)
	}
	if ok, _ := l.allow("b", now); !ok {
		t.Error("another token was held back")
	}
	if ok, _ := l.allow("a", now.Add(150*time.Millisecond)); !ok {
		t.Error("the bucket did not refill")
	}
	// An idle token's limiter is dropped.
	l.allow("c", now.Add(2*limiterIdle))
	if _, kept := l.byToken["a"]; kept {
		t.Error("an idle token's limiter is kept forever")
	}
}
