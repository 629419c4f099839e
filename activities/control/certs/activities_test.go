package certs

import (
	"testing"
	"time"
)

// Failed attempts back off from the base, doubling, up to the ceiling: with the default base no
// host name is tried more than 4 times an hour (Let's Encrypt allows 5 failed validations).
func TestBackoffDoublesUpToItsCeiling(t *testing.T) {
	a := &Activities{}
	want := []time.Duration{15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 12 * time.Hour, 12 * time.Hour}
	for failures, w := range want {
		if got := a.backoff(failures); got != w {
			t.Errorf("after %d failures before: %s, want %s", failures, got, w)
		}
	}
	if got := a.backoff(1000); got != DefaultRetryMax {
		t.Errorf("after many failures: %s", got)
	}
	quick := &Activities{ACME: Config{RetryBase: 2 * time.Second, RetryMax: time.Minute}}
	if got := quick.backoff(0); got != 2*time.Second {
		t.Errorf("a configured base: %s", got)
	}
}

func TestTwoThirds(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := TwoThirds(start, start.Add(90*24*time.Hour)); !got.Equal(start.Add(60 * 24 * time.Hour)) {
		t.Errorf("two thirds of 90 days: %s", got)
	}
}
