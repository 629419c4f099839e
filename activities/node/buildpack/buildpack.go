// Package buildpack builds repositories that have no Dockerfile. It detects the stack from the
// files at the repository's root (Node.js, Python, PHP) and generates a Dockerfile FROM the
// runtime's images that installs the dependencies in a layer of their own (copied before the
// rest of the repository, so an unchanged dependency manifest reuses the layer cache), copies
// the app readable by the container's user (1000:1000), listens on $PORT and starts the app by
// its Procfile's web: line or the stack's convention.
//
// The package only reads the repository and returns text: the docker activities send the
// generated Dockerfile inside the build context (ContextDockerfile, with the repository under
// ContextAppDir), so no file of the repository is overwritten and nothing a repository contains
// reaches a shell on the node or a command line.
package buildpack

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
)

// Kind is a buildpack: the stack an app is written in.
type Kind string

// The buildpacks.
const (
	Node   Kind = "node"
	Python Kind = "python"
	PHP    Kind = "php"
)

// Runtime kinds of the catalog that are not a buildpack of their own.
const (
	// RuntimeAuto uses the repository's Dockerfile when it has one, else detects the stack.
	RuntimeAuto = "auto"
	// RuntimeDockerfile builds the repository's own Dockerfile (also the meaning of "").
	RuntimeDockerfile = "dockerfile"
)

// Layout of a buildpack build's context: the repository under ContextAppDir and the generated
// Dockerfile at ContextDockerfile, outside of it, so neither can shadow the other.
const (
	ContextAppDir     = "app"
	ContextDockerfile = ".skypanel/Dockerfile"
)

// DefaultPort is the port the generated images listen on when $PORT is not set. The platform
// always sets PORT (8080).
const DefaultPort = 8080

// Size limits of the files the buildpacks read.
const (
	maxManifestBytes = 1 << 20
	maxProcfileBytes = 64 << 10
)

// Title is the stack's name for people.
func (k Kind) Title() string {
	switch k {
	case Node:
		return "Node.js"
	case Python:
		return "Python"
	case PHP:
		return "PHP"
	}
	return string(k)
}

// defaultImages are the images a kind is built and run with when the runtime names none (the
// auto runtime): the official images, which `make run`/`make test` build locally under the same
// names (scripts/base-images.sh). SKYPANEL_<KIND>_IMAGE in the node agent's environment
// overrides one, as it does for the script.
var defaultImages = map[Kind]string{
	Node:   "node:20-bookworm-slim",
	Python: "python:3.11-slim-bookworm",
	PHP:    "php:8.2-apache-bookworm",
}

// DefaultImage is the image kind k uses when its runtime names none.
func DefaultImage(k Kind) string {
	if v := strings.TrimSpace(os.Getenv("SKYPANEL_" + strings.ToUpper(string(k)) + "_IMAGE")); v != "" && imagePattern.MatchString(v) {
		return v
	}
	return defaultImages[k]
}

