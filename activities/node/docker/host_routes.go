package docker

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"strings"
)

// HostRoute is one IPv4 route of the host's main routing table.
type HostRoute struct {
	Destination netip.Prefix
	Interface   string
}

// routesFile is the kernel's IPv4 routing table; a variable so tests can point it elsewhere.
var routesFile = "/proc/net/route"

// dockerBridge matches the interfaces Docker makes for its bridge networks: docker0 and
// br-<first 12 hex digits of the network id>. Their routes are the networks' own, not the host's.
var dockerBridge = regexp.MustCompile(`^(docker0|br-[0-9a-f]{12})$`)

// HostRoutes reads the host's IPv4 routes, leaving out the default route and the routes of
// Docker's bridges.
func HostRoutes() ([]HostRoute, error) {
	f, err := os.Open(routesFile)
	if err != nil {
		return nil, fmt.Errorf("read the host's routes: %w", err)
	}
	defer f.Close()
	routes, err := parseRoutes(f)
	if err != nil {
		return nil, fmt.Errorf("read the host's routes from %s: %w", routesFile, err)
	}
	return routes, nil
}

// parseRoutes reads /proc/net/route: a header, then one line per route with the interface,
// the destination and the mask as little-endian hex among its columns.
func parseRoutes(r io.Reader) ([]HostRoute, error) {
	var routes []HostRoute
	sc := bufio.NewScanner(r)
	header := true
	for sc.Scan() {
		if header {
			header = false
			continue
		}
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 {
			continue
		}
		iface, destHex, maskHex := fields[0], fields[1], fields[7]
		dest, err := hexIPv4(destHex)
		if err != nil {
			return nil, err
		}
		mask, err := hexIPv4(maskHex)
		if err != nil {
			return nil, err
		}
		bits := maskBits(mask)
		if bits == 0 || dockerBridge.MatchString(iface) {
			continue // the default route; a Docker network's own bridge
		}
		routes = append(routes, HostRoute{Destination: netip.PrefixFrom(dest, bits).Masked(), Interface: iface})
	}
	return routes, sc.Err()
}

func hexIPv4(s string) (netip.Addr, error) {
	raw, err := hex.DecodeString(s)
	if err != nil || len(raw) != 4 {
		return netip.Addr{}, fmt.Errorf("bad address %q", s)
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], binary.LittleEndian.Uint32(raw))
	return netip.AddrFrom4(b), nil
}

func maskBits(mask netip.Addr) int {
	u := ipv4Uint(mask)
	bits := 0
	for u&0x80000000 != 0 {
		bits++
		u <<= 1
	}
	return bits
}

// CheckHostRoutes refuses a pool that overlaps one of the host's own routes: containers given
// such addresses would shadow, or be shadowed by, a network the host already reaches.
func (p SubnetPool) CheckHostRoutes(routes []HostRoute) error {
	for _, r := range routes {
		if r.Destination.Overlaps(p.Range) {
			return fmt.Errorf("the tenant network pool %s overlaps this host's route to %s (interface %s): choose another private range with --network-pool (SKYPANEL_NETWORK_POOL)",
				p.Range, r.Destination, r.Interface)
		}
	}
	return nil
}
