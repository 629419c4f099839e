package docker

import (
	"context"
	"testing"
	"time"
)

// A third build of one organization waits while two run, and starts when one ends; another
// organization's build is not held behind them while the node has room.
func TestBuildSlotsPerOrganizationAndNode(t *testing.T) {
	var s buildSlots
	ctx := context.Background()
	rel1, _ := s.acquire(ctx, "org-a", 4, nil)
	rel2, _ := s.acquire(ctx, "org-a", 4, nil)

	reasons := make(chan string, 4)
	got := make(chan func(), 1)
	go func() {
		rel, err := s.acquire(ctx, "org-a", 4, func(r string) { reasons <- r })
		if err == nil {
			got <- rel
		}
	}()
	if r := <-reasons; r != "organization" {
		t.Fatalf("the third build waits for %q, want organization", r)
	}
	relB, err := s.acquire(ctx, "org-b", 4, func(r string) { t.Errorf("org-b waited for %s", r) })
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
		t.Fatal("the third build of org-a started while two ran")
	case <-time.After(50 * time.Millisecond):
	}
	rel1()
	rel1() // a second release of the same slot changes nothing
	select {
	case rel3 := <-got:
		rel3()
	case <-time.After(5 * time.Second):
		t.Fatal("the third build did not start once a slot was free")
	}

	// The node is full (rel2 and relB hold 2 of 2): a new organization waits for the node.
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := s.acquire(cctx, "org-c", 2, func(r string) { reasons <- r }); err == nil {
		t.Fatal("a build started on a full node")
	}
	if r := <-reasons; r != "node" {
		t.Errorf("waited for %q, want node", r)
	}
	rel2()
	relB()
	if s.running != 0 || len(s.byOrg) != 0 {
		t.Errorf("after every release: running %d, by org %v", s.running, s.byOrg)
	}
}
