package registry

import (
	"context"
	"net/http"
	"os"
	"testing"
	"time"
)

// The registry starts on loopback, answers the distribution API, keeps its storage in the
// given directory, and stops.
func TestStartAnswersAndStops(t *testing.T) {
	if _, err := os.Stat(DefaultBinary); err != nil {
		t.Fatalf("docker-registry is not installed (make deps installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	r, err := Start(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + r.Addr() + "/v2/_catalog")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v2/_catalog: %d", resp.StatusCode)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + r.Addr() + "/v2/"); err == nil {
		t.Error("the registry still answers after Stop")
	}
}
