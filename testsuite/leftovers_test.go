package testsuite

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	dockerclient "github.com/docker/docker/client"
)

// e2eNetworkPool is the stack's tenant network pool. The suite puts networks of its own inside
// it before the platform starts, so the platform must allocate around them.
const e2eNetworkPool = "10.114.0.0/16"

// foreignNetworkCount is how many networks that are not the platform's the engine holds while
// the suite runs: more than Docker's default address pools can give (about 31), so any reliance
// on those pools, or on an engine with no other networks, shows.
const foreignNetworkCount = 40

// foreignNetworks are the suite's own networks, made with plain `docker network create` as
// an operator or another tool would. The platform must neither use nor remove them.
type foreignNetworks struct {
	ids map[string]string // name → id
}

// createForeignNetworks makes foreignNetworkCount networks: every fourth inside the stack's
// pool (some at the pool's start, one covering several of its subnets), the rest from Docker's
// default pools until those run out, then from the benchmarking range 198.18.0.0/15.
func createForeignNetworks(ctx context.Context, tag string) (*foreignNetworks, error) {
	f := &foreignNetworks{ids: map[string]string{}}
	inPool := []string{"10.114.0.0/26", "10.114.0.128/26", "10.114.1.0/24", "10.114.3.64/26", "10.114.4.0/26",
		"10.114.5.0/26", "10.114.6.0/26", "10.114.7.0/26", "10.114.8.0/26", "10.114.9.0/26"}
	defaultPoolsFull := false
	for i := 0; i < foreignNetworkCount; i++ {
		name := fmt.Sprintf("e2e-foreign-%s-%02d", tag, i)
		var args []string
		switch {
		case i%4 == 0:
			args = []string{"--subnet", inPool[i/4]}
		case defaultPoolsFull:
			args = []string{"--subnet", fmt.Sprintf("198.18.%d.0/24", i)}
		}
		id, err := dockerNetworkCreate(ctx, name, args...)
		if err != nil && len(args) == 0 && strings.Contains(err.Error(), "address pool") {
			// Docker's default pools are full now: what the platform must not depend on.
			defaultPoolsFull = true
			args = []string{"--subnet", fmt.Sprintf("198.18.%d.0/24", i)}
			id, err = dockerNetworkCreate(ctx, name, args...)
		}
		// A subnet someone else's network holds: the next free one of the same size in the same
		// range (the platform must allocate around these wherever they are).
		for alt := 1; err != nil && len(args) == 2 && strings.Contains(err.Error(), "overlaps") && alt < 256; alt++ {
			id, err = dockerNetworkCreate(ctx, name, "--subnet", shiftSubnet(args[1], alt))
		}
		if err != nil {
			return f, err
		}
		f.ids[name] = id
	}
	return f, nil
}

// shiftSubnet moves a /24 or smaller subnet by n /24 blocks inside its /16: 10.114.0.0/26 by
// 1 is 10.114.1.0/26.
func shiftSubnet(subnet string, n int) string {
	p := netip.MustParsePrefix(subnet)
	a := p.Addr().As4()
	a[2] = byte((int(a[2]) + n) % 256)
	return netip.PrefixFrom(netip.AddrFrom4(a), p.Bits()).String()
}

func dockerNetworkCreate(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", append(append([]string{"network", "create"}, args...), name)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker network create %s %s: %v: %s", strings.Join(args, " "), name, err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// subnets are the foreign networks' subnets.
func (f *foreignNetworks) subnets(ctx context.Context, d *dockerclient.Client) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for name := range f.ids {
		info, err := d.NetworkInspect(ctx, name, network.InspectOptions{})
		if err != nil {
			return nil, fmt.Errorf("inspect foreign network %s: %w", name, err)
		}
		for _, c := range info.IPAM.Config {
			out = append(out, netip.MustParsePrefix(c.Subnet))
		}
	}
	return out, nil
}

// verify checks that every foreign network is still there, the same network, with no
// container attached.
func (f *foreignNetworks) verify(ctx context.Context, d *dockerclient.Client) error {
	var errs []error
	for name, id := range f.ids {
		info, err := d.NetworkInspect(ctx, name, network.InspectOptions{})
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("foreign network %s is gone: %v", name, err))
		case info.ID != id:
			errs = append(errs, fmt.Errorf("foreign network %s was replaced (id %s, made %s)", name, info.ID, id))
		case len(info.Containers) > 0:
			errs = append(errs, fmt.Errorf("foreign network %s has containers attached: %v", name, info.Containers))
		}
	}
	return errors.Join(errs...)
}

func (f *foreignNetworks) remove(ctx context.Context, d *dockerclient.Client) {
	for name := range f.ids {
		_ = d.NetworkRemove(ctx, name)
	}
}

