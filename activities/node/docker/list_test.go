package docker

import (
	"testing"
	"time"
)

func TestCrashing(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		inst Instance
		want bool
	}{
		{"never restarted", Instance{State: "exited", Restarts: 0}, false},
		{"restarted twice and down", Instance{State: "restarting", Restarts: 2}, false},
		{"restarted three times and down", Instance{State: "restarting", Restarts: 3}, true},
		{"restarted often, running again for a second", Instance{State: "running", Restarts: 5, StartedAt: now.Add(-time.Second)}, true},
		{"restarted often long ago, running for an hour", Instance{State: "running", Restarts: 5, StartedAt: now.Add(-time.Hour)}, false},
	}
	for _, c := range cases {
		if got := crashing(c.inst, now); got != c.want {
			t.Errorf("%s: crashing = %v, want %v", c.name, got, c.want)
		}
	}
}
