package testsuite

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	enumspb "go.temporal.io/api/enums/v1"
)

// densityOrganizations is how many organizations BenchmarkDensity puts on the one node.
const densityOrganizations = 300

// deployTimes are one deploy workflow's figures, read from its history: the whole workflow
// and its route switch (PublishRoute: render, nginx -t, reload, the new release answering,
// the old workers drained).
type deployTimes struct {
	total, routeSwitch time.Duration
	// steps is how long each kind of activity ran (started to completed), summed.
	steps map[string]time.Duration
}

func deployFigures(workflowID string) (deployTimes, error) {
	ctx := context.Background()
	desc, err := platform.temporal.DescribeWorkflowExecution(ctx, workflowID, "")
	if err != nil {
		return deployTimes{}, err
	}
	info := desc.GetWorkflowExecutionInfo()
	figures := deployTimes{total: info.GetCloseTime().AsTime().Sub(info.GetStartTime().AsTime()), steps: map[string]time.Duration{}}
	iter := platform.temporal.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	kind := map[int64]string{}
	started := map[int64]time.Time{}
	for iter.HasNext() {
		event, err := iter.Next()
		if err != nil {
			return figures, err
		}
		switch event.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			kind[event.GetEventId()] = event.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			started[event.GetActivityTaskStartedEventAttributes().GetScheduledEventId()] = event.GetEventTime().AsTime()
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			id := event.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()
			took := event.GetEventTime().AsTime().Sub(started[id])
			figures.steps[kind[id]] += took
			if kind[id] == "PublishRoute" {
				figures.routeSwitch = took
			}
		}
	}
	return figures, nil
}

// deployOneByOne deploys n new organizations' apps one after the other and returns the
// tenants and each deploy's figures.
func deployOneByOne(b *testing.B, prefix string, n int) ([]tenant, []deployTimes) {
	var tenants []tenant
	var figures []deployTimes
	for i := 0; i < n; i++ {
		tn := deployTenants(b, fmt.Sprintf("%s%d", prefix, i), 1, 1)[0]
		var list struct{ Items []deployment }
		platform.call("GET", "/api/paas/applications/"+tn.app.ID+"/deployments", tn.owner.token, nil, &list)
		if len(list.Items) != 1 {
			b.Fatalf("deployments of %s: %+v", tn.app.Name, list.Items)
		}
		f, err := deployFigures(list.Items[0].WorkflowID)
		if err != nil {
			b.Fatal(err)
		}
		tenants = append(tenants, tn)
		figures = append(figures, f)
	}
	return tenants, figures
}

func medianOf(figures []deployTimes, pick func(deployTimes) time.Duration) time.Duration {
	var d []time.Duration
	for _, f := range figures {
		d = append(d, pick(f))
	}
	slices.Sort(d)
	return d[len(d)/2]
}

func total(f deployTimes) time.Duration       { return f.total }
func routeSwitch(f deployTimes) time.Duration { return f.routeSwitch }

// memAvailableKiB is the host's MemAvailable from /proc/meminfo.
func memAvailableKiB(b *testing.B) int64 {
	raw, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if fields := strings.Fields(line); len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kib, _ := strconv.ParseInt(fields[1], 10, 64)
			return kib
		}
	}
	b.Fatal("no MemAvailable in /proc/meminfo")
	return 0
}

// nginxConfigTest times `nginx -t` of the node's whole configuration, median of five.
func nginxConfigTest(b *testing.B) time.Duration {
	prefix := filepath.Join(platform.dataDir, "node-local", "nginx")
	var runs []time.Duration
	for range 5 {
		began := time.Now()
		cmd := exec.Command("nginx", "-p", prefix+"/", "-c", filepath.Join(prefix, "nginx.conf"), "-e", filepath.Join(prefix, "logs", "error.log"), "-t", "-q")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("nginx -t: %v\n%s", err, out)
		}
		runs = append(runs, time.Since(began))
	}
	slices.Sort(runs)
	return runs[len(runs)/2]
}

