package testsuite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	dockerclient "github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
)

// runsDir holds one file per e2e run: <pid>.nodes, the ids of the nodes its agents run. A run
// whose engine ends clean removes its file. A run that was killed, or whose machine stopped,
// leaves it; the next run then removes what those nodes left on the engine (dockerd restarts
// their containers with it) and the run's foreign networks, which would otherwise take the
// addresses this run needs. It is under /var/tmp because the Docker engine's state outlives
// a reboot, and so must the list of what an interrupted run put there.
var runsDir = "/var/tmp/skypanel-e2e"

var runFile struct {
	sync.Mutex
	path string
}

// startRunRecord creates this run's file.
func startRunRecord() error {
	if err := os.MkdirAll(runsDir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", runsDir, err)
	}
	path := filepath.Join(runsDir, strconv.Itoa(os.Getpid())+".nodes")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		return fmt.Errorf("create the run record: %w", err)
	}
	runFile.Lock()
	runFile.path = path
	runFile.Unlock()
	return nil
}

// recordRunNode adds a node to this run's file before its agent can make anything.
func recordRunNode(nodeID string) error {
	runFile.Lock()
	defer runFile.Unlock()
	if runFile.path == "" {
		return errors.New("no run record")
	}
	f, err := os.OpenFile(runFile.path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("record node %s: %w", nodeID, err)
	}
	defer f.Close()
	_, err = fmt.Fprintln(f, nodeID)
	return err
}

// endRunRecord removes this run's file: only once the engine holds nothing of the run.
func endRunRecord() {
	runFile.Lock()
	defer runFile.Unlock()
	if runFile.path != "" {
		_ = os.Remove(runFile.path)
		runFile.path = ""
	}
}

// sweepInterruptedRuns removes, for every recorded run whose process is gone, what its nodes
// left on the engine and its foreign networks, then its file. It touches nothing else: a
// platform of `make run` on the same engine keeps its apps.
func sweepInterruptedRuns(ctx context.Context, d *dockerclient.Client) error {
	// A run killed a moment ago may still have a build step running in the engine, whose
	// network cannot go yet: what is left then stays recorded for the next run.
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	entries, err := os.ReadDir(runsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", runsDir, err)
	}
	var errs []error
	for _, e := range entries {
		pidText, ok := strings.CutSuffix(e.Name(), ".nodes")
		pid, convErr := strconv.Atoi(pidText)
		if !ok || convErr != nil || pid == os.Getpid() || isTestProcess(pid) {
			continue
		}
		path := filepath.Join(runsDir, e.Name())
		nodes, err := readNodeIDs(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		removed, err := removeRunResources(ctx, d, pidText, nodes)
		if err != nil {
			errs = append(errs, fmt.Errorf("run %d: %w", pid, err))
			continue
		}
		fmt.Fprintf(os.Stderr, "e2e: removed what an interrupted run (pid %d) left on the engine: %s\n", pid, removed)
		if err := os.Remove(path); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// isTestProcess tells whether pid is a live e2e run: a live process whose command is a test
// binary. After a reboot the pid may belong to something else, which does not count.
func isTestProcess(pid int) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	exe := strings.SplitN(string(cmdline), "\x00", 2)[0]
	return strings.HasSuffix(exe, ".test")
}

func readNodeIDs(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if id := strings.TrimSpace(sc.Text()); id != "" {
			ids = append(ids, id)
		}
	}
	return ids, sc.Err()
}

// removeRunResources removes the containers, networks, volumes and images of the run's nodes,
// then the run's foreign networks, and says how many of each went.
func removeRunResources(ctx context.Context, d *dockerclient.Client, runTag string, nodeIDs []string) (string, error) {
	var containers, networks, volumes, images int
	var errs []error
	for _, nodeID := range nodeIDs {
		byNode := filters.NewArgs(filters.Arg("label", "skypanel.node="+nodeID))
		list, err := d.ContainerList(ctx, container.ListOptions{All: true, Filters: byNode})
		if err != nil {
			return "", err
		}
		for _, c := range list {
			if err := d.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
				errs = append(errs, err)
				continue
			}
			containers++
		}
		nets, err := d.NetworkList(ctx, network.ListOptions{Filters: byNode})
		if err != nil {
			return "", err
		}
		for _, n := range nets {
			if err := removeNetwork(ctx, d, n.ID); err != nil {
				errs = append(errs, err)
				continue
			}
			networks++
		}
		vols, err := d.VolumeList(ctx, volume.ListOptions{Filters: byNode})
		if err != nil {
			return "", err
		}
		for _, v := range vols.Volumes {
			if err := d.VolumeRemove(ctx, v.Name, true); err != nil {
				errs = append(errs, err)
				continue
			}
			volumes++
		}
		// Top-level images only: removing one takes its untagged parents with it.
		imgs, err := d.ImageList(ctx, image.ListOptions{Filters: byNode})
		if err != nil {
			return "", err
		}
		for _, img := range imgs {
			if _, err := d.ImageRemove(ctx, img.ID, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
				if errdefs.IsNotFound(err) {
					continue // went with an image removed before it
				}
				errs = append(errs, err)
				continue
			}
			images++
		}
	}
	foreign, err := d.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", "e2e-foreign-"+runTag+"-"))})
	if err != nil {
		return "", err
	}
	for _, n := range foreign {
		if !strings.HasPrefix(n.Name, "e2e-foreign-"+runTag+"-") {
			continue // the name filter matches substrings
		}
		if err := removeNetwork(ctx, d, n.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		networks++
	}
	return fmt.Sprintf("%d containers, %d networks, %d volumes, %d images", containers, networks, volumes, images), errors.Join(errs...)
}

// removeNetwork removes a network, waiting (until ctx ends) for the endpoints of containers
// just removed, or of a build step the engine is still finishing, to go.
func removeNetwork(ctx context.Context, d *dockerclient.Client, id string) error {
	for {
		err := d.NetworkRemove(ctx, id)
		if err == nil || errdefs.IsNotFound(err) {
			return nil
		}
		if !strings.Contains(err.Error(), "active endpoints") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}
