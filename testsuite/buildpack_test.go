package testsuite

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The runtime images the buildpacks build FROM: `make test` builds them (scripts/base-images.sh).
var buildpackImages = []string{"node:20-bookworm-slim", "python:3.11-slim-bookworm", "php:8.2-apache-bookworm"}

func needBaseImages(t testing.TB) {
	t.Helper()
	for _, img := range buildpackImages {
		if _, err := platform.docker.ImageInspect(context.Background(), img); err != nil {
			t.Fatalf("the runtime image %s is missing: run `make base-images` (scripts/base-images.sh) first: %v", img, err)
		}
	}
}

// newBuildpackRepo creates a repository (without a Dockerfile) from testdata/buildpacks/<fixture>
// plus files (name → content), served by the test git host.
func newBuildpackRepo(t testing.TB, name, fixture string, files map[string]string) *repo {
	t.Helper()
	r := newRepo(t, name)
	src := filepath.Join("testdata", "buildpacks", fixture)
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dst := filepath.Join(r.dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		r.write(name, content)
	}
	r.commit("initial commit of " + fixture)
	return r
}

// createAppWithRuntime is createApp with the app's runtime: node, python, php, auto, dockerfile.
func (c customer) createAppWithRuntime(t testing.TB, name, gitURL, runtime string) application {
	t.Helper()
	var app application
	status, raw := platform.call(http.MethodPost, "/api/paas/applications", c.token, map[string]string{
		"name": name, "runtime": runtime, "plan": "starter", "region": "local", "git_url": gitURL, "git_branch": "main",
	}, &app)
	if status != http.StatusCreated {
		t.Fatalf("create app %s (runtime %s): %d %s", name, runtime, status, raw)
	}
	remember(&created.apps, app.ID)
	return app
}

// deployAndServe deploys and waits until nginx answers want for the app.
func (c customer) deployAndServe(t *testing.T, app application, want string) deployment {
	t.Helper()
	dep := c.deploy(t, app.ID)
	if dep.Status != "succeeded" {
		t.Fatalf("deploy of %s: %+v\nlogs:\n%s", app.Name, dep, c.logs(t, app.ID, dep.ID))
	}
	waitServes(t, app.Name+".apps.localhost", want)
	return dep
}

func wantLog(t *testing.T, logs string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(logs, l) {
			t.Errorf("the build log lacks %q:\n%s", l, logs)
		}
	}
}

// TestBuildpackNodeExpress deploys an Express app without a Dockerfile (runtime node), deploys a
// commit that changes no dependency (the npm layer comes from the cache), then one whose start
// script exits at once: that release fails with the reason and the previous one keeps serving.
func TestBuildpackNodeExpress(t *testing.T) {
	needBaseImages(t)
	owner := newCustomer(t, uniqueName("nodejs")+"@example.com")
	name := uniqueName("express")
	r := newBuildpackRepo(t, name, "node-express", map[string]string{"message.txt": "express says hello v1"})
	app := owner.createAppWithRuntime(t, name, r.URL, "node")

	first := owner.deployAndServe(t, app, "express says hello v1")
	logs := owner.logs(t, app.ID, first.ID)
	wantLog(t, logs, "Detected Node.js app (package.json", "npm ci", "COPY app/package.json app/package-lock.json /app/", `CMD ["npm","start"]`)
	info := inspectAppContainer(t, app.ID)
	if info.user != "1000:1000" {
		t.Errorf("the instance runs as %q", info.user)
	}

	r.commitMessage("express says hello v2")
	second := owner.deployAndServe(t, app, "express says hello v2")
	logs = owner.logs(t, app.ID, second.ID)
	npmStep := strings.Index(logs, "RUN npm ci")
	if npmStep < 0 {
		t.Fatalf("no npm step in the second build:\n%s", logs)
	}
	if next := logs[npmStep:]; !strings.Contains(next[:min(len(next), 400)], "Using cache") {
		t.Errorf("the unchanged dependencies were installed again instead of coming from the layer cache:\n%s", logs)
	}

	r.write("package.json", strings.Replace(readFixture(t, "node-express/package.json"),
		`"start": "node server.js"`, `"start": "node -e \"process.exit(1)\""`, 1))
	r.commitMessage("express says hello v3")
	bad := owner.deploy(t, app.ID)
	if bad.Status != "failed" || !strings.Contains(bad.FailureReason, "exited with code 1") {
		t.Fatalf("a start script that exits: %+v\nlogs:\n%s", bad, owner.logs(t, app.ID, bad.ID))
	}
	status, body, header := platform.throughNginx(name + ".apps.localhost")
	if status != http.StatusOK || body != "express says hello v2" || header.Get("X-SkyPanel-Release") != second.ID {
		t.Errorf("after the failed release nginx answers %d %q (release %s), want the previous release %s",
			status, body, header.Get("X-SkyPanel-Release"), second.ID)
	}
	if got := owner.getApp(t, app.ID); got.Status != "running" || got.CurrentDeploymentID == nil || *got.CurrentDeploymentID != second.ID {
		t.Errorf("app after the failed release: %+v", got)
	}
}

