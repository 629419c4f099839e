package docker

import (
	"errors"
	"fmt"
	"net/netip"
)

// Defaults of the node's tenant network pool. Docker's own default address pools hold about 31
// networks, so the agent gives every organization's network an explicit subnet out of a pool of
// its own instead. 10.112.0.0/12 (10.112.0.0-10.127.255.255) lies between Kubernetes' default
// service range (10.96.0.0/12) and Google Cloud's auto-mode VPC ranges (10.128.0.0/9), and
// outside Docker's defaults (172.17.0.0/16-172.31.0.0/16, 192.168.0.0/16). A /26 per
// organization (62 addresses: apps, instances and databases of one organization on one node)
// gives 16,384 organizations per node.
const (
	DefaultSubnetPoolRange = "10.112.0.0/12"
	DefaultSubnetPoolSize  = 26
)

// maxSubnetPrefix: subnets no smaller than /29 (6 usable addresses). With private ranges of
// /8 at most, a pool holds at most 2^21 subnets, so a scan for a free one stays cheap.
const maxSubnetPrefix = 29

// SubnetPool is the private IPv4 range the node's organization networks are cut from, in
// subnets of one prefix length.
type SubnetPool struct {
	Range netip.Prefix
	Size  int // prefix length of each organization's subnet, e.g. 26
}

// DefaultSubnetPool is the pool a node uses unless configured otherwise.
func DefaultSubnetPool() SubnetPool {
	p, err := ParseSubnetPool(DefaultSubnetPoolRange, DefaultSubnetPoolSize)
	if err != nil {
		panic(err)
	}
	return p
}

// ParseSubnetPool validates a pool given as a CIDR range and a subnet prefix length.
func ParseSubnetPool(cidr string, size int) (SubnetPool, error) {
	prefix, err := netip.ParsePrefix(cidr)
	if err != nil {
		return SubnetPool{}, fmt.Errorf("network pool %q: want an IPv4 range such as %s", cidr, DefaultSubnetPoolRange)
	}
	if !prefix.Addr().Is4() {
		return SubnetPool{}, fmt.Errorf("network pool %s: want an IPv4 range", cidr)
	}
	if prefix.Masked() != prefix {
		return SubnetPool{}, fmt.Errorf("network pool %s: host bits are set; did you mean %s?", cidr, prefix.Masked())
	}
	if !isPrivateRange(prefix) {
		return SubnetPool{}, fmt.Errorf("network pool %s: want a private range (10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)", cidr)
	}
	if size < prefix.Bits() || size > maxSubnetPrefix {
		return SubnetPool{}, fmt.Errorf("network pool subnet size /%d: want /%d to /%d for the range %s", size, prefix.Bits(), maxSubnetPrefix, cidr)
	}
	return SubnetPool{Range: prefix, Size: size}, nil
}

var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
}

// isPrivateRange says whether the whole of p lies inside one of RFC 1918's private ranges.
func isPrivateRange(p netip.Prefix) bool {
	for _, r := range privateRanges {
		if r.Contains(p.Addr()) && p.Bits() >= r.Bits() {
			return true
		}
	}
	return false
}

func (p SubnetPool) String() string { return fmt.Sprintf("%s (/%d subnets)", p.Range, p.Size) }

// Count is how many subnets the pool holds.
func (p SubnetPool) Count() int { return 1 << (p.Size - p.Range.Bits()) }

// subnet returns the pool's i-th subnet.
func (p SubnetPool) subnet(i int) netip.Prefix {
	u := ipv4Uint(p.Range.Addr()) + uint32(i)<<(32-p.Size)
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)}), p.Size)
}

// index returns the index of the subnet holding addr.
func (p SubnetPool) index(addr netip.Addr) int {
	return int((ipv4Uint(addr) - ipv4Uint(p.Range.Addr())) >> (32 - p.Size))
}

func ipv4Uint(addr netip.Addr) uint32 {
	a := addr.As4()
	return uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
}

// ErrPoolExhausted is wrapped by Allocate's error when no subnet of the pool is free.
var ErrPoolExhausted = errors.New("network pool exhausted")

// Allocate returns the first subnet of the pool that overlaps none of taken (the subnets of the
// engine's networks, and the host's routes).
func (p SubnetPool) Allocate(taken []netip.Prefix) (netip.Prefix, error) {
	count := p.Count()
	used := make([]bool, count)
	inUse := 0
	mark := func(i int) {
		if !used[i] {
			used[i] = true
			inUse++
		}
	}
	for _, t := range taken {
		if !t.Addr().Is4() || !t.Overlaps(p.Range) {
			continue
		}
		t = t.Masked()
		if t.Bits() <= p.Range.Bits() { // covers the whole pool
			return netip.Prefix{}, p.exhausted(count)
		}
		first := p.index(t.Addr())
		if t.Bits() >= p.Size { // inside one subnet
			mark(first)
			continue
		}
		for i := first; i < first+(1<<(p.Size-t.Bits())) && i < count; i++ {
			mark(i)
		}
	}
	for i, u := range used {
		if !u {
			return p.subnet(i), nil
		}
	}
	return netip.Prefix{}, p.exhausted(inUse)
}

func (p SubnetPool) exhausted(inUse int) error {
	return fmt.Errorf("%w: all %d of %d /%d subnets of %s are in use on this node; widen the node's --network-pool or move organizations to another node",
		ErrPoolExhausted, inUse, p.Count(), p.Size, p.Range)
}
