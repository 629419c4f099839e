package contract

import (
	"strings"
	"testing"
)

func TestIsHostName(t *testing.T) {
	for name, want := range map[string]bool{
		"worker-1": true, "worker-1.example.com": true, "Worker-1.Example.COM": true, "a.b2": true,
		"x" + strings.Repeat(".abcdefghi", 25): true, // 251 characters
		strings.Repeat("a", 63) + ".com":       true,

		"": false, ".": false, "example.com.": false, ".example.com": false, "a..b": false,
		"-a.com": false, "a-.com": false, "a_b.com": false, "a b": false, "ünï.com": false,
		strings.Repeat("a", 64) + ".com":       false,
		"x" + strings.Repeat(".abcdefghi", 26): false, // 261 characters
		"10.1":                                 false, "256.1.1.1": false, "1.2.3": false, "2130706433": false, "host.0x7f": false,
		"*.example.com": false, "host:80": false, "[::1]": false, "host/x": false,
	} {
		if got := IsHostName(name); got != want {
			t.Errorf("IsHostName(%q) = %v, want %v", name, got, want)
		}
	}
}
