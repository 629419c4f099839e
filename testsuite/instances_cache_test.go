package testsuite

import (
	"net/http"
	"testing"
	"time"
)

// Listing an app's instances in a loop asks its node once per few seconds, not once per call
// (every answer says how old it is); an operation that ends makes the next listing fresh.
func TestInstanceListingsAreSharedUntilTheAppChanges(t *testing.T) {
	owner, app, _, _ := liveHelloApp(t, "listing", "listing")
	defer owner.deleteAndWait(t, app.ID)
	type listing struct {
		Items []instance `json:"items"`
		AsOf  time.Time  `json:"as_of"`
		Age   float64    `json:"age_seconds"`
	}
	list := func() listing {
		t.Helper()
		var l listing
		if status, raw := platform.call(http.MethodGet, "/api/paas/applications/"+app.ID+"/instances", owner.token, nil, &l); status != http.StatusOK {
			t.Fatalf("instances: %d %s", status, raw)
		}
		return l
	}
	answers := map[time.Time]int{}
	for range 10 {
		l := list()
		if l.AsOf.IsZero() || l.Age < 0 || len(l.Items) != 1 {
			t.Fatalf("a listing: %+v", l)
		}
		answers[l.AsOf]++
	}
	if len(answers) > 2 {
		t.Errorf("10 listings in a row were %d answers of the node, want 1 (2 if the cache expired meanwhile): %v", len(answers), answers)
	}

	owner.scale(t, app.ID, 2)
	if l := list(); len(l.Items) != 2 {
		t.Errorf("right after a scale to 2 the listing shows %d instances (as of %s): the cache outlived the operation", len(l.Items), l.AsOf)
	}
}
