package testsuite

import (
	"context"
	"fmt"
	"net"
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
// calls the API. While dockerd is down the test holds the container's old port, so the new one
// always differs and the repoint is always needed.
func TestAppComesBackAfterDockerdRestarts(t *testing.T) {
	_, app, _, _ := liveHelloApp(t, "phoenix", "phoenix")
	host := app.Name + ".apps.localhost"
	before := appContainers(t, app.ID)
	if len(before) != 1 {
		t.Fatalf("%d containers before the restart, want 1", len(before))
	}
	oldPort := hostPort(before[0].Ports)
	logOffset := logSize(t)

	var holder net.Listener
	restartDockerd(t, func() {
		var err error
		if holder, err = holdPort(oldPort); err != nil {
			t.Fatalf("hold the container's old port %d while dockerd is down: %v", oldPort, err)
		}
	})
	defer holder.Close()

	eventually(t, 60*time.Second, "the app answers through nginx again", func() (bool, string) {
		status, body, _ := platform.throughNginx(host)
		return status == http.StatusOK && body == "phoenix", fmt.Sprintf("%d %q", status, body)
	})
	after := appContainers(t, app.ID)
	if len(after) != 1 || after[0].ID != before[0].ID {
		t.Fatalf("the same container should have come back: before %d, after %d", len(before), len(after))
	}
	if newPort := hostPort(after[0].Ports); newPort == oldPort || newPort == 0 {
		t.Fatalf("the container came back on port %d, the old one was %d: the repoint is not exercised", newPort, oldPort)
	}
	// nginx serves the new route before the agent's Repoint returns (it then waits for the old
	// workers to drain) and logs it: this app's repoint, after the restart.
	want := "app_id=" + app.ID
	eventually(t, 30*time.Second, "the agent logs that it repointed this app's route", func() (bool, string) {
		for _, line := range strings.Split(logSince(t, logOffset), "\n") {
			if strings.Contains(line, "repointed route") && strings.Contains(line, want) {
				return true, ""
			}
		}
		return false, "no repointed route logged for " + app.ID
	})
}

// holdPort listens on 127.0.0.1:port and closes every connection it accepts (a request sent
// there fails at once instead of hanging).
func holdPort(port uint16) (net.Listener, error) {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l, nil
}

func logSize(t *testing.T) int64 {
	t.Helper()
	info, err := os.Stat(platform.logPath)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

// logSince is the platform's log from offset on.
func logSince(t *testing.T, offset int64) string {
	t.Helper()
	raw, err := os.ReadFile(platform.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(raw)) < offset {
		return ""
	}
	return string(raw[offset:])
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
// whileStopped runs while no dockerd runs.
func restartDockerd(t *testing.T, whileStopped func()) {
	t.Helper()
	if exec.Command("systemctl", "is-active", "--quiet", "docker").Run() == nil {
		if out, err := exec.Command("systemctl", "stop", "docker").CombinedOutput(); err != nil {
			t.Fatalf("systemctl stop docker: %v\n%s", err, out)
		}
		whileStopped()
		if out, err := exec.Command("systemctl", "start", "docker").CombinedOutput(); err != nil {
			t.Fatalf("systemctl start docker: %v\n%s", err, out)
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
		whileStopped()
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
