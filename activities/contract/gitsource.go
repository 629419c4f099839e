package contract

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"
)

// maxURLLength bounds what we hand to git; real repository URLs are far shorter.
const maxURLLength = 2048

// blockedPrefixes are address ranges a clone must never reach besides those netip classifies
// itself (loopback, private, link-local, multicast, unspecified): carrier-grade NAT, "this
// network", IETF protocol assignments, benchmarking, reserved and NAT64 ranges.
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// ValidateRemoteURL accepts only what a node may clone: an https URL of a public host, without
// credentials, query or fragment. With allowLoopbackHTTP (the `skypanel dev` case) it also
// accepts http and https URLs whose host is localhost or a loopback address. It never resolves
// DNS or connects: a host name is judged by its spelling only.
func ValidateRemoteURL(raw string, allowLoopbackHTTP bool) error {
	if raw == "" {
		return errors.New("the git URL is empty")
	}
	if len(raw) > maxURLLength {
		return fmt.Errorf("the git URL is longer than %d characters", maxURLLength)
	}
	if strings.HasPrefix(raw, "-") {
		return errors.New("the git URL must not start with '-'")
	}
	for _, r := range raw {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return errors.New("the git URL must not contain spaces or control characters")
		}
	}
	if strings.Contains(raw, `\`) {
		return errors.New("the git URL must not contain a backslash")
	}
	if authority, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(raw, "https://"), "http://"), "/"); strings.Contains(authority, "%") {
		// Go decodes percent-escapes in a host, git and curl do not: judge only plain host names.
		return errors.New("the git URL's host must not contain percent-encoding")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("the git URL is not a valid URL (use https://host/owner/repo.git)")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		if u.Scheme == "" {
			return errors.New("the git URL must start with https://")
		}
		return fmt.Errorf("the git URL uses the %q transport; only https:// is allowed", u.Scheme)
	}
	if u.Opaque != "" {
		return errors.New("the git URL must have the form https://host/path")
	}
	if u.User != nil {
		return errors.New("the git URL must not contain a user name or password; SkyPanel clones public repositories")
	}
	if u.RawQuery != "" || u.ForceQuery {
		return errors.New("the git URL must not contain a query string ('?')")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return errors.New("the git URL must not contain a fragment ('#')")
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("the git URL has no host name")
	}
	if port := u.Port(); port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return errors.New("the git URL has an invalid port")
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return errors.New("the git URL has an empty port")
	}

	loopback := isLoopbackHost(host)
	if allowLoopbackHTTP && loopback {
		return nil
	}
	if u.Scheme != "https" {
		if loopback {
			return errors.New("http:// git URLs are allowed only for loopback hosts in development; use https://")
		}
		return errors.New("the git URL must use https://")
	}
	return validatePublicHost(host)
}

// isLoopbackHost says whether host is "localhost" or a loopback IP literal.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Zone() == "" && addr.Unmap().IsLoopback()
}

// validatePublicHost rejects IP literals of non-public ranges and host names that only make
// sense inside a private network.
func validatePublicHost(host string) error {
	if strings.Contains(host, "%") {
		return errors.New("the git URL must not use an IPv6 zone")
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		return validatePublicAddr(addr)
	}
	name := strings.ToLower(host)
	if strings.HasSuffix(name, ".") {
		return errors.New("the git URL's host name must not end with a dot")
	}
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return errors.New("the git URL points at this machine (localhost); use a public host")
	}
	for _, suffix := range []string{".local", ".internal"} {
		if strings.HasSuffix(name, suffix) {
			return fmt.Errorf("the git URL's host %q is a private network name (*%s); use a public host", host, suffix)
		}
	}
	return validateDNSName(name)
}

func validatePublicAddr(addr netip.Addr) error {
	addr = addr.Unmap()
	switch {
	case addr.IsLoopback():
		return errors.New("the git URL points at a loopback address; use a public host")
	case addr.IsUnspecified():
		return errors.New("the git URL points at an unspecified address (0.0.0.0 or ::)")
	case addr.IsPrivate():
		return errors.New("the git URL points at a private network address; use a public host")
	case addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast():
		return errors.New("the git URL points at a link-local address (such as the cloud metadata service)")
	case addr.IsMulticast() || addr.IsInterfaceLocalMulticast():
		return errors.New("the git URL points at a multicast address")
	}
	if addr.Is4() && addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return errors.New("the git URL points at the broadcast address")
	}
	for _, p := range blockedPrefixes {
		if p.Contains(addr) {
			return fmt.Errorf("the git URL points at a reserved address range (%s)", p)
		}
	}
	return nil
}

// validateDNSName checks RFC 1123 host name syntax, and refuses names whose last label is
// numeric: curl would read "127.1" or "2130706433" as an IP address.
func validateDNSName(name string) error {
	if len(name) > 253 {
		return errors.New("the git URL's host name is longer than 253 characters")
	}
	labels := strings.Split(name, ".")
	for _, label := range labels {
		if !isDNSLabel(label) {
			return fmt.Errorf("the git URL's host name %q is not a valid host name", name)
		}
	}
	last := labels[len(labels)-1]
	if isNumericLabel(last) {
		return fmt.Errorf("the git URL's host %q looks like a numeric IP address; write a host name or a dotted IPv4 address", name)
	}
	return nil
}

func isDNSLabel(label string) bool {
	if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
		return false
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func isNumericLabel(label string) bool {
	if strings.HasPrefix(label, "0x") {
		return true
	}
	for i := 0; i < len(label); i++ {
		if label[i] < '0' || label[i] > '9' {
			return false
		}
	}
	return true
}

// maxBranchLength matches what the API accepts; git itself allows longer refs.
const maxBranchLength = 255

// ValidateBranch applies git check-ref-format's rules for a branch name (refs/heads/<name>).
func ValidateBranch(name string) error {
	switch {
	case name == "":
		return errors.New("the branch name is empty")
	case len(name) > maxBranchLength:
		return fmt.Errorf("the branch name is longer than %d characters", maxBranchLength)
	case strings.HasPrefix(name, "-"):
		return errors.New("the branch name must not start with '-'")
	case name == "@":
		return errors.New("the branch name must not be '@'")
	case name == "HEAD":
		return errors.New("the branch name must not be 'HEAD'")
	case strings.HasPrefix(name, "/"):
		return errors.New("the branch name must not start with '/'")
	case strings.HasSuffix(name, "/"):
		return errors.New("the branch name must not end with '/'")
	case strings.HasSuffix(name, "."):
		return errors.New("the branch name must not end with '.'")
	case strings.Contains(name, ".."):
		return errors.New("the branch name must not contain '..'")
	case strings.Contains(name, "//"):
		return errors.New("the branch name must not contain '//'")
	case strings.Contains(name, "@{"):
		return errors.New("the branch name must not contain '@{'")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return errors.New("the branch name must not contain control characters")
		}
		if r == ' ' {
			return errors.New("the branch name must not contain spaces")
		}
		if strings.ContainsRune(`~^:?*[\`, r) {
			return fmt.Errorf("the branch name must not contain %q", r)
		}
	}
	for _, part := range strings.Split(name, "/") {
		if strings.HasPrefix(part, ".") {
			return errors.New("no part of the branch name may start with '.'")
		}
		if strings.HasSuffix(part, ".lock") {
			return errors.New("no part of the branch name may end with '.lock'")
		}
	}
	return nil
}

// ValidCommit says whether commit is a full commit id: 40 (SHA-1) or 64 (SHA-256) lower-case
// hex digits. Abbreviations and ref names are refused: a deploy names exactly one commit.
func ValidCommit(commit string) bool {
	if len(commit) != 40 && len(commit) != 64 {
		return false
	}
	for _, c := range commit {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
