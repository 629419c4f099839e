// Package limitwatch stops node work that has gone past a limit the kernel or the tool cannot
// enforce by itself in a way we can name: a clone's size (git has no limit of its own), a
// build's refused forks (a fork bomb held at pids.max spins until the time limit).
package limitwatch

import (
	"context"
	"sync"
	"time"
)

// Start calls over every interval until ctx ends or the returned stop is called. The first time
// over reports true, it cancels with cause (read back with context.Cause) and ends. stop waits
// for the watcher to end and may be called more than once.
func Start(ctx context.Context, every time.Duration, over func() bool, cancel context.CancelCauseFunc, cause error) (stop func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if over() {
					cancel(cause)
					return
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(quit); <-done }) }
}
