package apiserver

import "testing"

func TestVersionLessComparesNumbersNotText(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{
		{"9.6", "10.11", true}, {"10.11", "9.6", false}, {"15", "16", true}, {"7", "7.2", true}, {"7.2", "7", false}, {"15", "15", false},
	} {
		if got := versionLess(c.a, c.b); got != c.less {
			t.Errorf("versionLess(%q, %q) = %v, want %v", c.a, c.b, got, c.less)
		}
	}
}
