package workernode

import (
	"testing"

	"github.com/skypanel/skypanel/activities/docker"
)

func TestOnlyRunningInstancesOfTheRoutedReleaseAreUpstreams(t *testing.T) {
	list := []docker.Instance{
		{Name: "a", ReleaseID: "r2", State: "running", HostPort: 40001},
		{Name: "b", ReleaseID: "r2", State: "restarting", HostPort: 40002},
		{Name: "c", ReleaseID: "r1", State: "running", HostPort: 40003},
		{Name: "d", ReleaseID: "r2", State: "running", HostPort: 40004},
	}
	got := runningUpstreams(list, "r2")
	if len(got) != 2 || got[0] != "127.0.0.1:40001" || got[1] != "127.0.0.1:40004" {
		t.Errorf("upstreams %v", got)
	}
	if !allIn([]string{"127.0.0.1:40004"}, got) || allIn([]string{"127.0.0.1:40003"}, got) {
		t.Error("allIn")
	}
}
