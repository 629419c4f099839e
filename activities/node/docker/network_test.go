package docker

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/network"
)

// testPool is a pool of four /26 subnets no other test or stack on this engine uses.
const testPoolRange = "10.251.7.0/24"

func networkSubnet(t *testing.T, f *fixture, name string) netip.Prefix {
	t.Helper()
	info, err := f.a.Client.NetworkInspect(context.Background(), name, network.InspectOptions{})
	if err != nil {
		t.Fatalf("inspect network %s: %v", name, err)
	}
	if len(info.IPAM.Config) != 1 {
		t.Fatalf("network %s IPAM %+v", name, info.IPAM.Config)
	}
	return netip.MustParsePrefix(info.IPAM.Config[0].Subnet)
}

func networkExists(t *testing.T, f *fixture, name string) bool {
	t.Helper()
	_, err := f.a.Client.NetworkInspect(context.Background(), name, network.InspectOptions{})
	if errdefs.IsNotFound(err) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// foreignNetwork creates a network the platform did not make (no labels), removed at the end.
func foreignNetwork(t *testing.T, f *fixture, name, subnet string) {
	t.Helper()
	ctx := context.Background()
	if _, err := f.a.Client.NetworkCreate(ctx, name, network.CreateOptions{
		Driver: "bridge", IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: subnet}}},
	}); err != nil {
		t.Fatalf("create foreign network %s: %v", name, err)
	}
	t.Cleanup(func() { f.a.Client.NetworkRemove(ctx, name) })
}

