package contract

import (
	"fmt"
	"strings"
	"testing"
)

func TestCheckWritablePath(t *testing.T) {
	for _, ok := range []string{"/var/run/apache2", "/var/lock/apache2", "/var/lib/php/sessions", "/app/storage", "/home/node", "/tmpx", "/a.b/c_d-e@f+g"} {
		if err := CheckWritablePath(ok); err != nil {
			t.Errorf("CheckWritablePath(%q): %v", ok, err)
		}
	}
	for bad, why := range map[string]string{
		"":                             "empty",
		"/":                            "whole root",
		"var/run":                      "not absolute",
		"./var":                        "not absolute",
		"/var/../etc":                  `".." element`,
		"/..":                          `".." element`,
		"/var/./run":                   `"." element`,
		"/var//run":                    "not clean",
		"/var/run/":                    "not clean",
		"/proc":                        "/proc",
		"/proc/sys/kernel":             "/proc",
		"/sys":                         "/sys",
		"/sys/fs/cgroup":               "/sys",
		"/dev":                         "/dev",
		"/dev/shm":                     "/dev",
		"/tmp":                         "always writable",
		"/tmp/cache":                   "always writable",
		"/var/run,size=1g":             "letters, digits",
		"/var/run:/x":                  "letters, digits",
		"/var/run apache":              "letters, digits",
		"/var/\nrun":                   "letters, digits",
		"/" + strings.Repeat("a", 200): "longer than",
	} {
		err := CheckWritablePath(bad)
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("CheckWritablePath(%q) = %v, want an error saying %q", bad, err, why)
		}
	}
}

func TestRootFSCheck(t *testing.T) {
	many := make([]string, MaxWritablePaths+1)
	for i := range many {
		many[i] = fmt.Sprintf("/data/%d", i)
	}
	for _, c := range []struct {
		r    RootFS
		want string // "" for valid
	}{
		{RootFS{}, ""},
		{RootFS{ReadOnly: true}, ""},
		{RootFS{ReadOnly: true, Writable: many[:MaxWritablePaths]}, ""},
		{RootFS{ReadOnly: true, Writable: many}, "at most 8"},
		{RootFS{ReadOnly: true, Writable: []string{"/a", "/a"}}, "named twice"},
		{RootFS{ReadOnly: true, Writable: []string{"/a", "/proc/1"}}, "/proc"},
		{RootFS{Writable: []string{"/a"}}, "read-only root only"},
	} {
		err := c.r.Check()
		if (err == nil) != (c.want == "") || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v.Check() = %v, want %q", c.r, err, c.want)
		}
	}
}

func TestDefaultRootFSIsValidAndWritableForArbitraryImages(t *testing.T) {
	for _, kind := range []string{"auto", "node", "python", "php", "dockerfile"} {
		r := DefaultRootFS(kind)
		if err := r.Check(); err != nil {
			t.Errorf("DefaultRootFS(%s): %v", kind, err)
		}
		if wantReadOnly := kind == "node" || kind == "python" || kind == "php"; r.ReadOnly != wantReadOnly {
			t.Errorf("DefaultRootFS(%s).ReadOnly = %v, want %v", kind, r.ReadOnly, wantReadOnly)
		}
	}
}
