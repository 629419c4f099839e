package docker

import (
	"context"
	"runtime"
	"sync"
)

// OrgBuildSlots is how many builds of one organization a node runs at once: one tenant's burst
// of deploys across its apps cannot take every core of a node shared with others.
const OrgBuildSlots = 2

// buildSlots admits builds: at most node at once on the node and OrgBuildSlots per
// organization. A build waits for its slot inside its activity (heartbeating), not in
// Temporal's queue, so the node's other work (starts, routes) is never held behind builds.
type buildSlots struct {
	mu      sync.Mutex
	running int
	byOrg   map[string]int
	changed chan struct{} // closed and replaced whenever a slot is released
}

// defaultNodeBuildSlots is two builds per core: a build alternates between CPU (compilers) and
// waiting (package downloads, layer writes), and each is held to one core by its own limits.
func defaultNodeBuildSlots() int { return max(2, 2*runtime.NumCPU()) }

// acquire waits for a slot of the organization's. waiting is called once, with the reason, if
// the build has to wait. It answers the release, or ctx's error.
func (s *buildSlots) acquire(ctx context.Context, orgID string, node int, waiting func(reason string)) (func(), error) {
	told := false
	for {
		s.mu.Lock()
		if s.byOrg == nil {
			s.byOrg = map[string]int{}
			s.changed = make(chan struct{})
		}
		reason := ""
		switch {
		case s.byOrg[orgID] >= OrgBuildSlots:
			reason = "organization"
		case s.running >= node:
			reason = "node"
		}
		if reason == "" {
			s.running++
			s.byOrg[orgID]++
			s.mu.Unlock()
			var once sync.Once
			return func() { once.Do(func() { s.release(orgID) }) }, nil
		}
		changed := s.changed
		s.mu.Unlock()
		if !told && waiting != nil {
			waiting(reason)
			told = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-changed:
		}
	}
}

func (s *buildSlots) release(orgID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running--
	if s.byOrg[orgID]--; s.byOrg[orgID] <= 0 {
		delete(s.byOrg, orgID)
	}
	close(s.changed)
	s.changed = make(chan struct{})
}
