package contract

import "strings"

// IsHostName says whether name is an RFC 1123 host name, in any case: dot-separated labels of
// letters, digits and '-', each 1-63 characters and not starting or ending with '-', at most 253
// characters in all, no trailing dot, and a last label that is not numeric ("10.1" and "0x7f"
// are read as IP addresses by resolvers, so they are no host names).
func IsHostName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	labels := strings.Split(strings.ToLower(name), ".")
	for _, label := range labels {
		if !isDNSLabel(label) {
			return false
		}
	}
	return !isNumericLabel(labels[len(labels)-1])
}
