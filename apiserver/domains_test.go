package apiserver

import (
	"strings"
	"testing"
)

// What a customer types becomes the host name nginx gets, or a problem naming the field; no
// value with a character nginx's config could read as syntax gets through.
func TestNormalizeDomain(t *testing.T) {
	s := &Server{cfg: Config{PlatformDomain: "apps.example.net"}}
	good := map[string]string{
		"www.example.com":           "www.example.com",
		"WWW.Example.COM":           "www.example.com",
		"bücher.example":            "xn--bcher-kva.example",
		"xn--bcher-kva.example":     "xn--bcher-kva.example",
		"a-b.c-d.example.org":       "a-b.c-d.example.org",
		"apps.example.net.evil.com": "apps.example.net.evil.com",
	}
	for in, want := range good {
		got, detail := s.normalizeDomain(in, "body.domain")
		if detail != nil || got != want {
			t.Errorf("%q: %q %+v, want %q", in, got, detail, want)
		}
	}
	bad := []string{
		"a;b.com", "x.com{", "-x.com", "x-.com", strings.Repeat("a", 300) + ".com", strings.Repeat("a", 64) + ".com",
		"*.example.com", "example.*", "app.apps.example.net", "apps.example.net", "APPS.example.net",
		"localhost", "", " x.com", "x.com ", "x.com.", "x..com", "10.0.0.1", "x.com/path", "x.com:443",
		"x.com\nserver_name evil", "x_y.com", "$host.com", "x.com;", "x.com}", "'x.com'",
	}
	for _, in := range bad {
		got, detail := s.normalizeDomain(in, "body.domain")
		if detail == nil {
			t.Errorf("%q accepted as %q", in, got)
			continue
		}
		if detail.Location != "body.domain" || detail.Message == "" {
			t.Errorf("%q: problem detail %+v does not name the field", in, detail)
		}
	}
}
