package store

import "testing"

func TestRoutingNamesAppsUnderThePlatformDomain(t *testing.T) {
	dev := Routing{PlatformDomain: "apps.localhost", URLScheme: "http", PublicPort: 8088}
	if got := dev.URL("hello"); got != "http://hello.apps.localhost:8088/" {
		t.Errorf("dev URL %q", got)
	}
	prod := Routing{PlatformDomain: "apps.example.com", URLScheme: "https"}
	if got := prod.URL("hello"); got != "https://hello.apps.example.com/" {
		t.Errorf("production URL %q", got)
	}
	if got := prod.Hostname("hello"); got != "hello.apps.example.com" {
		t.Errorf("host name %q", got)
	}
}