// deleteEverythingThroughTheAPI deletes every app of every customer the tests made, as the
// customers would, and waits for the deletions to finish.
func deleteEverythingThroughTheAPI(ctx context.Context) error {
	created.Lock()
	customers := append([]customer(nil), created.customers...)
	created.Unlock()
	var apps []ownedApp
	var errs []error
	for _, c := range customers {
		var list struct{ Items []application }
		if status, raw := platform.call(http.MethodGet, "/api/paas/applications", c.token, nil, &list); status != http.StatusOK {
			errs = append(errs, fmt.Errorf("list apps of organization %s: %d %s", c.orgID, status, raw))
			continue
		}
		for _, app := range list.Items {
			apps = append(apps, ownedApp{owner: c, appID: app.ID})
		}
	}
	return errors.Join(append(errs, deleteApps(ctx, apps))...)
}

// ownedApp is an app and the customer who may delete it.
type ownedApp struct {
	owner customer
	appID string
}

// deleteApps deletes the apps through the API, 8 at a time, as their owners would, and waits
// until every deletion has finished.
func deleteApps(ctx context.Context, apps []ownedApp) error {
	var wg sync.WaitGroup
	errs := make([]error, len(apps))
	sem := make(chan struct{}, 8)
	for i, app := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = deleteApp(ctx, app.owner, app.appID)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// deleteApp deletes one app and waits until its workflow has finished; an app busy with
// another operation is asked again until that one ends.
func deleteApp(ctx context.Context, c customer, appID string) error {
	for {
		var started struct {
			WorkflowID string `json:"workflow_id"`
		}
		status, raw := platform.call(http.MethodDelete, "/api/paas/applications/"+appID, c.token, nil, &started)
		switch status {
		case http.StatusAccepted:
			if err := awaitWorkflow(ctx, started.WorkflowID); err != nil {
				return fmt.Errorf("delete app %s: workflow %s: %w", appID, started.WorkflowID, err)
			}
			return nil
		case http.StatusNotFound:
			return nil // deleted meanwhile
		case http.StatusConflict:
			select {
			case <-ctx.Done():
				return fmt.Errorf("delete app %s: still busy: %s", appID, raw)
			case <-time.After(500 * time.Millisecond):
			}
		default:
			return fmt.Errorf("delete app %s: %d %s", appID, status, raw)
		}
	}
}

// leftovers lists what the stack's node made (labelled skypanel.node=<its id>) and is still on
// the engine: containers, networks, volumes and images.
func leftovers(ctx context.Context, d *dockerclient.Client, nodeID string) ([]string, error) {
	byNode := filters.NewArgs(filters.Arg("label", "skypanel.node="+nodeID))
	var left []string
	containers, err := d.ContainerList(ctx, container.ListOptions{All: true, Filters: byNode})
	if err != nil {
		return nil, err
	}
	for _, c := range containers {
		left = append(left, "container "+strings.Join(c.Names, ","))
	}
	nets, err := d.NetworkList(ctx, network.ListOptions{Filters: byNode})
	if err != nil {
		return nil, err
	}
	for _, n := range nets {
		left = append(left, "network "+n.Name)
	}
	vols, err := d.VolumeList(ctx, volume.ListOptions{Filters: byNode})
	if err != nil {
		return nil, err
	}
	for _, v := range vols.Volumes {
		left = append(left, "volume "+v.Name)
	}
	imgs, err := d.ImageList(ctx, image.ListOptions{All: true, Filters: byNode})
	if err != nil {
		return nil, err
	}
	for _, img := range imgs {
		left = append(left, fmt.Sprintf("image %s %v", img.ID, img.RepoTags))
	}
	return left, nil
}

// cleanUpAndCheck removes, through the API, everything the tests made (apps, then databases), then fails the run if
// the engine still holds anything of the stack's node, or if a foreign network was touched.
func cleanUpAndCheck(foreign *foreignNetworks) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var errs []error
	if err := deleteEverythingThroughTheAPI(ctx); err != nil {
		errs = append(errs, err)
	}
	created.Lock()
	customers := append([]customer(nil), created.customers...)
	created.Unlock()
	if err := deleteDatabasesOf(ctx, customers); err != nil {
		errs = append(errs, err)
	}
	left, err := leftovers(ctx, platform.docker, platform.nodeID)
	if err != nil {
		errs = append(errs, fmt.Errorf("list leftovers: %w", err))
	}
	if len(left) > 0 {
		errs = append(errs, fmt.Errorf("the suite's stack left these behind after every app was deleted:\n  %s", strings.Join(left, "\n  ")))
	}
	if foreign != nil {
		if err := foreign.verify(ctx, platform.docker); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
