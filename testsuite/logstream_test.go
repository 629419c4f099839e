package testsuite

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// logEvent is one Server-Sent Event of a log stream.
type logEvent struct{ id, event, data string }

// openLogStream asks for a deployment's log as Server-Sent Events.
func openLogStream(ctx context.Context, t *testing.T, token, appID, deploymentID, lastEventID string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, platform.apiURL+"/api/paas/applications/"+appID+"/deployments/"+deploymentID+"/logs", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("open the log stream: %v", err)
	}
	return resp
}

// readEvents reads events as EventSource does, calling each for every one, until the server
// closes the stream; it returns the events and whether the stream was closed cleanly.
func readEvents(t *testing.T, resp *http.Response, each func(logEvent)) ([]logEvent, error) {
	t.Helper()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var events []logEvent
	var cur logEvent
	var data []string
	for sc.Scan() {
		line := sc.Text()
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch {
		case line == "":
			if data != nil {
				cur.data = strings.Join(data, "\n")
				events = append(events, cur)
				if each != nil {
					each(cur)
				}
			}
			cur, data = logEvent{}, nil
		case field == "": // a comment: the heartbeat
		case field == "id":
			cur.id = value
		case field == "event":
			cur.event = value
		case field == "data":
			data = append(data, value)
		default:
			t.Errorf("unexpected field in the stream: %q", line)
		}
	}
	return events, sc.Err()
}

func dataOf(events []logEvent) []string {
	var lines []string
	for _, e := range events {
		if e.event == "" {
			lines = append(lines, e.data)
		}
	}
	return lines
}

// TestStreamLogsLiveUntilTheDeploymentEnds follows a slow build's log as Server-Sent Events: its
// lines arrive while the deployment runs, the stream ends by itself with `end` after it, and
// what it carried is the whole log.
func TestStreamLogsLiveUntilTheDeploymentEnds(t *testing.T) {
	ivy := newCustomer(t, uniqueName("ivy")+"@example.com")
	name := uniqueName("stream")
	app := ivy.createApp(t, name, slowBuildRepo(t, name).URL)
	var started struct {
		DeploymentID string `json:"deployment_id"`
	}
	if status, raw := platform.call(http.MethodPost, "/api/paas/applications/"+app.ID+"/deploy", ivy.token, nil, &started); status != http.StatusAccepted {
		t.Fatalf("deploy: %d %s", status, raw)
	}
	depPath := "/api/paas/applications/" + app.ID + "/deployments/" + started.DeploymentID
	statusNow := func() string {
		var dep deployment
		if status, raw := platform.call(http.MethodGet, depPath, ivy.token, nil, &dep); status != http.StatusOK {
			t.Fatalf("get deployment: %d %s", status, raw)
		}
		return dep.Status
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	resp := openLogStream(ctx, t, ivy.token, app.ID, started.DeploymentID, "")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("log stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	var firstStepStatus string
	events, err := readEvents(t, resp, func(e logEvent) {
		if firstStepStatus == "" && e.event == "" && strings.Contains(e.data, "Step 1/") {
			firstStepStatus = statusNow()
		}
	})
	if err != nil {
		t.Fatalf("the stream broke instead of ending: %v (after %d events)", err, len(events))
	}
	final := statusNow()
	text := ivy.logs(t, app.ID, started.DeploymentID)
	if final != "succeeded" {
		t.Fatalf("deployment ended %s:\n%s", final, text)
	}
	if firstStepStatus == "" {
		t.Fatalf("no build step was streamed:\n%s", text)
	}
	if firstStepStatus == "succeeded" || firstStepStatus == "failed" {
		t.Errorf("the first build step arrived when the deployment was already %s: the stream is not live", firstStepStatus)
	}
	t.Logf("%d events; the deployment was %s when the first build step arrived", len(events), firstStepStatus)
	if len(events) == 0 {
		t.Fatal("no events")
	}
	if last := events[len(events)-1]; last.event != "end" || last.data != final {
		t.Errorf("the stream's last event is %+v, want end with %q", last, final)
	}
	for _, e := range events[:len(events)-1] {
		if e.event != "" || e.id == "" {
			t.Errorf("log event %+v: want a data event with an id", e)
		}
	}

	// What the stream carried is the log, line by line (line breaks as SSE carries them).
	lines := dataOf(events)
	normalised := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(text)
	if got := strings.Join(lines, "\n"); got != strings.TrimSuffix(normalised, "\n") {
		t.Errorf("streamed lines differ from the log\n--- streamed ---\n%s\n--- log ---\n%s", got, text)
	}
	for _, want := range []string{"Cloning ", "Step 1/", `RUN ["/bin/busybox", "sleep", "4"]`, "==> Deployed"} {
		if !strings.Contains(strings.Join(lines, "\n"), want) {
			t.Errorf("the stream lacks %q:\n%s", want, strings.Join(lines, "\n"))
		}
	}

	// A client that lost the connection resumes after the last event it got.
	k := len(events) / 2
	resumed := openLogStream(ctx, t, ivy.token, app.ID, started.DeploymentID, events[k].id)
	defer resumed.Body.Close()
	rest, err := readEvents(t, resumed, nil)
	if err != nil {
		t.Fatalf("resumed stream: %v", err)
	}
	if got, want := strings.Join(dataOf(rest), "\n"), strings.Join(dataOf(events[k+1:]), "\n"); got != want {
		t.Errorf("resumed after %s:\n%s\nwant:\n%s", events[k].id, got, want)
	}
	if len(rest) == 0 || rest[len(rest)-1].event != "end" {
		t.Errorf("the resumed stream did not end with end: %+v", rest)
	}
}

// TestStreamLogsOfAnotherOrganizationIsNotFound: another customer's deployment log stream is a
// 404 exactly like a missing deployment's, before any streaming.
func TestStreamLogsOfAnotherOrganizationIsNotFound(t *testing.T) {
	owner := newCustomer(t, uniqueName("jo")+"@example.com")
	intruder := newCustomer(t, uniqueName("kim")+"@example.com")
	name := uniqueName("streamed")
	app := owner.createApp(t, name, newHelloRepo(t, name, name).URL)
	dep := owner.deploy(t, app.ID)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	answer := func(token, appID, deploymentID string) (int, string, string) {
		resp := openLogStream(ctx, t, token, appID, deploymentID, "")
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			events, err := readEvents(t, resp, nil)
			if err != nil || len(events) == 0 || events[len(events)-1].event != "end" {
				t.Errorf("the finished deployment's stream: %v %+v", err, events)
			}
			return resp.StatusCode, resp.Header.Get("Content-Type"), ""
		}
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), problemDetail(raw)
	}
	if status, ct, _ := answer(owner.token, app.ID, dep.ID); status != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("the owner's stream: %d %s", status, ct)
	}
	status, ct, detail := answer(intruder.token, app.ID, dep.ID)
	if status != http.StatusNotFound || !strings.Contains(ct, "json") {
		t.Errorf("another organization's log stream: %d %s %s, want a 404 problem", status, ct, detail)
	}
	missing := "00000000-0000-4000-8000-000000000000"
	for _, path := range [][2]string{{app.ID, missing}, {missing, dep.ID}} {
		if s, _, d := answer(intruder.token, path[0], path[1]); s != status || d != detail {
			t.Errorf("a missing deployment answers %d %q, another organization's %d %q", s, d, status, detail)
		}
	}
}
