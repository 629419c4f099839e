package docker

import (
	"reflect"
	"testing"
)

func TestRootFSOfIsTheRuntimeThatBuiltTheImage(t *testing.T) {
	own := RootFS{ReadOnly: true, Writable: []string{"/own"}}
	php := RootFS{ReadOnly: true, Writable: []string{"/var/run/apache2"}}
	stacks := map[string]RootFS{"php": php, "python": {ReadOnly: true}}
	for _, c := range []struct {
		runtime, builtBy string
		want             RootFS
	}{
		{"node", "node", own},
		{"php", "php", own},
		{"dockerfile", "", own},
		// auto: a repository's own Dockerfile takes auto's setting, a detected stack its stack's.
		{"auto", "", own},
		{"auto", "php", php},
		{"auto", "python", RootFS{ReadOnly: true}},
		{"auto", "node", RootFS{}}, // no setting for the stack: writable
		// The app's runtime changed since its image was built: writable until its next deploy.
		{"node", "", RootFS{}},
		{"node", "php", RootFS{}},
		{"dockerfile", "node", RootFS{}},
		// A run recorded before the setting existed.
		{"", "", RootFS{}},
		{"", "node", RootFS{}},
	} {
		in := StartInstanceInput{RuntimeKind: c.runtime, RootFS: own}
		if c.runtime == "auto" {
			in.StackRootFS = stacks
		}
		if got := rootFSOf(in, c.builtBy); !reflect.DeepEqual(got, c.want) {
			t.Errorf("runtime %q, image built by %q: %+v, want %+v", c.runtime, c.builtBy, got, c.want)
		}
	}
}

func TestInstanceSpecReadOnlyRoot(t *testing.T) {
	in := StartInstanceInput{AppID: "a", OrgID: "o", ReleaseID: "r", InstanceName: "i", Image: "img:1", Network: "n",
		CPUMillis: 250, MemoryMB: 256, Port: 8080}
	tmpfs := "rw,nosuid,nodev,size=128m,mode=1777"

	_, writable, _ := instanceSpec(in, RootFS{}, map[string]string{}, "node-1")
	if writable.ReadonlyRootfs {
		t.Error("a writable runtime's instance has a read-only root")
	}
	if want := map[string]string{"/tmp": tmpfs}; !reflect.DeepEqual(writable.Tmpfs, want) {
		t.Errorf("writable root: tmpfs %v, want %v", writable.Tmpfs, want)
	}

	rootFS := RootFS{ReadOnly: true, Writable: []string{"/var/run/apache2", "/var/lib/php/sessions"}}
	_, readOnly, _ := instanceSpec(in, rootFS, map[string]string{}, "node-1")
	if !readOnly.ReadonlyRootfs {
		t.Error("a read-only runtime's instance has a writable root")
	}
	want := map[string]string{"/tmp": tmpfs, "/var/run/apache2": tmpfs, "/var/lib/php/sessions": tmpfs}
	if !reflect.DeepEqual(readOnly.Tmpfs, want) {
		t.Errorf("read-only root: tmpfs %v, want %v", readOnly.Tmpfs, want)
	}
}

func TestHomeInTmpOnlyWhenNobodySetsIt(t *testing.T) {
	env := map[string]string{"A": "1"}
	homeInTmp(env, []string{"PATH=/bin"})
	if env["HOME"] != "/tmp" {
		t.Errorf("HOME %q, want /tmp", env["HOME"])
	}
	env = map[string]string{"HOME": "/app/home"}
	homeInTmp(env, nil)
	if env["HOME"] != "/app/home" {
		t.Errorf("the app's HOME became %q", env["HOME"])
	}
	env = map[string]string{}
	homeInTmp(env, []string{"HOME=/srv"})
	if _, set := env["HOME"]; set {
		t.Errorf("the image's HOME was overridden with %q", env["HOME"])
	}
}
