package docker

import (
	"github.com/skypanel/skypanel/activities/node/buildlog"

	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// Readiness polling: each probe gets probeTimeout, probes are probeEvery apart, and the whole
// wait is bounded by WaitReadyInput.Timeout (DefaultReadyTimeout when zero).
const (
	DefaultReadyTimeout = 60 * time.Second
	probeTimeout        = 2 * time.Second
	// Short: every step of a deploy waits on this, and a probe of a loopback port costs little.
	probeEvery   = 50 * time.Millisecond
	logTailLines = "30"
)

// probeClient sends readiness probes: no keep-alive (each probe is a fresh connection), no
// redirects (any response counts, a redirect included).
var probeClient = &http.Client{
	Timeout:       probeTimeout,
	Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// WaitReady polls http://127.0.0.1:HostPort/ until the instance answers with any HTTP response.
// It fails fast (InstanceExited) when the container exits, and gives up (InstanceNotReady) after
// the timeout; either way the container's last log lines go to the deployment's log.
func (a *Activities) WaitReady(ctx context.Context, in WaitReadyInput) error {
	if err := a.ready(); err != nil {
		return err
	}
	if !containerNamePat.MatchString(in.InstanceName) {
		return invalidInput("invalid instance name %q", in.InstanceName)
	}
	if in.HostPort < 1 || in.HostPort > 65535 {
		return invalidInput("invalid host port %d", in.HostPort)
	}
	timeout := in.Timeout
	if timeout <= 0 {
		timeout = DefaultReadyTimeout
	}
	logger := slog.With("app_id", in.AppID, "container", in.InstanceName)
	deadline := time.Now().Add(timeout)
	url := fmt.Sprintf("http://127.0.0.1:%d/", in.HostPort)

	for {
		activity.RecordHeartbeat(ctx, "waiting for "+in.InstanceName)
		info, err := a.Client.ContainerInspect(ctx, in.InstanceName)
		if err != nil {
			return fmt.Errorf("inspect container %s: %w", in.InstanceName, err)
		}
		if exited(info) {
			return a.instanceExited(ctx, in.DeploymentID, info)
		}
		if probe(ctx, url) {
			// Proven healthy: from now on Docker restarts it if it crashes.
			if _, err := a.Client.ContainerUpdate(ctx, info.ID, container.UpdateConfig{
				RestartPolicy: container.RestartPolicy{Name: RestartPolicy},
			}); err != nil {
				return fmt.Errorf("set restart policy of %s: %w", in.InstanceName, err)
			}
			logger.InfoContext(ctx, "instance ready", "container_id", info.ID, "host_port", in.HostPort)
			return nil
		}
		if time.Now().After(deadline) {
			return a.instanceNotReady(ctx, in, info, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(probeEvery):
		}
	}
}

func probe(ctx context.Context, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// exited says whether the container stopped running (or is crash-looping under its restart
// policy) since it was started.
func exited(info container.InspectResponse) bool {
	s := info.State
	return s == nil || !s.Running || s.Restarting || s.Dead || info.RestartCount > 0
}

func (a *Activities) instanceExited(ctx context.Context, deploymentID string, info container.InspectResponse) error {
	name := strings.TrimPrefix(info.Name, "/")
	code := 0
	if info.State != nil {
		code = info.State.ExitCode
	}
	msg := fmt.Sprintf("instance %s exited with code %d right after starting", name, code)
	if deploymentID != "" {
		msg += "; see the app's output in the deployment log"
	}
	if info.State != nil && info.State.OOMKilled {
		msg = fmt.Sprintf("instance %s was killed for using more memory than its plan allows (exit code %d)", name, code)
	} else if info.State != nil && info.State.Error != "" {
		msg = fmt.Sprintf("instance %s could not start: %s", name, info.State.Error)
	}
	msg = a.reportTail(ctx, deploymentID, info.ID, msg)
	slog.InfoContext(ctx, "instance exited", "app_id", info.Config.Labels[LabelApp],
		"container", name, "container_id", info.ID, "exit_code", code)
	return temporal.NewNonRetryableApplicationError(msg, ErrTypeInstanceExited, nil)
}

func (a *Activities) instanceNotReady(ctx context.Context, in WaitReadyInput, info container.InspectResponse, timeout time.Duration) error {
	port := "$PORT"
	for _, kv := range info.Config.Env {
		if strings.HasPrefix(kv, "PORT=") {
			port = strings.TrimPrefix(kv, "PORT=")
		}
	}
	msg := fmt.Sprintf("instance %s did not answer HTTP within %s: the app must listen on 0.0.0.0 at the port given in $PORT (%s)",
		in.InstanceName, timeout, port)
	msg = a.reportTail(ctx, in.DeploymentID, info.ID, msg)
	return temporal.NewNonRetryableApplicationError(msg, ErrTypeInstanceNotReady, nil)
}

// reportTail puts the container's last output where its owner reads it: in the deployment's
// log for a deploy, or at the end of msg when no deployment log follows the start (a heal's,
// whose reason is the owner's only account of it). It returns msg.
func (a *Activities) reportTail(ctx context.Context, deploymentID, containerID, msg string) string {
	if deploymentID != "" {
		a.writeTail(ctx, deploymentID, containerID, msg)
		return msg
	}
	tail, err := a.containerTail(ctx, containerID)
	if err != nil {
		slog.WarnContext(ctx, "read container logs", "container_id", containerID, "err", err)
	}
	if last := lastOutputLines(tail, 3, 500); last != "" {
		return msg + "; its last output: " + last
	}
	return msg
}

// lastOutputLines is the last n non-empty lines of out joined with " | ", at most max bytes
// (the end kept).
func lastOutputLines(out string, n, max int) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	joined := strings.Join(lines, " | ")
	if len(joined) > max {
		joined = "…" + joined[len(joined)-max:]
	}
	return joined
}

// writeTail copies the container's last log lines and then msg to the deployment's log.
func (a *Activities) writeTail(ctx context.Context, deploymentID, containerID, msg string) {
	if a.Logs == nil || deploymentID == "" {
		return
	}
	logs := buildlog.NewWriter(a.Logs, deploymentID, "start", activity.GetInfo(ctx).Attempt)
	tail, err := a.containerTail(ctx, containerID)
	if err != nil {
		slog.WarnContext(ctx, "read container logs", "container_id", containerID, "err", err)
	}
	if tail != "" {
		logs.Write(ctx, "Last output of the app:\n"+tail)
		if !strings.HasSuffix(tail, "\n") {
			logs.Write(ctx, "\n")
		}
	}
	logs.Write(ctx, "ERROR: "+msg+"\n")
	logs.Flush(ctx)
}

func (a *Activities) containerTail(ctx context.Context, containerID string) (string, error) {
	rc, err := a.Client.ContainerLogs(ctx, containerID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: logTailLines})
	if err != nil {
		return "", err
	}
	defer rc.Close()
	var buf bytes.Buffer
	w := &limitWriter{w: &buf, n: 64 << 10}
	if _, err := stdcopy.StdCopy(w, w, rc); err != nil && !errors.Is(err, errLimit) {
		return buf.String(), err
	}
	return buf.String(), nil
}

var errLimit = errors.New("log tail limit reached")

type limitWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errLimit
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.w.Write(p)
	l.n -= n
	if err == nil && l.n <= 0 {
		return n, errLimit
	}
	return n, err
}
