package testsuite

import (
	"net/http"
	"testing"
)

// A steady app's instance is reported running and healthy, without last output: the contrast
// to the crashing instance of TestACrashLoopIsHealedThreeTimesThenDegraded.
func TestASteadyInstanceIsReportedHealthy(t *testing.T) {
	healthyOwner, healthyApp, _, _ := liveHelloApp(t, "steady", "steady")
	insts := healthyOwner.instances(t, healthyApp.ID)
	if len(insts) != 1 || insts[0].State != "running" || insts[0].Health != "healthy" || insts[0].LastOutput != "" {
		t.Errorf("a steady app's instances: %+v, want one running, healthy, without last output", insts)
	}
	if status, _, _ := platform.throughNginx(healthyApp.Name + ".apps.localhost"); status != http.StatusOK {
		t.Errorf("the steady app answers %d", status)
	}
}