func TestOrganizationsGetSubnetsOfThePoolAroundOtherNetworks(t *testing.T) {
	f := newFixture(t)
	f.a.Pool = mustPool(t, testPoolRange, 26)
	// Somebody else's network holds the pool's first subnet: it is skipped and left alone.
	foreign := "test-foreign-" + f.orgID
	foreignNetwork(t, f, foreign, "10.251.7.0/26")

	orgs := []string{f.orgID, f.orgID + "-b", f.orgID + "-c"}
	seen := map[netip.Prefix]string{}
	for _, org := range orgs {
		var res EnsureNetworkResult
		if err := f.run(t, f.a.EnsureNetwork, EnsureNetworkInput{OrgID: org}, &res); err != nil {
			t.Fatalf("EnsureNetwork %s: %v", org, err)
		}
		t.Cleanup(func() { f.a.Client.NetworkRemove(context.Background(), res.Network) })
		subnet := networkSubnet(t, f, res.Network)
		if !f.a.Pool.Range.Contains(subnet.Addr()) || subnet.Bits() != 26 {
			t.Errorf("organization %s got %s, not a /26 of %s", org, subnet, testPoolRange)
		}
		if subnet.String() == "10.251.7.0/26" {
			t.Errorf("organization %s got the foreign network's subnet", org)
		}
		if other, dup := seen[subnet]; dup {
			t.Errorf("organizations %s and %s share %s", other, org, subnet)
		}
		seen[subnet] = org
	}

	// The pool is now full: a fourth organization is refused in words an operator can act on.
	err := f.run(t, f.a.EnsureNetwork, EnsureNetworkInput{OrgID: f.orgID + "-d"}, nil)
	wantAppError(t, err, ErrTypePoolExhausted, "10.251.7.0/24")
	wantAppError(t, err, ErrTypePoolExhausted, "4 of 4 /26 subnets")
	if networkExists(t, f, OrgNetworkName(f.orgID+"-d")) {
		t.Error("a network was created although the pool is exhausted")
	}

	// Orphans of this node go; the foreign network and another node's network stay.
	other := &Activities{Client: f.a.Client, NodeID: "other-node", Pool: f.a.Pool}
	f.a.Client.NetworkRemove(context.Background(), OrgNetworkName(orgs[2]))
	if err := (&fixture{a: other}).run(t, other.EnsureNetwork, EnsureNetworkInput{OrgID: orgs[2]}, nil); err != nil {
		t.Fatal(err)
	}
	removed, err := NewHousekeeping(f.a).RemoveOrphanNetworks(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, org := range orgs[:2] {
		if networkExists(t, f, OrgNetworkName(org)) {
			t.Errorf("orphaned network of %s was not removed (removed %v)", org, removed)
		}
	}
	if !networkExists(t, f, foreign) {
		t.Error("the orphan sweep removed a network that is not the platform's")
	}
	if !networkExists(t, f, OrgNetworkName(orgs[2])) {
		t.Error("the orphan sweep removed another node's network")
	}
}

func TestLastContainerOfAnOrganizationTakesItsNetworkAlong(t *testing.T) {
	f := newFixture(t)
	f.a.Pool = mustPool(t, "10.251.8.0/24", 26)
	ctx := context.Background()
	tag := f.buildHelloImage(t)
	net := OrgNetworkName(f.orgID)

	// Two apps of one organization: removing the first keeps the network for the second.
	first, err := f.start(t, tag, f.appID+"-web-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	subnet := networkSubnet(t, f, net)
	if !f.a.Pool.Range.Contains(subnet.Addr()) {
		t.Fatalf("network subnet %s is outside the pool", subnet)
	}
	secondApp := f.appID + "-second"
	second := StartInstanceInput{AppID: secondApp, OrgID: f.orgID, ReleaseID: "r1", InstanceName: secondApp + "-web-1",
		Image: tag, CPUMillis: 500, MemoryMB: 64, Port: 8000}
	t.Cleanup(func() { f.run(t, f.a.RemoveInstances, RemoveInstancesInput{AppID: secondApp, GracePeriod: 1}, nil) })
	if err := f.run(t, f.a.StartInstance, second, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.run(t, f.a.RemoveInstances, RemoveInstancesInput{AppID: f.appID, GracePeriod: 1}, nil); err != nil {
		t.Fatal(err)
	}
	if !networkExists(t, f, net) {
		t.Fatal("the network went while another app of the organization still runs on it")
	}
	if _, err := f.a.Client.ContainerInspect(ctx, first.ContainerID); !errdefs.IsNotFound(err) {
		t.Fatalf("first app's container still there: %v", err)
	}
	if err := f.run(t, f.a.RemoveInstances, RemoveInstancesInput{AppID: secondApp, GracePeriod: 1}, nil); err != nil {
		t.Fatal(err)
	}
	if networkExists(t, f, net) {
		t.Fatal("the organization's last container left and its network stayed")
	}
}

// A deploy makes its organization's network while it builds; when the build fails no container
// ever joins it, and deleting the app (RemoveInstances with the organization) gives it back.
func TestNetworkMadeForAFailedBuildGoesWithTheApp(t *testing.T) {
	f := newFixture(t)
	f.a.Pool = mustPool(t, "10.251.12.0/24", 26)
	net := OrgNetworkName(f.orgID)
	if err := f.run(t, f.a.EnsureNetwork, EnsureNetworkInput{OrgID: f.orgID}, nil); err != nil {
		t.Fatal(err)
	}
	if !networkExists(t, f, net) {
		t.Fatal("EnsureNetwork made no network")
	}
	if err := f.run(t, f.a.RemoveInstances, RemoveInstancesInput{AppID: f.appID, GracePeriod: 1}, nil); err != nil {
		t.Fatal(err)
	}
	if !networkExists(t, f, net) {
		t.Fatal("RemoveInstances without the organization removed its network")
	}
	if err := f.run(t, f.a.RemoveInstances, RemoveInstancesInput{AppID: f.appID, OrgID: f.orgID, GracePeriod: 1}, nil); err != nil {
		t.Fatal(err)
	}
	if networkExists(t, f, net) {
		t.Fatal("the organization has no container and its network stayed after the app's removal")
	}
}

// Starting an instance while the organization's last other container is removed must never
// find its network gone: creation and removal are ordered by the organization's lock. The hooks
// hold each side at its most dangerous point (the removal has found the network unused; the
// start has seen the network but not created its container) and wait a moment for the other.
func TestNetworkIsNeverRemovedUnderAStartingInstance(t *testing.T) {
	f := newFixture(t)
	f.a.Pool = mustPool(t, "10.251.9.0/24", 26)
	tag := f.buildHelloImage(t)
	leaving, coming := f.appID+"-leaving", f.appID+"-coming"
	t.Cleanup(func() {
		hookAfterUnusedCheck, hookBeforeCreate = nil, nil
		f.run(t, f.a.RemoveInstances, RemoveInstancesInput{AppID: leaving, GracePeriod: 1}, nil)
		f.run(t, f.a.RemoveInstances, RemoveInstancesInput{AppID: coming, GracePeriod: 1}, nil)
	})
	in := func(app string) StartInstanceInput {
		return StartInstanceInput{AppID: app, OrgID: f.orgID, ReleaseID: "r1", InstanceName: app + "-web-1",
			Image: tag, CPUMillis: 500, MemoryMB: 64, Port: 8000}
	}
	if err := f.run(t, f.a.StartInstance, in(leaving), nil); err != nil {
		t.Fatal(err)
	}

	checked, ensured := make(chan struct{}), make(chan struct{})
	var checkedOnce, ensuredOnce sync.Once
	hookAfterUnusedCheck = func(string) {
		checkedOnce.Do(func() { close(checked) })
		select { // let a start that already saw the network go on to create its container
		case <-ensured:
		case <-time.After(time.Second):
		}
	}
	hookBeforeCreate = func(string) {
		ensuredOnce.Do(func() { close(ensured) })
		select { // let a removal that found the network unused go on to remove it
		case <-checked:
		case <-time.After(time.Second):
		}
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) && networkExists(t, f, OrgNetworkName(f.orgID)) {
			time.Sleep(20 * time.Millisecond)
		}
	}

	var wg sync.WaitGroup
	var startErr, removeErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		removeErr = f.run(t, f.a.RemoveInstances, RemoveInstancesInput{AppID: leaving, GracePeriod: 1}, nil)
	}()
	go func() {
		defer wg.Done()
		<-checked // the removal holds the organization's lock by now
		startErr = f.run(t, f.a.StartInstance, in(coming), nil)
	}()
	wg.Wait()
	if err := errors.Join(startErr, removeErr); err != nil {
		t.Fatalf("a start beside the removal of the organization's last container: %v", err)
	}
	if !networkExists(t, f, OrgNetworkName(f.orgID)) {
		t.Fatal("the network is gone while an instance runs on it")
	}
}