// runningAppContainers counts the node's running app containers.
func runningAppContainers(b *testing.B) int {
	list, err := platform.docker.ContainerList(context.Background(), container.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", "skypanel.node="+platform.nodeID))})
	if err != nil {
		b.Fatal(err)
	}
	return len(list)
}

// BenchmarkDensity puts 300 organizations with one small app each on the one node (`make
// bench`) and reports what the 301st costs against the first: the deploy (ratio of medians of
// three, target <= 1.2), the route switch and nginx -t, the agent's resident memory, and the
// node's memory per idle app.
func BenchmarkDensity(b *testing.B) {
	for range b.N {
		agent := findProcess(b, "skypanel-agent", platform.dataDir)
		if n := runningAppContainers(b); n != 0 {
			b.Logf("note: %d app containers were running before the first deploy (left by other benchmarks)", n)
		}
		testEmpty := nginxConfigTest(b)
		agentEmpty := residentKiB(agent)
		availEmpty := memAvailableKiB(b)

		// The first app on an empty node, three times over (each deleted before the next).
		var first []deployTimes
		for i := range 3 {
			tenants, figures := deployOneByOne(b, fmt.Sprintf("first%d-", i), 1)
			first = append(first, figures...)
			deleteTenants(b, tenants)
		}

		began := time.Now()
		crowd := deployTenants(b, "crowd", densityOrganizations, 8)
		crowdTime := time.Since(began)
		b.Cleanup(func() { deleteTenants(b, crowd) })
		if n := runningAppContainers(b); n < densityOrganizations {
			b.Fatalf("%d app containers run, want %d", n, densityOrganizations)
		}
		// Let the rollouts' old nginx workers and build processes settle before reading memory.
		settle := time.Now().Add(5 * time.Second)
		for time.Now().Before(settle) {
			time.Sleep(100 * time.Millisecond)
		}
		availCrowd := memAvailableKiB(b)
		agentCrowd := residentKiB(agent)
		testCrowd := nginxConfigTest(b)

		last, lastFigures := deployOneByOne(b, "last-", 3)
		b.Cleanup(func() { deleteTenants(b, last) })
		for _, tn := range append(crowd[:3], last...) {
			if status, body, _ := platform.throughNginx(tn.host()); status != 200 || body != tn.message {
				b.Fatalf("%s through nginx at %d apps: %d %q", tn.app.Name, densityOrganizations, status, body)
			}
		}

		firstDeploy, lastDeploy := medianOf(first, total), medianOf(lastFigures, total)
		b.ReportMetric(firstDeploy.Seconds(), "first-deploy-s")
		b.ReportMetric(lastDeploy.Seconds(), "deploy-301-s")
		b.ReportMetric(lastDeploy.Seconds()/firstDeploy.Seconds(), "deploy-ratio")
		b.ReportMetric(float64(medianOf(first, routeSwitch).Milliseconds()), "switch-first-ms")
		b.ReportMetric(float64(medianOf(lastFigures, routeSwitch).Milliseconds()), "switch-300-ms")
		b.ReportMetric(float64(testEmpty.Microseconds())/1000, "nginx-t-empty-ms")
		b.ReportMetric(float64(testCrowd.Microseconds())/1000, "nginx-t-300-ms")
		b.ReportMetric(float64(agentEmpty)/1024, "agent-empty-MiB")
		b.ReportMetric(float64(agentCrowd)/1024, "agent-300-MiB")
		b.ReportMetric(float64(availEmpty-availCrowd)/1024/densityOrganizations, "node-MiB-per-app")
		b.ReportMetric(crowdTime.Seconds(), "deploy-300-s")
		// Where a deploy's time goes, first app against the 301st: the node's main steps.
		for _, step := range []string{"CloneRepository", "BuildImage", "EnsureNetwork", "StartInstance", "WaitReady", "PublishRoute", "RemoveInstances"} {
			pick := func(f deployTimes) time.Duration { return f.steps[step] }
			b.ReportMetric(float64(medianOf(first, pick).Milliseconds()), step+"-first-ms")
			b.ReportMetric(float64(medianOf(lastFigures, pick).Milliseconds()), step+"-301-ms")
		}
	}
}