// imagePattern accepts image references only (name, tag, digest): nothing that could end a
// Dockerfile line or be expanded in it.
var imagePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._/:@-]{0,254}$`)

// Options are the app's runtime: its kind and the images it names.
type Options struct {
	// Runtime is dockerfile (or ""), auto, node, python or php.
	Runtime string
	// BuildImage is the image dependencies are installed in, RunImage the one the app runs on.
	// Empty: the kind's DefaultImage. When only one is set it is used for both.
	BuildImage string
	RunImage   string
	// ByKind are the catalogue's images per stack, used by the auto runtime for the stack it
	// detects ([0] build, [1] run). A stack missing here uses its DefaultImage.
	ByKind map[Kind][2]string
	// BuildArgs name the app's build-time variables: the generated Dockerfile declares each
	// (ARG) in its build stage, so install and build steps see them. Values travel as build
	// arguments, never in the Dockerfile.
	BuildArgs []string
}

// Error is a problem with the repository that its owner has to fix; its text is meant for them.
type Error struct{ msg string }

func (e *Error) Error() string { return e.msg }

func userError(format string, args ...any) error { return &Error{msg: fmt.Sprintf(format, args...)} }

// IsUserError tells whether err is the repository's to fix (as opposed to the node's).
func IsUserError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// Plan is how a repository without a Dockerfile is built.
type Plan struct {
	Kind Kind
	// Marker is the file the stack was recognised by, e.g. "package.json".
	Marker     string
	BuildImage string
	RunImage   string
	// Dockerfile is the generated Dockerfile, to be sent at ContextDockerfile.
	Dockerfile string
	// Start is the container's command, StartFrom what it comes from ("Procfile", "scripts.start").
	Start     []string
	StartFrom string
	// Exclude lists repository paths (slash-separated, relative to its root) to leave out of
	// the build context, e.g. a committed node_modules the image installs itself.
	Exclude []string
	// Log is what to tell the app's owner before the build starts, one line each.
	Log []string

	buildArgs []string
	steps     []step
}

// Images are the images the generated Dockerfile builds FROM.
func (p *Plan) Images() []string {
	if p.BuildImage == p.RunImage {
		return []string{p.RunImage}
	}
	return []string{p.BuildImage, p.RunImage}
}

// Prepare decides how the repository at dir is built. It returns nil (and no error) when the
// repository's own Dockerfile is to be used: the runtime is dockerfile, or it is auto and the
// repository has a Dockerfile. An error the repository's owner must fix is an *Error.
func Prepare(dir string, opts Options) (*Plan, error) {
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return nil, fmt.Errorf("the build context %s does not exist on this node", dir)
	}
	var kind Kind
	var marker string
	switch runtime := strings.TrimSpace(opts.Runtime); runtime {
	case "", RuntimeDockerfile:
		return nil, nil
	case RuntimeAuto:
		if present(dir, "Dockerfile") {
			return nil, nil
		}
		if kind, marker = Detect(dir); kind == "" {
			return nil, userError("could not tell how to build this repository: it has no Dockerfile, package.json (Node.js), requirements.txt or pyproject.toml (Python), composer.json or index.php (PHP) at its root")
		}
	case string(Node), string(Python), string(PHP):
		kind = Kind(runtime)
		if marker = markerOf(dir, kind); marker == "" {
			return nil, userError("runtime %s needs %s at the repository root%s", kind, markerHint[kind], markerNote[kind])
		}
	default:
		return nil, userError("runtime %q has no buildpack: use dockerfile, auto, node, python or php", runtime)
	}

	p := &Plan{Kind: kind, Marker: marker, buildArgs: opts.BuildArgs}
	if err := p.setImages(opts); err != nil {
		return nil, err
	}
	if opts.Runtime == RuntimeAuto {
		p.Log = append(p.Log, fmt.Sprintf("Detected %s app (%s)", kind.Title(), marker))
	} else {
		p.Log = append(p.Log, fmt.Sprintf("Detected %s app (%s; runtime %s)", kind.Title(), marker, kind))
		if present(dir, "Dockerfile") {
			p.Log = append(p.Log, fmt.Sprintf("The repository's Dockerfile is not used: the app's runtime is %s (choose the dockerfile or auto runtime to build it)", kind))
		}
	}
	web, err := readProcfile(dir)
	if err != nil {
		return nil, err
	}
	var g *generator
	switch kind {
	case Node:
		g, err = planNode(dir, p, web)
	case Python:
		g, err = planPython(dir, p, web)
	case PHP:
		g, err = planPHP(dir, p, web)
	}
	if err != nil {
		return nil, err
	}
	p.Dockerfile = g.String()
	p.steps = g.steps
	p.Log = append(p.Log, fmt.Sprintf("Start command (%s): %s", p.StartFrom, describeStart(p.Start)))
	if p.BuildImage == p.RunImage {
		p.Log = append(p.Log, "Image: "+p.RunImage)
	} else {
		p.Log = append(p.Log, fmt.Sprintf("Build image: %s, run image: %s", p.BuildImage, p.RunImage))
	}
	return p, nil
}

func (p *Plan) setImages(opts Options) error {
	build, run := strings.TrimSpace(opts.BuildImage), strings.TrimSpace(opts.RunImage)
	if catalogue, ok := opts.ByKind[p.Kind]; ok && build == "" && run == "" {
		build, run = strings.TrimSpace(catalogue[0]), strings.TrimSpace(catalogue[1])
	}
	switch {
	case build == "" && run == "":
		build, run = DefaultImage(p.Kind), DefaultImage(p.Kind)
	case build == "":
		build = run
	case run == "":
		run = build
	}
	for _, img := range []string{build, run} {
		if !imagePattern.MatchString(img) {
			return userError("the runtime's image %q is not a valid image reference", img)
		}
	}
	p.BuildImage, p.RunImage = build, run
	return nil
}

// markers are the files each stack is recognised by, in the order auto detection tries them:
// a composer.json means PHP and a requirements.txt/pyproject.toml Python even when the
// repository also has a package.json (front-end tooling); a bare index.php comes last.
var markers = []struct {
	kind Kind
	file string
}{
	{PHP, "composer.json"},
	{Python, "requirements.txt"},
	{Python, "pyproject.toml"},
	{Node, "package.json"},
	{PHP, "index.php"},
}

var markerHint = map[Kind]string{
	Node:   "a package.json",
	Python: "a requirements.txt or pyproject.toml",
	PHP:    "a composer.json or index.php",
}

var markerNote = map[Kind]string{
	Python: " (an empty requirements.txt will do for an app using the standard library only)",
}

// Detect names the stack of the repository at dir and the file it was recognised by, or ""
// when none is.
func Detect(dir string) (Kind, string) {
	for _, m := range markers {
		if present(dir, m.file) {
			return m.kind, m.file
		}
	}
	return "", ""
}

func markerOf(dir string, k Kind) string {
	for _, m := range markers {
		if m.kind == k && present(dir, m.file) {
			return m.file
		}
	}
	return ""
}

// present tells whether the repository has name at its root (not as a directory).
func present(dir, name string) bool {
	fi, err := os.Lstat(filepath.Join(dir, name))
	return err == nil && !fi.IsDir()
}

// readRootFile reads name at the root of the repository: a regular file of at most max bytes.
// A symbolic link is refused, never followed: it could point at a file of the node. ok is
// false when the file does not exist.
func readRootFile(dir, name string, max int64) (data []byte, ok bool, err error) {
	path := filepath.Join(dir, name)
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("read %s: %w", name, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return nil, false, userError("%s is a symbolic link: the buildpack reads it only as a regular file", name)
	case !fi.Mode().IsRegular():
		return nil, false, userError("%s is not a regular file", name)
	case fi.Size() > max:
		return nil, false, userError("%s is larger than %d KiB", name, max>>10)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	data, err = io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > max {
		return nil, false, userError("%s is larger than %d KiB", name, max>>10)
	}
	return data, true, nil
}

// regularFile tells whether the repository has name as a regular file at its root; a symbolic
// link or a directory there is an error (the buildpack copies the file on its own).
func regularFile(dir, name string) (bool, error) {
	fi, err := os.Lstat(filepath.Join(dir, name))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read %s: %w", name, err)
	case !fi.Mode().IsRegular():
		return false, userError("%s must be a regular file (not a link or a directory)", name)
	}
	return true, nil
}

// readProcfile returns the Procfile's web: command, "" without a Procfile or web: line.
func readProcfile(dir string) (string, error) {
	data, ok, err := readRootFile(dir, "Procfile", maxProcfileBytes)
	if err != nil || !ok {
		return "", err
	}
	return ParseProcfile(data)
}

func describeStart(argv []string) string {
	if len(argv) == 3 && argv[0] == "/bin/bash" && argv[1] == "-c" {
		return truncate(argv[2], 200)
	}
	return truncate(strings.Join(argv, " "), 200)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
