package docker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skypanel/skypanel/activities/node/limitwatch"
)

// What a build may use. A build gets its app plan's memory and CPU, but never less than these
// floors: a starter plan's quarter core would turn a one-minute npm install into several.
const (
	BuildMinMemoryMB  = 1024
	BuildMinCPUMillis = 1000
	// DefaultBuildPidsLimit bounds the processes of one build (a fork bomb, a runaway test).
	DefaultBuildPidsLimit = 1024
	// DefaultBuildTimeout ends a build that runs longer.
	DefaultBuildTimeout = 15 * time.Minute
)

// buildLimits are one build's limits.
type buildLimits struct {
	memoryMB  int
	cpuMillis int
	pids      int
	timeout   time.Duration
	diskMB    int
}

func (a *Activities) buildLimits(in BuildImageInput) buildLimits {
	l := buildLimits{memoryMB: max(in.MemoryMB, BuildMinMemoryMB), cpuMillis: max(in.CPUMillis, BuildMinCPUMillis),
		pids: a.BuildPidsLimit, timeout: a.BuildTimeout, diskMB: a.BuildDiskMB}
	if l.pids <= 0 {
		l.pids = DefaultBuildPidsLimit
	}
	if in.TimeoutSeconds > 0 {
		l.timeout = time.Duration(in.TimeoutSeconds) * time.Second
	}
	if l.timeout <= 0 {
		l.timeout = DefaultBuildTimeout
	}
	if in.DiskMB > 0 {
		l.diskMB = in.DiskMB
	}
	if l.diskMB <= 0 {
		l.diskMB = DefaultBuildDiskMB
	}
	return l
}

// Causes of a build stopped by the agent, told apart in the message the customer reads.
var (
	errBuildPidsLimit = errors.New("build process limit reached")
	errBuildTimeLimit = errors.New("build time limit reached")
)

// buildCgroup is the cgroup a build's RUN containers are created under (CgroupParent): its
// pids.max bounds the build's processes, which the classic builder's options cannot, and its
// pids.events tells the agent the moment a fork was refused.
type buildCgroup struct {
	parent string // the CgroupParent given to the Engine
	// dirs is what to remove afterwards: a glob, since on cgroup v1 the Engine makes the
	// build's directory in each controller's hierarchy.
	dirs   string
	events string // the pids controller's events file
}

// cgroupRoot is where the cgroup filesystem is mounted; a variable for tests.
var cgroupRoot = "/sys/fs/cgroup"

// cgroupSupport is how this node can make a build cgroup: the Engine's cgroup driver and
// version, read once.
type cgroupSupport struct {
	once    sync.Once
	driver  string
	version string
}

func (a *Activities) cgroupSupport(ctx context.Context) (driver, version string) {
	a.cgroups.once.Do(func() {
		info, err := a.Client.Info(ctx)
		if err != nil {
			slog.WarnContext(ctx, "docker info: cgroup driver unknown; builds run without a process limit", "err", err)
			return
		}
		a.cgroups.driver, a.cgroups.version = info.CgroupDriver, info.CgroupVersion
	})
	return a.cgroups.driver, a.cgroups.version
}

// newBuildCgroup makes the build's cgroup with pids.max = pids. With the systemd cgroup driver
// (a parent must be a systemd slice) it answers nil: the build runs with its memory and CPU
// limits and its time limit only, which is logged.
func (a *Activities) newBuildCgroup(ctx context.Context, buildID string, pids int) (*buildCgroup, error) {
	driver, version := a.cgroupSupport(ctx)
	if driver != "cgroupfs" {
		slog.WarnContext(ctx, "build process limit unavailable with this cgroup driver", "driver", driver)
		return nil, nil
	}
	rel := filepath.Join("skypanel-builds", buildID)
	cg := &buildCgroup{parent: "/" + rel}
	switch version {
	case "2":
		base := filepath.Join(cgroupRoot, "skypanel-builds")
		dir := filepath.Join(base, buildID)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create build cgroup: %w", err)
		}
		// Controllers reach a child only when enabled in each parent's subtree_control.
		for _, d := range []string{cgroupRoot, base, dir} {
			if err := enableControllers(d); err != nil {
				_ = os.Remove(dir)
				return nil, err
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte(strconv.Itoa(pids)), 0o644); err != nil {
			_ = os.Remove(dir)
			return nil, fmt.Errorf("set the build's process limit: %w", err)
		}
		cg.dirs, cg.events = dir, filepath.Join(dir, "pids.events")
	default: // cgroup v1: one hierarchy per controller; the Engine makes the others.
		dir := filepath.Join(cgroupRoot, "pids", rel)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create build cgroup: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte(strconv.Itoa(pids)), 0o644); err != nil {
			_ = os.Remove(dir)
			return nil, fmt.Errorf("set the build's process limit: %w", err)
		}
		cg.dirs, cg.events = filepath.Join(cgroupRoot, "*", rel), filepath.Join(dir, "pids.events")
	}
	return cg, nil
}

// enableControllers turns on the pids, memory and cpu controllers for dir's children.
func enableControllers(dir string) error {
	path := filepath.Join(dir, "cgroup.subtree_control")
	current, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	for _, c := range []string{"pids", "memory", "cpu"} {
		if strings.Contains(" "+strings.TrimSpace(string(current))+" ", " "+c+" ") {
			continue
		}
		if err := os.WriteFile(path, []byte("+"+c), 0o644); err != nil && c == "pids" {
			return fmt.Errorf("enable the pids controller in %s: %w", dir, err)
		}
	}
	return nil
}

// forkRefusals is how many forks were refused at the build's limit: the "max" count of
// pids.events in the build's cgroup and every cgroup under it (the kernel counts a refusal in
// the cgroup of the task that forked, a RUN container's own, on some versions, and in the
// cgroup whose limit was hit on others).
func (cg *buildCgroup) forkRefusals() int {
	total := 0
	_ = filepath.WalkDir(filepath.Dir(cg.events), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "pids.events" {
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "max "); ok {
				n, _ := strconv.Atoi(strings.TrimSpace(v))
				total += n
			}
		}
		return nil
	})
	return total
}

// watch stops the build (cause errBuildPidsLimit) as soon as a fork is refused: a fork bomb
// held at the limit would otherwise spin until the time limit.
func (cg *buildCgroup) watch(ctx context.Context, stop context.CancelCauseFunc) (done func()) {
	return limitwatch.Start(ctx, 250*time.Millisecond, func() bool { return cg.forkRefusals() > 0 }, stop, errBuildPidsLimit)
}

// remove deletes the build's cgroups once its containers are gone; the Engine removes each
// RUN container's own cgroup with the container, but not the parents it created.
func (cg *buildCgroup) remove(ctx context.Context) {
	deadline := time.Now().Add(10 * time.Second)
	dirs, _ := filepath.Glob(cg.dirs)
	for _, dir := range dirs {
		for {
			err := os.Remove(dir)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) {
				slog.WarnContext(ctx, "build cgroup left behind", "dir", dir, "err", err)
				break
			}
			// A killed RUN container's cgroup may linger a moment.
			time.Sleep(100 * time.Millisecond)
		}
	}
}
