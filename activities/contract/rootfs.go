package contract

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// RootFS is how an app's containers treat their root filesystem, a setting of the runtime that
// built the app's image. ReadOnly keeps the image's files as they are: only /tmp and each of
// Writable can be written, every one a size-bounded tmpfs that starts empty (and hides what the
// image has there). Writable means nothing without ReadOnly: the whole root is writable then.
type RootFS struct {
	ReadOnly bool     `json:",omitempty"`
	Writable []string `json:",omitempty"`
}

// MaxWritablePaths bounds how many tmpfs mounts a runtime may ask for beside /tmp.
const MaxWritablePaths = 8

// maxWritablePathLen keeps a path short enough for every mount table and log line.
const maxWritablePathLen = 200

// writablePathChars are the characters a writable path may use: nothing Docker's mount syntax
// treats specially (':' and ',') and nothing a shell or a log would show differently.
var writablePathChars = regexp.MustCompile(`^[A-Za-z0-9._@+/-]+$`)

// kernelTrees are the kernel's own file systems: a tmpfs over one of them would hide what the
// runtime (and the app's sandbox) relies on, so no runtime may name one.
var kernelTrees = []string{"/proc", "/sys", "/dev"}

// CheckWritablePath tells why p cannot be a writable path of a read-only root, or nil: it must
// be absolute and clean (no "..", no "//", no trailing "/"), not the root itself, not /tmp (which
// always is), and outside /proc, /sys and /dev.
func CheckWritablePath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("a writable path is empty")
	case len(p) > maxWritablePathLen:
		return fmt.Errorf("a writable path is longer than %d characters", maxWritablePathLen)
	case !writablePathChars.MatchString(p):
		return fmt.Errorf("writable path %q: use letters, digits and . _ @ + - / only", p)
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("writable path %q is not absolute", p)
	case p == "/":
		return fmt.Errorf("writable path \"/\" is the whole root: make the root writable instead")
	}
	for _, part := range strings.Split(p, "/") {
		if part == "." || part == ".." {
			return fmt.Errorf("writable path %q has a %q element", p, part)
		}
	}
	if path.Clean(p) != p {
		return fmt.Errorf("writable path %q is not clean: write it %q", p, path.Clean(p))
	}
	if p == "/tmp" || strings.HasPrefix(p, "/tmp/") {
		return fmt.Errorf("writable path %q: /tmp is always writable", p)
	}
	for _, tree := range kernelTrees {
		if p == tree || strings.HasPrefix(p, tree+"/") {
			return fmt.Errorf("writable path %q is in %s, the kernel's: not allowed", p, tree)
		}
	}
	return nil
}

// Check tells what is wrong with r, or nil: at most MaxWritablePaths valid, distinct paths, and
// none without ReadOnly.
func (r RootFS) Check() error {
	if !r.ReadOnly && len(r.Writable) > 0 {
		return fmt.Errorf("writable paths apply to a read-only root only")
	}
	if len(r.Writable) > MaxWritablePaths {
		return fmt.Errorf("%d writable paths: at most %d", len(r.Writable), MaxWritablePaths)
	}
	seen := make(map[string]bool, len(r.Writable))
	for _, p := range r.Writable {
		if err := CheckWritablePath(p); err != nil {
			return err
		}
		if seen[p] {
			return fmt.Errorf("writable path %q is named twice", p)
		}
		seen[p] = true
	}
	return nil
}

// DefaultRootFS is a runtime kind's setting when its admin names none, as migration 0022 seeded
// the catalogue: what the buildpack's images were seen to run with. The dockerfile kind runs
// arbitrary images and stays writable; auto's own setting covers a repository's own Dockerfile
// (a detected stack uses its stack's runtime), so it stays writable too.
func DefaultRootFS(kind string) RootFS {
	switch kind {
	case "node", "python":
		return RootFS{ReadOnly: true}
	case "php":
		// Apache's run directory (its pid file: it does not start without it) and lock
		// directory (its file mutexes), and Debian's PHP session directory.
		return RootFS{ReadOnly: true, Writable: []string{"/var/run/apache2", "/var/lock/apache2", "/var/lib/php/sessions"}}
	}
	return RootFS{}
}
