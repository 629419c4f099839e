// Package firewall keeps tenant containers (apps and build steps) from opening connections to
// anything but the internet and their own organization's network.
//
// Docker already drops traffic between two bridge networks, so one organization's containers
// cannot reach another's. What it allows, and this package refuses, is:
//   - connections to the host itself (its bridge gateway addresses, its public address): the
//     agent, the node's nginx, and on a single-machine install the API, Temporal, Postgres and
//     the registry all listen there. Those packets go through the INPUT chain;
//   - connections to private, link-local and other special ranges beyond the host: the control
//     plane's machines, the cloud metadata address 169.254.169.254, other hosts of the
//     operator's network. Those go through FORWARD, where Docker calls the DOCKER-USER chain
//     before its own rules.
//
// The rules match the node's tenant network pool as source, so containers of anything else on
// the engine (an operator's compose stack, another agent's pool) are left alone. Each chain is
// named after the pool, so several agents on one engine (the e2e suite) keep their own. Replies
// to connections the host opened (nginx to an app, health checks) pass as ESTABLISHED.
package firewall

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
)

// SpecialRanges are the IPv4 destinations a tenant container never needs on the way to the
// internet: private networks (RFC 1918), carrier-grade NAT, link-local (the cloud metadata
// address), loopback, "this network", IETF protocol assignments, benchmarking, multicast and
// reserved space.
var SpecialRanges = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// MetadataAddress is the cloud providers' instance metadata service, inside 169.254.0.0/16.
var MetadataAddress = netip.MustParseAddr("169.254.169.254")

// Policy is what the node's tenant containers may not reach.
type Policy struct {
	// Pool is the node's tenant network pool: every organization network's subnet is in it.
	Pool netip.Prefix
	// Blocked are the forwarded destinations refused: SpecialRanges and the control plane's
	// addresses (which may be public).
	Blocked []netip.Prefix
	// Resolvers are the host's DNS servers. Where Docker hands a container the host's resolver
	// (a private address on many clouds), port 53 on it stays open.
	Resolvers []netip.Addr
	// Allowed are destinations the operator opens on purpose (a package proxy on the private
	// network), checked before Blocked.
	Allowed []netip.Prefix
}

// chainSuffix names the pool's chains: 8 hex characters of its hash, so a chain name stays
// within iptables' 28 characters.
func (p Policy) chainSuffix() string {
	sum := sha256.Sum256([]byte(p.Pool.Masked().String()))
	return strings.ToUpper(hex.EncodeToString(sum[:4]))
}

// ForwardChain is the chain DOCKER-USER sends the pool's forwarded packets to.
func (p Policy) ForwardChain() string { return "SKYPANEL-FWD-" + p.chainSuffix() }

// InputChain is the chain INPUT sends the pool's packets for the host to.
func (p Policy) InputChain() string { return "SKYPANEL-IN-" + p.chainSuffix() }

