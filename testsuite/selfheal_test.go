package testsuite

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
)

// TestAppComesBackAfterDockerdRestarts restarts the Docker daemon under a running app. Docker
// brings the app's container back by itself (restart policy), on a new loopback port; the node
// agent notices that its route points at a port nothing answers on and repoints nginx. Nobody
// calls the API.
func TestAppComesBackAfterDockerdRestarts(t *testing.T) {
	_, app, _, _ := liveHelloApp(t, "phoenix", "phoenix")
	host := app.Name + ".apps.localhost"
	before := appContainers(t, app.ID)

	restartDockerd(t)

	eventually(t, 60*time.Second, "the app answers through nginx again", func() (bool, string) {
		status, body, _ := platform.throughNginx(host)
		return status == http.StatusOK && body == "phoenix", fmt.Sprintf("%d %q", status, body)
	})
	after := appContainers(t, app.ID)
	if len(after) != 1 || len(before) != 1 || after[0].ID != before[0].ID {
		t.Fatalf("the same container should have come back: before %d, after %d", len(before), len(after))
	}
	if hostPort(before[0].Ports) != hostPort(after[0].Ports) {
		// nginx serves the new route before the agent's Repoint returns (it then waits for the
		// old workers to drain) and logs it.
		eventually(t, 30*time.Second, "the agent logs that it repointed the route", func() (bool, string) {
			log, _ := os.ReadFile(platform.logPath)
			return strings.Contains(string(log), "repointed route"), "the container came back on a new port, but no repointed route is logged"
		})
	} else {
		t.Log("Docker gave the container its old port back: repointing was not needed this time")
	}
}

func hostPort(ports []container.Port) uint16 {
	for _, p := range ports {
		if p.IP == "127.0.0.1" {
			return p.PublicPort
		}
	}
	return 0
}

// restartDockerd stops the Docker daemon and starts it again the way it was started: through
// systemd when systemd runs it, else with the same command line (as scripts/deps.sh starts it).
func restartDockerd(t *testing.T) {
	t.Helper()
	if exec.Command("systemctl", "is-active", "--quiet", "docker").Run() == nil {
		if out, err := exec.Command("systemctl", "restart", "docker").CombinedOutput(); err != nil {
			t.Fatalf("systemctl restart docker: %v\n%s", err, out)
		}
	} else {
		pid, argv := dockerdProcess(t)
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		eventually(t, 90*time.Second, "dockerd exits", func() (bool, string) {
			_, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid)))
			return os.IsNotExist(err), "still running"
		})
		logFile, err := os.OpenFile(filepath.Join(platform.workDir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer logFile.Close()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start dockerd again: %v", err)
		}
		go cmd.Wait() //nolint:errcheck // reaps it if it ever exits while the tests run
	}
	eventually(t, 90*time.Second, "dockerd answers again", func() (bool, string) {
		_, err := platform.docker.Ping(context.Background())
		return err == nil, fmt.Sprint(err)
	})
}

func dockerdProcess(t *testing.T) (int, []string) {
	t.Helper()
	pid := findProcess(t, "dockerd", "")
	argv := processArgs(pid)
	if exe, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe")); err == nil {
		argv[0] = exe
	}
	return pid, argv
}
