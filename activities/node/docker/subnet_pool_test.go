package docker

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func mustPool(t *testing.T, cidr string, size int) SubnetPool {
	t.Helper()
	p, err := ParseSubnetPool(cidr, size)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func prefixes(t *testing.T, list ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, s := range list {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestDefaultPoolHoldsThousandsOfOrganizations(t *testing.T) {
	p := DefaultSubnetPool()
	if p.Count() != 16384 {
		t.Fatalf("default pool %s holds %d subnets, want 16384", p, p.Count())
	}
	first, err := p.Allocate(nil)
	if err != nil || first.String() != "10.112.0.0/26" {
		t.Fatalf("first subnet %v %v", first, err)
	}
	if last := p.subnet(p.Count() - 1); last.String() != "10.127.255.192/26" {
		t.Fatalf("last subnet %s", last)
	}
}

func TestAllocateSkipsEverySubnetTakenBySomethingElse(t *testing.T) {
	p := mustPool(t, "10.10.0.0/24", 26) // 4 subnets: .0, .64, .128, .192
	cases := []struct {
		taken []string
		want  string
	}{
		{nil, "10.10.0.0/26"},
		{[]string{"10.10.0.0/26"}, "10.10.0.64/26"},
		// A smaller network inside a subnet takes the whole subnet.
		{[]string{"10.10.0.8/29"}, "10.10.0.64/26"},
		// A larger one takes every subnet it covers.
		{[]string{"10.10.0.0/25"}, "10.10.0.128/26"},
		// Outside the pool: no effect. Not IPv4: no effect.
		{[]string{"10.11.0.0/16", "172.17.0.0/16", "fd00::/64"}, "10.10.0.0/26"},
		// A route that is not aligned to the subnet size (host bits set).
		{[]string{"10.10.0.70/26"}, "10.10.0.0/26"},
		{[]string{"10.10.0.0/26", "10.10.0.64/26", "10.10.0.192/26"}, "10.10.0.128/26"},
	}
	for _, c := range cases {
		got, err := p.Allocate(prefixes(t, c.taken...))
		if err != nil || got.String() != c.want {
			t.Errorf("taken %v: got %v %v, want %s", c.taken, got, err, c.want)
		}
	}
}

func TestExhaustedPoolNamesThePoolAndTheCount(t *testing.T) {
	p := mustPool(t, "10.10.0.0/24", 26)
	for _, taken := range [][]string{
		{"10.10.0.0/26", "10.10.0.64/26", "10.10.0.128/26", "10.10.0.192/26"},
		{"10.0.0.0/8"}, // covers the whole pool
	} {
		_, err := p.Allocate(prefixes(t, taken...))
		if !errors.Is(err, ErrPoolExhausted) {
			t.Fatalf("taken %v: err %v, want ErrPoolExhausted", taken, err)
		}
		for _, want := range []string{"10.10.0.0/24", "4 of 4", "/26", "--network-pool"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
	}
}

func TestParseSubnetPoolRefusesBadRanges(t *testing.T) {
	for _, c := range []struct {
		cidr string
		size int
		want string
	}{
		{"10.112.0.0/12", 26, ""},
		{"172.20.0.0/16", 24, ""},
		{"nonsense", 26, "want an IPv4 range"},
		{"fd00::/48", 64, "IPv4"},
		{"10.112.0.1/12", 26, "host bits"},
		{"8.8.0.0/16", 26, "private"},
		{"10.112.0.0/16", 12, "/16 to /29"},
		{"10.112.0.0/16", 30, "/16 to /29"},
		{"10.0.0.0/8", 29, ""},
		{"10.0.0.0/7", 26, "private"},
	} {
		_, err := ParseSubnetPool(c.cidr, c.size)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s /%d: %v", c.cidr, c.size, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s /%d: err %v, want it to say %q", c.cidr, c.size, err, c.want)
		}
	}
}

// A /proc/net/route as the kernel writes it: the default route, the host's LAN, a VPN route,
// docker0 and a user-defined network's bridge.
const procNetRoute = `Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	00000000	0100000A	0003	0	0	0	00000000	0	0	0
eth0	0000000A	00000000	0001	0	0	0	0000FFFF	0	0	0
tun0	0000700A	00000000	0001	0	0	0	0000FFFF	0	0	0
docker0	000011AC	00000000	0001	0	0	0	0000FFFF	0	0	0
br-0123456789ab	0000710A	00000000	0001	0	0	0	C0FFFFFF	0	0	0
`

func TestHostRoutesLeaveOutTheDefaultRouteAndDockersBridges(t *testing.T) {
	routes, err := parseRoutes(strings.NewReader(procNetRoute))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range routes {
		got = append(got, r.Interface+" "+r.Destination.String())
	}
	want := "eth0 10.0.0.0/16,tun0 10.112.0.0/16"
	if strings.Join(got, ",") != want {
		t.Fatalf("routes %v, want %s", got, want)
	}
}

func TestPoolOverlappingAHostRouteIsRefused(t *testing.T) {
	routes, err := parseRoutes(strings.NewReader(procNetRoute))
	if err != nil {
		t.Fatal(err)
	}
	err = DefaultSubnetPool().CheckHostRoutes(routes)
	if err == nil {
		t.Fatal("the default pool overlaps tun0's 10.112.0.0/16 and was accepted")
	}
	for _, want := range []string{"10.112.0.0/12", "10.112.0.0/16", "tun0", "--network-pool"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// The bridge's 10.113.0.0/26 is Docker's own, not the host's: no collision.
	if err := mustPool(t, "10.113.0.0/16", 26).CheckHostRoutes(routes); err != nil {
		t.Fatalf("a pool overlapping only a Docker bridge was refused: %v", err)
	}
}