// ForwardRules are the forward chain's rules, in order, as `iptables -A <chain>` arguments.
func (p Policy) ForwardRules() [][]string {
	rules := [][]string{
		{"-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "RETURN"},
		// Within the pool: the same organization's network. Docker's isolation chains drop the
		// packets that cross to another organization's bridge.
		{"-d", p.Pool.Masked().String(), "-j", "RETURN"},
	}
	for _, r := range p.Resolvers {
		for _, proto := range []string{"udp", "tcp"} {
			// "-m proto" spelled out, as iptables lists the rule, so a listing compares equal.
			rules = append(rules, []string{"-d", netip.PrefixFrom(r, 32).String(), "-p", proto, "-m", proto, "--dport", "53", "-j", "RETURN"})
		}
	}
	for _, a := range p.Allowed {
		rules = append(rules, []string{"-d", a.Masked().String(), "-j", "RETURN"})
	}
	for _, b := range p.Blocked {
		// REJECT, not DROP: the tenant's connect fails at once instead of hanging.
		rules = append(rules, []string{"-d", b.Masked().String(), "-j", "REJECT"})
	}
	return rules
}

// InputRules are the input chain's rules: nothing the pool opens reaches the host.
func (p Policy) InputRules() [][]string {
	return [][]string{
		{"-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "RETURN"},
		{"-j", "REJECT"},
	}
}

// Runner runs iptables with args and answers its combined output.
type Runner func(ctx context.Context, args ...string) (string, error)

// IPTables runs the host's iptables, waiting for the xtables lock Docker also takes.
func IPTables(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "iptables", append([]string{"-w", "5"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("iptables %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Install puts the policy in place, or back in place: it creates the chains, refills one whose
// rules differ, and inserts the jumps from DOCKER-USER and INPUT unless they are there. It is
// cheap when nothing changed, so the agent calls it again periodically: a flushed table or an
// engine that recreated DOCKER-USER gets the rules back. It answers whether it changed anything.
func Install(ctx context.Context, run Runner, p Policy) (bool, error) {
	if !p.Pool.IsValid() || !p.Pool.Addr().Is4() {
		return false, fmt.Errorf("firewall: the pool %s is not an IPv4 prefix", p.Pool)
	}
	changed := false
	for _, chain := range []struct {
		name  string
		rules [][]string
	}{{p.ForwardChain(), p.ForwardRules()}, {p.InputChain(), p.InputRules()}} {
		c, err := ensureChain(ctx, run, chain.name, chain.rules)
		if err != nil {
			return changed, err
		}
		changed = changed || c
	}
	// DOCKER-USER exists once dockerd has started; made here first, it is the one dockerd
	// then jumps to.
	if _, err := run(ctx, "-S", "DOCKER-USER"); err != nil {
		if _, err := run(ctx, "-N", "DOCKER-USER"); err != nil {
			return changed, err
		}
		changed = true
	}
	for _, jump := range []struct{ from, to string }{{"DOCKER-USER", p.ForwardChain()}, {"INPUT", p.InputChain()}} {
		rule := []string{"-s", p.Pool.Masked().String(), "-j", jump.to}
		if _, err := run(ctx, append([]string{"-C", jump.from}, rule...)...); err == nil {
			continue
		}
		if _, err := run(ctx, append([]string{"-I", jump.from, "1"}, rule...)...); err != nil {
			return changed, err
		}
		changed = true
	}
	return changed, nil
}

// ensureChain makes chain hold exactly rules.
func ensureChain(ctx context.Context, run Runner, chain string, rules [][]string) (bool, error) {
	current, err := run(ctx, "-S", chain)
	if err != nil {
		if _, err := run(ctx, "-N", chain); err != nil {
			return false, err
		}
		current = ""
	}
	want := make([]string, 0, len(rules))
	for _, r := range rules {
		want = append(want, strings.Join(append([]string{"-A", chain}, r...), " "))
	}
	if slices.Equal(listedRules(current, chain), want) {
		return false, nil
	}
	if _, err := run(ctx, "-F", chain); err != nil {
		return false, err
	}
	for _, r := range rules {
		if _, err := run(ctx, append([]string{"-A", chain}, r...)...); err != nil {
			return true, err
		}
	}
	return true, nil
}

// listedRules are the `-A` lines of `iptables -S chain`, normalised the way iptables prints
// what was added: "-j REJECT" is listed with its default "--reject-with icmp-port-unreachable".
func listedRules(listing, chain string) []string {
	var rules []string
	for _, line := range strings.Split(listing, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "-A "+chain+" ") {
			continue
		}
		rules = append(rules, strings.TrimSuffix(line, " --reject-with icmp-port-unreachable"))
	}
	return rules
}

// Keeper re-installs the policy when something removed it, logging what it did.
type Keeper struct {
	Run    Runner
	Policy Policy
	// installed is false until the first Install went through.
	installed bool
}

// Ensure installs the policy (again) and logs a re-installation.
func (k *Keeper) Ensure(ctx context.Context) error {
	changed, err := Install(ctx, k.Run, k.Policy)
	if err != nil {
		return err
	}
	switch {
	case !k.installed:
		slog.InfoContext(ctx, "egress rules installed", "pool", k.Policy.Pool.String(), "forward_chain", k.Policy.ForwardChain(), "input_chain", k.Policy.InputChain())
	case changed:
		slog.WarnContext(ctx, "egress rules were missing or changed; re-installed", "pool", k.Policy.Pool.String())
	}
	k.installed = true
	return nil
}

// ErrNoIPTables is returned when the host has no iptables: the agent refuses to run tenants
// without the rules unless told to (--no-egress-rules).
var ErrNoIPTables = errors.New("iptables not found: install it (Debian package iptables) or start the agent with --no-egress-rules when the host's firewall is managed otherwise")

// Available tells whether iptables can be run.
func Available() error {
	if _, err := exec.LookPath("iptables"); err != nil {
		return ErrNoIPTables
	}
	return nil
}
