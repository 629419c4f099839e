package testsuite

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/network"

	spdocker "github.com/skypanel/skypanel/activities/node/docker"
)

// tenant is one organization with one deployed hello app.
type tenant struct {
	owner   customer
	app     application
	message string
}

func (tn tenant) host() string { return tn.app.Name + ".apps.localhost" }

// goroutineTB lets the fixtures (which call t.Fatal) run on a goroutine of their own: a fatal
// failure is recorded and ends that goroutine only, and the test reports it afterwards.
type goroutineTB struct {
	testing.TB
	mu  sync.Mutex
	err error
}

func (g *goroutineTB) record(msg string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.err = errors.Join(g.err, errors.New(msg))
}
func (g *goroutineTB) Errorf(format string, args ...any) { g.record(fmt.Sprintf(format, args...)) }
func (g *goroutineTB) Error(args ...any)                 { g.record(fmt.Sprint(args...)) }
func (g *goroutineTB) Fatalf(format string, args ...any) {
	g.record(fmt.Sprintf(format, args...))
	runtime.Goexit()
}
func (g *goroutineTB) Fatal(args ...any) {
	g.record(fmt.Sprint(args...))
	runtime.Goexit()
}
func (g *goroutineTB) FailNow() {
	g.record("failed")
	runtime.Goexit()
}

// deployTenants signs up n organizations and deploys one hello app for each, parallel at
// most at a time, and fails the test unless every one of them succeeded.
func deployTenants(t testing.TB, prefix string, n, parallel int) []tenant {
	t.Helper()
	tenants := make([]tenant, n)
	g := &goroutineTB{TB: t}
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	for i := range tenants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			name := fmt.Sprintf("%s-%03d-%d", prefix, i, time.Now().UnixNano()%1_000_000)
			owner := newCustomer(g, name+"@example.com")
			// Under make bench the stack bills hourly: a run that crosses the hour must not
			// suspend the crowd for an empty wallet.
			if status, raw := credit(g, owner.orgID, 1000, "density-"+name); status != http.StatusCreated {
				g.Fatalf("credit %s: %d %s", name, status, raw)
			}
			message := "tenant " + name
			r := newHelloRepo(g, name, message)
			app := owner.createApp(g, name, r.URL)
			if dep := owner.deploy(g, app.ID); dep.Status != "succeeded" {
				g.Fatalf("deploy of %s: %+v\n%s", name, dep, owner.logs(g, app.ID, dep.ID))
			}
			tenants[i] = tenant{owner: owner, app: app, message: message}
		}()
	}
	wg.Wait()
	if g.err != nil {
		t.Fatalf("deploying %d organizations: %v", n, g.err)
	}
	return tenants
}

// deleteTenants deletes the tenants' apps through the API, as their owners would.
func deleteTenants(t testing.TB, tenants []tenant) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	apps := make([]ownedApp, len(tenants))
	for i, tn := range tenants {
		apps[i] = ownedApp{owner: tn.owner, appID: tn.app.ID}
	}
	if err := deleteApps(ctx, apps); err != nil {
		t.Errorf("delete the tenants' apps: %v", err)
	}
}

func orgSubnet(t testing.TB, orgID string) (netip.Prefix, error) {
	t.Helper()
	info, err := platform.docker.NetworkInspect(context.Background(), spdocker.OrgNetworkName(orgID), network.InspectOptions{})
	if err != nil {
		return netip.Prefix{}, err
	}
	if len(info.IPAM.Config) != 1 {
		return netip.Prefix{}, fmt.Errorf("network of %s has IPAM %+v", orgID, info.IPAM.Config)
	}
	return netip.ParsePrefix(info.IPAM.Config[0].Subnet)
}

// TestFortyOrganizationsServeFromOneNode: more organizations than Docker's default address pools
// hold networks for (and the engine already holds 40 networks that are not the platform's) each
// deploy an app on the one node. Every one serves through nginx from its own network, a subnet
// of the node's pool; deleting one organization's app takes its network along while the other
// 39 serve every request.
func TestFortyOrganizationsServeFromOneNode(t *testing.T) {
	const organizations = 40
	began := time.Now()
	tenants := deployTenants(t, "dense", organizations, 8)
	t.Logf("%d organizations deployed in %s", organizations, time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		began := time.Now()
		deleteTenants(t, tenants[1:])
		t.Logf("deleted the other %d in %s", len(tenants)-1, time.Since(began).Round(time.Millisecond))
	})

	for _, tn := range tenants {
		if status, body, _ := platform.throughNginx(tn.host()); status != http.StatusOK || body != tn.message {
			t.Errorf("%s through nginx: %d %q, want 200 %q", tn.app.Name, status, body, tn.message)
		}
	}

	pool := netip.MustParsePrefix(e2eNetworkPool)
	foreign, err := platform.foreign.subnets(context.Background(), platform.docker)
	if err != nil {
		t.Fatal(err)
	}
	owner := map[netip.Prefix]string{}
	for _, tn := range tenants {
		subnet, err := orgSubnet(t, tn.owner.orgID)
		if err != nil {
			t.Fatalf("network of %s: %v", tn.app.Name, err)
		}
		if !pool.Contains(subnet.Addr()) || subnet.Bits() != 26 {
			t.Errorf("%s's network has %s, want a /26 of the node's pool %s", tn.app.Name, subnet, pool)
		}
		for _, f := range foreign {
			if f.Overlaps(subnet) {
				t.Errorf("%s's network %s overlaps the foreign network's %s", tn.app.Name, subnet, f)
			}
		}
		if other, dup := owner[subnet]; dup {
			t.Errorf("%s and %s share the subnet %s", other, tn.app.Name, subnet)
		}
		owner[subnet] = tn.app.Name
	}

	// One organization leaves; the others are under load meanwhile.
	gone, stay := tenants[0], tenants[1:]
	targets := make([]loadTarget, len(stay))
	for i, tn := range stay {
		targets[i] = loadTarget{host: tn.host(), body: tn.message}
	}
	load := startLoadOn(targets, 8)
	began = time.Now()
	gone.owner.operation(t, gone.app.ID, "delete")
	deleted := time.Since(began)
	failed, total := load.finish(1000)
	t.Logf("deleted one organization's app in %s; %d of %d requests to the other %d failed", deleted.Round(time.Millisecond), failed, total, len(stay))
	if failed != 0 || total < 1000 {
		t.Errorf("%d of %d requests to the other %d organizations failed while one was deleted (want 0 of at least 1000)", failed, total, len(stay))
	}
	_, err = platform.docker.NetworkInspect(context.Background(), spdocker.OrgNetworkName(gone.owner.orgID), network.InspectOptions{})
	if !errdefs.IsNotFound(err) {
		t.Errorf("the deleted organization's network is still there once its delete finished (inspect: %v)", err)
	}
	if left := appContainers(t, gone.app.ID); len(left) != 0 {
		t.Errorf("the deleted app left %d containers", len(left))
	}
	for _, tn := range stay {
		if _, err := orgSubnet(t, tn.owner.orgID); err != nil {
			t.Errorf("%s's network: %v", tn.app.Name, err)
		}
	}
	if err := platform.foreign.verify(context.Background(), platform.docker); err != nil {
		t.Error(err)
	}
}
