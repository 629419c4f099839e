package limitwatch

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

var errOver = errors.New("over the limit")

// The watcher cancels with its cause once the check reports over, and not before.
func TestStartCancelsOnceOver(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var calls atomic.Int32
	stop := Start(ctx, time.Millisecond, func() bool { return calls.Add(1) >= 3 }, cancel, errOver)
	defer stop()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("not cancelled once over")
	}
	if !errors.Is(context.Cause(ctx), errOver) || calls.Load() != 3 {
		t.Errorf("cause %v after %d checks, want %v after 3", context.Cause(ctx), calls.Load(), errOver)
	}
}

// Stopped, the watcher checks no more and cancels nothing.
func TestStopEndsTheWatcher(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var calls atomic.Int32
	stop := Start(ctx, time.Millisecond, func() bool { calls.Add(1); return false }, cancel, errOver)
	stop()
	stop()
	n := calls.Load()
	time.Sleep(20 * time.Millisecond) // would be more checks if the watcher still ran
	if calls.Load() != n || ctx.Err() != nil {
		t.Errorf("after stop: %d more checks, ctx %v", calls.Load()-n, ctx.Err())
	}
}
