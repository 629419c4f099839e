package testsuite

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
)

// The benchmarks in this file compare the platform with the floor: the same work done by hand
// with the docker CLI and a plain nginx, in the same run, on the same machine. They report
// figures (`make bench` prints them as one table), never assertions.

// handNginx is a plain nginx started for the floor measurements, on its own loopback port and
// prefix: what an operator would reload by hand.
type handNginx struct {
	prefix, addr string
}

func startHandNginx(b *testing.B) *handNginx {
	b.Helper()
	port, err := freePort()
	if err != nil {
		b.Fatal(err)
	}
	n := &handNginx{prefix: b.TempDir(), addr: "127.0.0.1:" + strconv.Itoa(port)}
	for _, dir := range []string{"logs", "conf.d"} {
		if err := os.MkdirAll(filepath.Join(n.prefix, dir), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	conf := fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[1]s/body; proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi; uwsgi_temp_path %[1]s/uwsgi; scgi_temp_path %[1]s/scgi;
    include %[1]s/conf.d/*.conf;
    server { listen %[2]s default_server; return 404; }
}
`, n.prefix, n.addr)
	if err := os.WriteFile(filepath.Join(n.prefix, "nginx.conf"), []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	if out, err := n.nginx("-t"); err != nil {
		b.Fatalf("nginx -t: %v\n%s", err, out)
	}
	if out, err := n.nginx(); err != nil {
		b.Fatalf("start nginx: %v\n%s", err, out)
	}
	b.Cleanup(func() { n.nginx("-s", "stop") }) //nolint:errcheck
	return n
}

func (n *handNginx) nginx(args ...string) ([]byte, error) {
	return exec.Command("nginx", append([]string{"-p", n.prefix, "-c", filepath.Join(n.prefix, "nginx.conf")}, args...)...).CombinedOutput()
}

// route writes the host's server block for these loopback ports and reloads, as by hand.
func (n *handNginx) route(host string, ports []int) error {
	var servers strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&servers, "    server 127.0.0.1:%d;\n", p)
	}
	upstream := "hand_" + strings.NewReplacer("-", "_", ".", "_").Replace(host)
	site := fmt.Sprintf("upstream %s {\n%s}\nserver {\n    listen %s;\n    server_name %s;\n    location / { proxy_pass http://%s; }\n}\n",
		upstream, servers.String(), n.addr, host, upstream)
	if err := os.WriteFile(filepath.Join(n.prefix, "conf.d", "site.conf"), []byte(site), 0o644); err != nil {
		return err
	}
	if out, err := n.nginx("-s", "reload"); err != nil {
		return fmt.Errorf("nginx reload: %v: %s", err, out)
	}
	return nil
}

// waitBody polls http://addr/ with the Host header until it answers 200 with want.
func waitBody(b *testing.B, addr, host, want string) {
	b.Helper()
	if err := pollBody(addr, host, want); err != nil {
		b.Fatal(err)
	}
}

func pollBody(addr, host, want string) error {
	deadline := time.Now().Add(2 * time.Minute)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
		req.Host = host
		if resp, err := client.Do(req); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(body) == want {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s (Host %s) never answered %q", addr, host, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dockerCLI runs the docker CLI, as an operator would, and returns its trimmed output.
func dockerCLI(args ...string) (string, error) {
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// handStart starts one container of image by hand (detached, PORT set, published on a random
// loopback port) and waits until it answers want over HTTP; it returns the port.
func handStart(image, label, want string) (int, error) {
	id, err := dockerCLI("run", "-d", "--label", "skypanel.bench="+label, "-e", "PORT=8080", "-p", "127.0.0.1::8080", image)
	if err != nil {
		return 0, err
	}
	mapping, err := dockerCLI("port", id, "8080/tcp")
	if err != nil {
		return 0, err
	}
	_, portText, err := net.SplitHostPort(strings.Fields(mapping + " ")[0])
	if err != nil {
		return 0, fmt.Errorf("docker port %s: %q", id, mapping)
	}
	port, _ := strconv.Atoi(portText)
	return port, pollBody("127.0.0.1:"+portText, "localhost", want)
}

func removeHandContainers(label string) {
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=skypanel.bench="+label).Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run() //nolint:errcheck
	}
}

// BenchmarkDeployOverhead is figure 2: an API deploy of a cached Dockerfile app (a new commit
// whose only change is a small file), from the POST to the first 200 with the new content
// through nginx, divided by the floor measured right after it: docker build from the same
// cache, docker run, wait for HTTP, write an nginx config, reload, first 200 through nginx.
// The platform also clones the repository, which the floor does not.
func BenchmarkDeployOverhead(b *testing.B) {
	owner, app, r, _ := liveHelloApp(b, "overhead", "overhead 0")
	host := app.Name + ".apps.localhost"
	hand := startHandNginx(b)
	label := uniqueName("floor")
	b.Cleanup(func() { removeHandContainers(label) })
	image := "skypanel-bench/" + label

	var platformTotal, floorTotal time.Duration
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		b.StopTimer()
		want := fmt.Sprintf("overhead %d", i)
		r.commitMessage(want)
		b.StartTimer() // ns/op is the platform's time
		started := time.Now()
		var started202 struct {
			DeploymentID string `json:"deployment_id"`
		}
		if status, raw := platform.call(http.MethodPost, "/api/paas/applications/"+app.ID+"/deploy", owner.token, nil, &started202); status != http.StatusAccepted {
			b.Fatalf("deploy: %d %s", status, raw)
		}
		waitBody(b, platform.nginxAddr, host, want)
		platformTook := time.Since(started)
		b.StopTimer()
		if dep := owner.waitDeployment(b, app.ID, started202.DeploymentID); dep.Status != "succeeded" {
			b.Fatalf("deploy %d: %+v", i, dep)
		}

		// The floor, by hand, from the same build cache with the same kind of change: the
		// build context is the commit's files (the platform's clone has no .git either).
		wantFloor := fmt.Sprintf("floor %d", i)
		buildDir := floorContext(b, r.dir, wantFloor)
		removeHandContainers(label)
		started = time.Now()
		if _, err := dockerCLI("build", "-q", "-t", image, buildDir); err != nil {
			b.Fatal(err)
		}
		port, err := handStart(image, label, wantFloor)
		if err != nil {
			b.Fatal(err)
		}
		if err := hand.route(host, []int{port}); err != nil {
			b.Fatal(err)
		}
		waitBody(b, hand.addr, host, wantFloor)
		floorTook := time.Since(started)

		platformTotal += platformTook
		floorTotal += floorTook
		b.Logf("deploy %d: platform %s, floor %s, ratio %.2f", i, platformTook.Round(time.Millisecond), floorTook.Round(time.Millisecond),
			platformTook.Seconds()/floorTook.Seconds())
	}
	b.ReportMetric(platformTotal.Seconds()/float64(b.N), "platform-s")
	b.ReportMetric(floorTotal.Seconds()/float64(b.N), "floor-s")
	b.ReportMetric(platformTotal.Seconds()/floorTotal.Seconds(), "overhead-ratio")
	exec.Command("docker", "rmi", "-f", image).Run() //nolint:errcheck
}

// BenchmarkTaskPickup is figure 3: from the moment the API's 202 reaches the client to the
// moment the first activity on the node's task queue starts, as Temporal recorded it in the
// workflow's history, over 50 restarts (a rolling restart: its first node activity comes after
// a control-plane activity that loads the app).
func BenchmarkTaskPickup(b *testing.B) {
	owner, app, _, _ := liveHelloApp(b, "pickup", "pickup")
	const operations = 50
	var latencies []time.Duration
	b.ResetTimer()
	for range b.N {
		for range operations {
			var started struct {
				WorkflowID string `json:"workflow_id"`
			}
			status, raw := platform.call(http.MethodPost, "/api/paas/applications/"+app.ID+"/restart", owner.token, nil, &started)
			accepted := time.Now()
			if status != http.StatusAccepted {
				b.Fatalf("restart: %d %s", status, raw)
			}
			owner.waitWorkflow(b, started.WorkflowID)
			firstNodeStart, err := firstNodeActivityStart(started.WorkflowID)
			if err != nil {
				b.Fatal(err)
			}
			latencies = append(latencies, firstNodeStart.Sub(accepted))
		}
	}
	b.StopTimer()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	p50, p99 := percentile(latencies, 50), percentile(latencies, 99)
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.Logf("task pickup over %d operations: p50 %s, p99 %s, min %s, max %s", len(latencies),
		p50.Round(time.Millisecond/10), p99.Round(time.Millisecond/10), latencies[0].Round(time.Millisecond/10), latencies[len(latencies)-1].Round(time.Millisecond/10))
}

// firstNodeActivityStart reads a finished workflow's history: the start time of the first
// activity scheduled on a node's task queue (node-<id>).
func firstNodeActivityStart(workflowID string) (time.Time, error) {
	iter := platform.temporal.GetWorkflowHistory(context.Background(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	nodeScheduled := map[int64]bool{}
	for iter.HasNext() {
		event, err := iter.Next()
		if err != nil {
			return time.Time{}, fmt.Errorf("history of %s: %w", workflowID, err)
		}
		switch event.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			if strings.HasPrefix(event.GetActivityTaskScheduledEventAttributes().GetTaskQueue().GetName(), "node-") {
				nodeScheduled[event.GetEventId()] = true
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			if attrs := event.GetActivityTaskStartedEventAttributes(); nodeScheduled[attrs.GetScheduledEventId()] {
				return startedTime(event), nil
			}
		}
	}
	return time.Time{}, fmt.Errorf("%s: no activity started on a node queue", workflowID)
}

func startedTime(event *historypb.HistoryEvent) time.Time { return event.GetEventTime().AsTime() }

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

// BenchmarkScaleOut is figure 4: scale 1→10 through the API until all ten instances serve
// through nginx, against the floor: nine more `docker run`s of the same image by hand plus an
// HTTP check of each and an nginx reload onto all ten. Two floors: the runs all at once (as a
// script would: the stricter one, "ratio") and one after the other (as typed by hand,
// "ratio-seq").
func BenchmarkScaleOut(b *testing.B) {
	owner, app, _, _ := liveHelloApp(b, "scaleout", "scale out")
	host := app.Name + ".apps.localhost"
	image := appContainers(b, app.ID)[0].Image
	hand := startHandNginx(b)
	label := uniqueName("scalefloor")
	b.Cleanup(func() { removeHandContainers(label) })

	var platformTotal, floorTotal, sequentialTotal time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		b.StartTimer()
		started := time.Now()
		owner.scale(b, app.ID, 10)
		platformTook := time.Since(started)
		b.StopTimer()
		if seen := servingInstances(b, host, "scale out", 200); len(seen) != 10 {
			b.Fatalf("after scaling to 10, nginx spread 200 requests over %d instances", len(seen))
		}
		owner.scale(b, app.ID, 1)

		floorTook := handScaleOut(b, hand, image, label, host, true)
		sequentialTook := handScaleOut(b, hand, image, label, host, false)

		platformTotal += platformTook
		floorTotal += floorTook
		sequentialTotal += sequentialTook
		b.Logf("scale 1→10: platform %s, floor %s (ratio %.2f), one docker run after the other %s (ratio %.2f)",
			platformTook.Round(time.Millisecond), floorTook.Round(time.Millisecond), platformTook.Seconds()/floorTook.Seconds(),
			sequentialTook.Round(time.Millisecond), platformTook.Seconds()/sequentialTook.Seconds())
	}
	b.ReportMetric(platformTotal.Seconds()/float64(b.N), "platform-s")
	b.ReportMetric(floorTotal.Seconds()/float64(b.N), "floor-s")
	b.ReportMetric(platformTotal.Seconds()/floorTotal.Seconds(), "ratio")
	b.ReportMetric(sequentialTotal.Seconds()/float64(b.N), "floor-seq-s")
	b.ReportMetric(platformTotal.Seconds()/sequentialTotal.Seconds(), "ratio-seq")
}

// handScaleOut is the scale-out floor: with one instance already answering, nine more `docker
// run`s of image (all at once when parallel, as a script would; else one after the other, as
// typed by hand), an HTTP check of each as soon as it runs, and a reload of a plain nginx onto
// all ten, until it answers. The containers are removed afterwards.
func handScaleOut(b *testing.B, hand *handNginx, image, label, host string, parallel bool) time.Duration {
	b.Helper()
	defer removeHandContainers(label)
	firstPort, err := handStart(image, label, "scale out")
	if err != nil {
		b.Fatal(err)
	}
	started := time.Now()
	ports := []int{firstPort}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	for range 9 {
		run := func() {
			port, err := handStart(image, label, "scale out")
			mu.Lock()
			defer mu.Unlock()
			ports = append(ports, port)
			if err != nil {
				errs = append(errs, err)
			}
		}
		if !parallel {
			run()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			run()
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		b.Fatal(errs[0])
	}
	if err := hand.route(host, ports); err != nil {
		b.Fatal(err)
	}
	waitBody(b, hand.addr, host, "scale out")
	return time.Since(started)
}

// floorContext copies the repository's files but .git into a new directory, with message
// replacing message.txt, keeping their modes so Docker's build cache applies as it does to the
// platform's clone.
func floorContext(b *testing.B, repoDir, message string) string {
	b.Helper()
	dir := b.TempDir()
	entries, err := os.ReadDir(repoDir)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == ".git" || e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			b.Fatal(err)
		}
		content, err := os.ReadFile(filepath.Join(repoDir, e.Name()))
		if err != nil {
			b.Fatal(err)
		}
		if e.Name() == "message.txt" {
			content = []byte(message)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), content, info.Mode().Perm()); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}