func TestBuildpackPythonStandardLibrary(t *testing.T) {
	needBaseImages(t)
	owner := newCustomer(t, uniqueName("python")+"@example.com")
	name := uniqueName("pystd")
	r := newBuildpackRepo(t, name, "python-stdlib", map[string]string{"message.txt": "python says hello"})
	app := owner.createAppWithRuntime(t, name, r.URL, "python")
	dep := owner.deployAndServe(t, app, "python says hello")
	logs := owner.logs(t, app.ID, dep.ID)
	wantLog(t, logs, "Detected Python app (requirements.txt", "no dependencies to install", `CMD ["python3","app.py"]`)
	if strings.Contains(logs, "pip install") {
		t.Errorf("pip ran for an app using the standard library only:\n%s", logs)
	}
}

func TestBuildpackPHP(t *testing.T) {
	needBaseImages(t)
	owner := newCustomer(t, uniqueName("php")+"@example.com")
	name := uniqueName("phphello")
	r := newBuildpackRepo(t, name, "php-hello", map[string]string{"message.txt": "php says hello\n"})
	app := owner.createAppWithRuntime(t, name, r.URL, "php")
	dep := owner.deployAndServe(t, app, "php says hello (php 42)")
	wantLog(t, owner.logs(t, app.ID, dep.ID), "Detected PHP app (index.php", `CMD ["apache2-foreground"]`)
	info := inspectAppContainer(t, app.ID)
	if info.user != "1000:1000" {
		t.Errorf("apache runs as %q", info.user)
	}
	// Apache answered (above) on a read-only root: its run and lock directories and PHP's
	// sessions are the php runtime's writable paths.
	info.wantReadOnlyRoot(t, "/var/run/apache2", "/var/lock/apache2", "/var/lib/php/sessions")
}

// TestBuildpackAutoDetectsTheStackAndRunsTheProcfile: runtime auto, a Python repository whose
// Procfile's web: line uses the container's shell ($(...), "$PORT").
func TestBuildpackAutoDetectsTheStackAndRunsTheProcfile(t *testing.T) {
	needBaseImages(t)
	owner := newCustomer(t, uniqueName("auto")+"@example.com")
	name := uniqueName("autopy")
	r := newBuildpackRepo(t, name, "python-procfile", map[string]string{"greeting.txt": "auto-detected Python"})
	app := owner.createAppWithRuntime(t, name, r.URL, "auto")
	dep := owner.deployAndServe(t, app, "auto-detected Python on port 8080")
	wantLog(t, owner.logs(t, app.ID, dep.ID), "Detected Python app (requirements.txt)", "Start command (Procfile)")
	// auto runs what it detected with that stack's runtime's setting: python's read-only root.
	inspectAppContainer(t, app.ID).wantReadOnlyRoot(t)
}

