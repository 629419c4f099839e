package buildpack

import (
	"strconv"
	"strings"
	"testing"
)

func nodePlan(t *testing.T) *Plan {
	return prepare(t, "node", map[string]string{
		"package.json":      `{"dependencies":{"express":"^4"},"scripts":{"start":"node server.js"}}`,
		"package-lock.json": "{}",
	})
}

// dockerFailure is the classic builder's message for a failing shell-form RUN.
func dockerFailure(p *Plan, i, code int) string {
	return "The command '/bin/sh -c " + p.steps[i].run + "' returned a non-zero code: " + strconv.Itoa(code)
}

func TestExplainNpmFailures(t *testing.T) {
	p := nodePlan(t)
	tests := []struct {
		name   string
		output string
		want   string
	}{
		{"unknown package", `
npm ERR! code E404
npm ERR! 404 Not Found - GET https://registry.example/no-such-package-skypanel - Not found
npm ERR! 404
npm ERR! 404  'no-such-package-skypanel@^1.0.0' is not in this registry.
npm ERR! 404
npm ERR! 404 Note that you can also install from a
npm ERR! 404 tarball, folder, http url, or git repo.

npm ERR! A complete log of this run can be found in:
npm ERR!     /root/.npm/_logs/2026-11-25T10_00_00_000Z-debug-0.log
`, "npm install failed: 404 Not Found - GET https://registry.example/no-such-package-skypanel - Not found (E404)"},
		{"no such version, npm 10 wording", "\x1b[91mnpm error code ETARGET\nnpm error notarget No matching version found for express@99.0.0.\nnpm error notarget In most cases you or one of your dependencies are requesting\n\x1b[0m",
			"npm install failed: notarget No matching version found for express@99.0.0. (ETARGET)"},
		{"lock out of sync", "npm ERR! code EUSAGE\nnpm ERR! \nnpm ERR! `npm ci` can only install packages when your package.json and package-lock.json or npm-shrinkwrap.json are in sync. Please update your lock file with `npm install` before continuing.\n",
			"npm install failed: `npm ci` can only install packages when your package.json and package-lock.json or npm-shrinkwrap.json are in sync."},
		{"conflict", "npm ERR! code ERESOLVE\nnpm ERR! ERESOLVE unable to resolve dependency tree\nnpm ERR! \nnpm ERR! While resolving: x@1.0.0\n",
			"npm install failed: ERESOLVE unable to resolve dependency tree"},
		{"no npm output", "sh: 1: npm: not found\n", "npm install failed: sh: 1: npm: not found"},
		{"silent", "", "npm install failed with exit code 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := p.Explain(dockerFailure(p, 0, 1), strings.Split(tt.output, "\n"))
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("Explain = %q\nwant prefix %q", got, tt.want)
			}
			if len(got) > len("npm install failed: ")+maxDetail+len(" (E404)")+8 {
				t.Errorf("reason too long (%d bytes): %q", len(got), got)
			}
		})
	}
}

func TestExplainPipAndOthers(t *testing.T) {
	p := prepare(t, "python", map[string]string{"requirements.txt": "flask\n", "app.py": ""})
	out := "WARNING: Retrying (Retry(total=1...)) after connection broken\nERROR: Could not find a version that satisfies the requirement flask (from versions: none)\nERROR: No matching distribution found for flask\n"
	if got := p.Explain(dockerFailure(p, 0, 1), strings.Split(out, "\n")); got != "pip install failed: No matching distribution found for flask" {
		t.Errorf("pip: %q", got)
	}
	out = "pip is not available in the build image: cannot install requirements.txt\n"
	if got := p.Explain(dockerFailure(p, 0, 1), strings.Split(out, "\n")); got != "pip install failed: pip is not available in the build image: cannot install requirements.txt" {
		t.Errorf("no pip: %q", got)
	}
	// Not one of the buildpack's steps (a COPY, a missing image): Docker's first line.
	if got := p.Explain("COPY failed: file not found in build context\nmore", nil); got != "build failed: COPY failed: file not found in build context" {
		t.Errorf("other failure: %q", got)
	}
	long := strings.Repeat("z", 1000)
	if got := p.Explain(dockerFailure(p, 0, 2), []string{long}); len(got) > len("pip install failed: ")+maxDetail+len("…") {
		t.Errorf("a long line is not cut: %d bytes", len(got))
	}
}
