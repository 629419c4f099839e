package main

import (
	"slices"
	"testing"
)

func TestGatewayHostsNameThePublicHostAndLoopback(t *testing.T) {
	if got := gatewayHosts(nil, "gateway.example.com:7243"); !slices.Equal(got, []string{"gateway.example.com", "localhost", "127.0.0.1", "::1"}) {
		t.Errorf("from the public address: %v", got)
	}
	if got := gatewayHosts([]string{"10.0.0.5", "LOCALHOST"}, "gateway.example.com:7243"); !slices.Equal(got, []string{"10.0.0.5", "LOCALHOST", "127.0.0.1", "::1"}) {
		t.Errorf("given hosts: %v", got)
	}
}

func TestPublicGatewayAddressIsThePublicHostOnTheGatewaysPort(t *testing.T) {
	for _, tc := range []struct{ publicURL, listen, want string }{
		{"https://panel.example.com", ":7243", "panel.example.com:7243"},
		{"https://[2001:db8::1]:8443/panel", "0.0.0.0:9000", "[2001:db8::1]:9000"},
		{"", ":7243", ""},
		{"https://panel.example.com", ":0", ""},
	} {
		if got := publicGatewayAddress(tc.publicURL, tc.listen); got != tc.want {
			t.Errorf("publicGatewayAddress(%q, %q) = %q, want %q", tc.publicURL, tc.listen, got, tc.want)
		}
	}
}
