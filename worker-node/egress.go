package workernode

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/worker-node/firewall"
)

// egressCheckEvery is how often the agent makes sure its egress rules are still in place: an
// iptables flush, a firewall service reload or a dockerd restart can remove them.
const egressCheckEvery = 30 * time.Second

// egressPolicy is the node's firewall policy: its tenant pool, the special ranges and the
// control plane's addresses refused, the host's resolvers and the operator's exceptions open.
func egressPolicy(ctx context.Context, cfg Config, pool docker.SubnetPool) (firewall.Policy, error) {
	p := firewall.Policy{Pool: pool.Range, Blocked: append([]netip.Prefix(nil), firewall.SpecialRanges...)}
	for _, host := range controlPlaneHosts(cfg) {
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
		if err != nil {
			// The control plane's name may not resolve yet (it boots later); the special
			// ranges still cover a private address, and the next check adds it.
			slog.WarnContext(ctx, "egress rules: cannot resolve a control plane address yet", "host", host, "err", err)
			continue
		}
		for _, a := range addrs {
			a = a.Unmap()
			if !a.IsLoopback() {
				p.Blocked = append(p.Blocked, netip.PrefixFrom(a, 32))
			}
		}
	}
	p.Resolvers = hostResolvers("/etc/resolv.conf")
	for _, s := range cfg.EgressAllow {
		prefix, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("--egress-allow %q: want a CIDR such as 10.20.0.0/24", s)
		}
		p.Allowed = append(p.Allowed, prefix)
	}
	return p, nil
}

// controlPlaneHosts are the hosts of the API URL and of the node gateway.
func controlPlaneHosts(cfg Config) []string {
	var hosts []string
	if u, err := url.Parse(cfg.APIURL); err == nil && u.Hostname() != "" {
		hosts = append(hosts, u.Hostname())
	}
	if h, _, err := net.SplitHostPort(cfg.GatewayAddress); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	return hosts
}

// hostResolvers are the IPv4 nameservers of a resolv.conf.
func hostResolvers(path string) []netip.Addr {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []netip.Addr
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		if a, err := netip.ParseAddr(fields[1]); err == nil && a.Is4() && !a.IsLoopback() {
			out = append(out, a)
		}
	}
	return out
}

// startEgressRules installs the rules before the agent takes any work, then keeps them in
// place until ctx ends.
func startEgressRules(ctx context.Context, cfg Config, pool docker.SubnetPool) (func(), error) {
	if cfg.NoEgressRules {
		slog.WarnContext(ctx, "egress rules disabled (--no-egress-rules): tenant containers can reach the host and private networks")
		return func() {}, nil
	}
	if err := firewall.Available(); err != nil {
		return nil, err
	}
	policy, err := egressPolicy(ctx, cfg, pool)
	if err != nil {
		return nil, err
	}
	keeper := &firewall.Keeper{Run: firewall.IPTables, Policy: policy}
	if err := keeper.Ensure(ctx); err != nil {
		return nil, fmt.Errorf("install egress rules: %w", err)
	}
	loopCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(egressCheckEvery)
		defer t.Stop()
		for {
			select {
			case <-loopCtx.Done():
				return
			case <-t.C:
				if err := keeper.Ensure(loopCtx); err != nil && loopCtx.Err() == nil {
					slog.ErrorContext(loopCtx, "egress rules check", "err", err)
				}
			}
		}
	}()
	return func() { cancel(); <-done }, nil
}
