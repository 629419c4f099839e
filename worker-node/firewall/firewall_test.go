package firewall

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// testPolicy uses a pool nothing on this machine uses (part of the benchmarking range), so its
// rules match no packet of anyone else.
func testPolicy() Policy {
	return Policy{
		Pool:      netip.MustParsePrefix("198.19.254.0/24"),
		Blocked:   append(append([]netip.Prefix(nil), SpecialRanges...), netip.MustParsePrefix("203.0.113.7/32")),
		Resolvers: []netip.Addr{netip.MustParseAddr("10.255.255.53")},
		Allowed:   []netip.Prefix{netip.MustParsePrefix("10.20.0.0/24")},
	}
}

func TestForwardRulesOrder(t *testing.T) {
	p := testPolicy()
	rules := p.ForwardRules()
	index := func(want string) int {
		return slices.IndexFunc(rules, func(r []string) bool { return strings.Join(r, " ") == want })
	}
	established := index("-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN")
	ownPool := index("-d 198.19.254.0/24 -j RETURN")
	dns := index("-d 10.255.255.53/32 -p udp -m udp --dport 53 -j RETURN")
	allowed := index("-d 10.20.0.0/24 -j RETURN")
	private := index("-d 10.0.0.0/8 -j REJECT")
	metadata := index("-d 169.254.0.0/16 -j REJECT")
	controlPlane := index("-d 203.0.113.7/32 -j REJECT")
	for name, i := range map[string]int{"established": established, "own pool": ownPool, "dns": dns, "allowed": allowed,
		"private": private, "metadata": metadata, "control plane": controlPlane} {
		if i < 0 {
			t.Fatalf("rule %s missing from %v", name, rules)
		}
	}
	// What passes must come before what is refused, or the exceptions never apply.
	if !(established < private && ownPool < private && dns < private && allowed < private) {
		t.Errorf("an exception comes after the refusals: %v", rules)
	}
	if !specialRangesContain(MetadataAddress) {
		t.Error("the metadata address is not refused")
	}
	if got := p.InputRules(); strings.Join(got[len(got)-1], " ") != "-j REJECT" {
		t.Errorf("input chain does not end refusing: %v", got)
	}
}

func specialRangesContain(a netip.Addr) bool {
	return slices.ContainsFunc(SpecialRanges, func(p netip.Prefix) bool { return p.Contains(a) })
}

func TestChainNamesFitIPTables(t *testing.T) {
	p := testPolicy()
	for _, name := range []string{p.ForwardChain(), p.InputChain()} {
		if len(name) > 28 {
			t.Errorf("chain %s is longer than iptables allows", name)
		}
	}
	other := p
	other.Pool = netip.MustParsePrefix("10.114.0.0/16")
	if other.ForwardChain() == p.ForwardChain() {
		t.Error("two pools share a chain")
	}
}

// TestInstallOnTheHost runs the real iptables: the rules go in, a second Install changes
// nothing, and a flushed chain or a deleted jump comes back.
func TestInstallOnTheHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for iptables")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("no iptables on this machine")
	}
	ctx := context.Background()
	p := testPolicy()
	t.Cleanup(func() { removePolicy(ctx, p) })
	changed, err := Install(ctx, IPTables, p)
	if err != nil {
		t.Fatal(err)
	}
	if !changed {
		t.Fatal("the first Install changed nothing")
	}
	if changed, err := Install(ctx, IPTables, p); err != nil || changed {
		listing, _ := IPTables(ctx, "-S", p.ForwardChain())
		t.Fatalf("a second Install changed something (%v, %v); the chain lists:\n%s", changed, err, listing)
	}
	if _, err := IPTables(ctx, "-C", "DOCKER-USER", "-s", "198.19.254.0/24", "-j", p.ForwardChain()); err != nil {
		t.Fatalf("no jump from DOCKER-USER: %v", err)
	}
	if _, err := IPTables(ctx, "-C", "INPUT", "-s", "198.19.254.0/24", "-j", p.InputChain()); err != nil {
		t.Fatalf("no jump from INPUT: %v", err)
	}

	// Something flushes the chain and removes a jump: the next Install puts both back.
	if _, err := IPTables(ctx, "-F", p.ForwardChain()); err != nil {
		t.Fatal(err)
	}
	if _, err := IPTables(ctx, "-D", "INPUT", "-s", "198.19.254.0/24", "-j", p.InputChain()); err != nil {
		t.Fatal(err)
	}
	if changed, err := Install(ctx, IPTables, p); err != nil || !changed {
		t.Fatalf("Install after a flush: changed=%v err=%v", changed, err)
	}
	listing, err := IPTables(ctx, "-S", p.ForwardChain())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(listedRules(listing, p.ForwardChain())), len(p.ForwardRules()); got != want {
		t.Errorf("after re-install the chain has %d rules, want %d:\n%s", got, want, listing)
	}
	if _, err := IPTables(ctx, "-C", "INPUT", "-s", "198.19.254.0/24", "-j", p.InputChain()); err != nil {
		t.Errorf("the INPUT jump was not put back: %v", err)
	}
}

func removePolicy(ctx context.Context, p Policy) {
	_, _ = IPTables(ctx, "-D", "DOCKER-USER", "-s", p.Pool.String(), "-j", p.ForwardChain())
	_, _ = IPTables(ctx, "-D", "INPUT", "-s", p.Pool.String(), "-j", p.InputChain())
	for _, c := range []string{p.ForwardChain(), p.InputChain()} {
		_, _ = IPTables(ctx, "-F", c)
		_, _ = IPTables(ctx, "-X", c)
	}
}