// TestBuildpackFailuresAreExplained: what the repository's owner must fix ends the deployment
// as failed with a short reason, before or during the build.
func TestBuildpackFailuresAreExplained(t *testing.T) {
	needBaseImages(t)
	owner := newCustomer(t, uniqueName("bpfail")+"@example.com")
	tests := []struct {
		name, runtime, fixture string
		files                  map[string]string
		remove                 string
		reason                 string
	}{
		{"marker", "node", "python-stdlib", map[string]string{"message.txt": "x"}, "",
			"runtime node needs a package.json at the repository root"},
		{"badjson", "auto", "node-express", map[string]string{"message.txt": "x", "package.json": "{\n  \"name\": \"broken\",\n}\n"}, "",
			"package.json is not valid JSON"},
		{"nopkg", "node", "node-express", map[string]string{"message.txt": "x",
			"package.json": `{"scripts":{"start":"node server.js"},"dependencies":{"skypanel-no-such-package-e2e":"1.0.0"}}`},
			"package-lock.json", "npm install failed: 404 Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := uniqueName("bp" + tt.name)
			r := newBuildpackRepo(t, name, tt.fixture, tt.files)
			if tt.remove != "" {
				git(t, r.dir, "rm", "-q", tt.remove)
				r.commit("remove " + tt.remove)
			}
			app := owner.createAppWithRuntime(t, name, r.URL, tt.runtime)
			dep := owner.deploy(t, app.ID)
			if dep.Status != "failed" || !strings.Contains(dep.FailureReason, tt.reason) {
				t.Fatalf("deploy: %+v, want failed with %q\nlogs:\n%s", dep, tt.reason, owner.logs(t, app.ID, dep.ID))
			}
			if len(dep.FailureReason) > 400 || strings.Contains(dep.FailureReason, "\n") {
				t.Errorf("the reason is not short: %q", dep.FailureReason)
			}
			if !strings.Contains(owner.logs(t, app.ID, dep.ID), tt.reason) {
				t.Errorf("the build log lacks the reason %q", tt.reason)
			}
			if got := owner.getApp(t, app.ID); got.Status != "failed" {
				t.Errorf("an app without a release whose first deploy failed is %q", got.Status)
			}
		})
	}
}

func readFixture(t testing.TB, rel string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "buildpacks", filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// containerFacts are what the buildpack tests check of an app's container: its user, whether
// its root filesystem is read-only and its tmpfs mounts.
type containerFacts struct {
	user         string
	readOnlyRoot bool
	tmpfs        map[string]string
}

// wantReadOnlyRoot checks the container runs on a read-only root where /tmp and each of
// writable are tmpfs mounts (its runtime's catalogue setting, migration 0022).
func (c containerFacts) wantReadOnlyRoot(t *testing.T, writable ...string) {
	t.Helper()
	if !c.readOnlyRoot {
		t.Errorf("the app's container has a writable root filesystem")
	}
	for _, p := range append([]string{"/tmp"}, writable...) {
		if !strings.Contains(c.tmpfs[p], "size=") {
			t.Errorf("%s is not a bounded tmpfs: %v", p, c.tmpfs)
		}
	}
	if len(c.tmpfs) != 1+len(writable) {
		t.Errorf("tmpfs mounts %v, want /tmp and %v", c.tmpfs, writable)
	}
}

func inspectAppContainer(t testing.TB, appID string) containerFacts {
	t.Helper()
	var facts containerFacts
	eventually(t, 10*time.Second, "one container for the app", func() (bool, string) {
		list := appContainers(t, appID)
		if len(list) != 1 {
			return false, fmt.Sprintf("%d containers", len(list))
		}
		info, err := platform.docker.ContainerInspect(context.Background(), list[0].ID)
		if err != nil {
			return false, err.Error()
		}
		facts.user = info.Config.User
		facts.readOnlyRoot, facts.tmpfs = info.HostConfig.ReadonlyRootfs, info.HostConfig.Tmpfs
		return true, ""
	})
	return facts
}
