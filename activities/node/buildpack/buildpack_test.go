package buildpack

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// repo writes files (name → content) into a new directory; a name ending in "/" is a directory.
func repo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func prepare(t *testing.T, runtime string, files map[string]string) *Plan {
	t.Helper()
	p, err := Prepare(repo(t, files), Options{Runtime: runtime})
	if err != nil {
		t.Fatalf("Prepare(%s): %v", runtime, err)
	}
	if p == nil {
		t.Fatalf("Prepare(%s): no plan (the repository's Dockerfile would be used)", runtime)
	}
	return p
}

func prepareErr(t *testing.T, runtime string, files map[string]string, want string) {
	t.Helper()
	p, err := Prepare(repo(t, files), Options{Runtime: runtime})
	if err == nil {
		t.Fatalf("Prepare(%s) = %+v, want an error containing %q", runtime, p, want)
	}
	if !IsUserError(err) {
		t.Errorf("error %q is not a user error", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q, want it to contain %q", err, want)
	}
}

// cmdOf decodes the generated Dockerfile's CMD (the last one) as Docker does: a JSON array.
func cmdOf(t *testing.T, dockerfile string) []string {
	t.Helper()
	var argv []string
	for _, line := range strings.Split(dockerfile, "\n") {
		if rest, ok := strings.CutPrefix(line, "CMD "); ok {
			argv = nil
			if err := json.Unmarshal([]byte(rest), &argv); err != nil {
				t.Fatalf("CMD is not a JSON array: %v\n%s", err, line)
			}
		}
	}
	if argv == nil {
		t.Fatalf("no CMD in\n%s", dockerfile)
	}
	return argv
}

// instructions lists the Dockerfile's instructions (comments left out).
func instructions(dockerfile string) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(dockerfile), "\n") {
		if !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

// order fails unless each of want appears in the Dockerfile, in that order.
func order(t *testing.T, dockerfile string, want ...string) {
	t.Helper()
	at := 0
	for _, w := range want {
		i := strings.Index(dockerfile[at:], w)
		if i < 0 {
			t.Fatalf("Dockerfile lacks %q after offset %d:\n%s", w, at, dockerfile)
		}
		at += i + len(w)
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		files      []string
		kind       Kind
		marker     string
		desciption string
	}{
		{[]string{"package.json"}, Node, "package.json", "node"},
		{[]string{"requirements.txt"}, Python, "requirements.txt", "python"},
		{[]string{"pyproject.toml"}, Python, "pyproject.toml", "python by pyproject"},
		{[]string{"composer.json"}, PHP, "composer.json", "php by composer"},
		{[]string{"index.php"}, PHP, "index.php", "php by index.php"},
		{[]string{"composer.json", "package.json"}, PHP, "composer.json", "php with front-end tooling"},
		{[]string{"requirements.txt", "package.json"}, Python, "requirements.txt", "python with front-end tooling"},
		{[]string{"package.json", "index.php"}, Node, "package.json", "node with a stray index.php"},
		{[]string{"README.md", "main.go"}, "", "", "nothing known"},
		{[]string{"package.json/"}, "", "", "a directory is no marker"},
	}
	for _, tt := range tests {
		files := map[string]string{}
		for _, f := range tt.files {
			files[f] = "{}"
		}
		kind, marker := Detect(repo(t, files))
		if kind != tt.kind || marker != tt.marker {
			t.Errorf("%s: Detect(%v) = %q, %q; want %q, %q", tt.desciption, tt.files, kind, marker, tt.kind, tt.marker)
		}
	}
}

func TestPrepareChoosesDockerfileOrBuildpack(t *testing.T) {
	withDockerfile := map[string]string{"Dockerfile": "FROM scratch\n", "package.json": `{"scripts":{"start":"node x"}}`}
	for _, runtime := range []string{"", "dockerfile", "auto"} {
		if p, err := Prepare(repo(t, withDockerfile), Options{Runtime: runtime}); err != nil || p != nil {
			t.Errorf("runtime %q with a Dockerfile: plan %v, err %v; want the repository's Dockerfile", runtime, p, err)
		}
	}
	// dockerfile without a Dockerfile is the docker activity's own error ("no Dockerfile").
	if p, err := Prepare(repo(t, map[string]string{"package.json": "{}"}), Options{Runtime: "dockerfile"}); err != nil || p != nil {
		t.Errorf("runtime dockerfile without a Dockerfile: plan %v, err %v", p, err)
	}

	// An explicit runtime wins over the repository's Dockerfile.
	p := prepare(t, "node", withDockerfile)
	if p.Kind != Node || !strings.Contains(strings.Join(p.Log, "\n"), "Dockerfile is not used") {
		t.Errorf("node runtime with a Dockerfile: kind %s, log %q", p.Kind, p.Log)
	}

	p = prepare(t, "auto", map[string]string{"package.json": `{"scripts":{"start":"node server.js"}}`})
	if p.Kind != Node || p.Log[0] != "Detected Node.js app (package.json)" {
		t.Errorf("auto: kind %s, log %q", p.Kind, p.Log)
	}
	if p.BuildImage != "node:20-bookworm-slim" || p.RunImage != "node:20-bookworm-slim" {
		t.Errorf("auto uses the default images, got %s / %s", p.BuildImage, p.RunImage)
	}

	prepareErr(t, "node", map[string]string{"app.py": ""}, "runtime node needs a package.json at the repository root")
	prepareErr(t, "python", map[string]string{"app.py": ""}, "runtime python needs a requirements.txt or pyproject.toml at the repository root")
	prepareErr(t, "php", map[string]string{"package.json": "{}"}, "runtime php needs a composer.json or index.php at the repository root")
	prepareErr(t, "auto", map[string]string{"README.md": ""}, "could not tell how to build this repository")
	prepareErr(t, "ruby", map[string]string{"Gemfile": ""}, `runtime "ruby" has no buildpack`)

	if _, err := Prepare(filepath.Join(t.TempDir(), "gone"), Options{Runtime: "node"}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing context: %v", err)
	}
}

func TestImages(t *testing.T) {
	files := map[string]string{"requirements.txt": "", "app.py": ""}
	dir := repo(t, files)
	p, err := Prepare(dir, Options{Runtime: "python", BuildImage: "py-build:1", RunImage: "py-run:1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Images(); len(got) != 2 || got[0] != "py-build:1" || got[1] != "py-run:1" {
		t.Errorf("images %v", got)
	}
	order(t, p.Dockerfile, "FROM py-build:1 AS build", "FROM py-run:1", "COPY --from=build /app /app", "USER 1000:1000")

	p, err = Prepare(dir, Options{Runtime: "python", RunImage: "only-run:2"})
	if err != nil || p.BuildImage != "only-run:2" || p.RunImage != "only-run:2" || strings.Contains(p.Dockerfile, " AS build") {
		t.Errorf("one image for both: %+v, %v", p, err)
	}

	for _, bad := range []string{"node:20\nRUN curl evil", "node:20 AS x", "$IMAGE", "Node:20"} {
		if _, err := Prepare(dir, Options{Runtime: "python", BuildImage: bad, RunImage: "ok:1"}); err == nil || !IsUserError(err) {
			t.Errorf("image %q accepted (%v)", bad, err)
		}
	}

	t.Setenv("SKYPANEL_PYTHON_IMAGE", "local/python:3.11")
	p, err = Prepare(dir, Options{Runtime: "auto"})
	if err != nil || p.RunImage != "local/python:3.11" {
		t.Errorf("SKYPANEL_PYTHON_IMAGE not used: %+v, %v", p, err)
	}
	t.Setenv("SKYPANEL_PYTHON_IMAGE", "bad image\nRUN x")
	if got := DefaultImage(Python); got != "python:3.11-slim-bookworm" {
		t.Errorf("an invalid override is used: %q", got)
	}
}

func TestNodeDockerfile(t *testing.T) {
	t.Run("lock file: npm ci in its own layer, then the app", func(t *testing.T) {
		p := prepare(t, "node", map[string]string{
			"package.json":      `{"name":"a","dependencies":{"express":"^4"},"scripts":{"start":"node server.js"}}`,
			"package-lock.json": "{}",
			"server.js":         "",
		})
		order(t, p.Dockerfile,
			"FROM node:20-bookworm-slim\n",
			"WORKDIR /app\n",
			"COPY app/package.json app/package-lock.json /app/\n",
			"RUN npm ci --omit=dev",
			"COPY app/ /app/\n",
			"USER 1000:1000\n",
			`CMD ["npm","start"]`)
		if got := p.Exclude; len(got) != 1 || got[0] != "node_modules" {
			t.Errorf("exclude %v", got)
		}
		if p.StartFrom != "package.json scripts.start" {
			t.Errorf("start from %q", p.StartFrom)
		}
	})
	t.Run("no lock file: npm install without dev dependencies", func(t *testing.T) {
		p := prepare(t, "node", map[string]string{
			"package.json": `{"dependencies":{"express":"^4"},"scripts":{"start":"node server.js"}}`,
		})
		order(t, p.Dockerfile, "COPY app/package.json /app/\n", "RUN npm install --no-package-lock --omit=dev", "COPY app/ /app/\n")
	})
	t.Run("no dependencies: nothing to install", func(t *testing.T) {
		p := prepare(t, "node", map[string]string{"package.json": `{"dependencies":{},"scripts":{"start":"node ."}}`})
		if strings.Contains(p.Dockerfile, "RUN ") {
			t.Errorf("a RUN without dependencies:\n%s", p.Dockerfile)
		}
		if len(p.Exclude) != 0 {
			t.Errorf("exclude %v without an install", p.Exclude)
		}
	})
	t.Run("install script: the whole repository first", func(t *testing.T) {
		p := prepare(t, "node", map[string]string{
			"package.json": `{"dependencies":{"a":"1"},"scripts":{"start":"node s.js","postinstall":"node scripts/setup.js"}}`,
		})
		order(t, p.Dockerfile, "COPY app/ /app/\n", "RUN npm install")
		if strings.Contains(p.Dockerfile, "COPY app/package.json") {
			t.Errorf("manifest copied alone although postinstall needs the repository:\n%s", p.Dockerfile)
		}
	})
	t.Run("start: main, server.js, index.js", func(t *testing.T) {
		tests := []struct {
			files map[string]string
			want  []string
		}{
			{map[string]string{"package.json": `{"main":"src/app.js"}`, "src/app.js": ""}, []string{"node", "./src/app.js"}},
			{map[string]string{"package.json": `{"main":"./lib/start"}`, "lib/start.js": ""}, []string{"node", "./lib/start.js"}},
			{map[string]string{"package.json": `{"main":"-e"}`, "-e": ""}, []string{"node", "./-e"}},
			{map[string]string{"package.json": `{"main":"../../etc/passwd"}`, "server.js": ""}, []string{"node", "./server.js"}},
			{map[string]string{"package.json": `{}`, "server.js": "", "index.js": ""}, []string{"node", "./server.js"}},
			{map[string]string{"package.json": `{"scripts":{"start":""}}`, "index.js": ""}, []string{"node", "./index.js"}},
		}
		for _, tt := range tests {
			p := prepare(t, "node", tt.files)
			if got := cmdOf(t, p.Dockerfile); strings.Join(got, "\x00") != strings.Join(tt.want, "\x00") {
				t.Errorf("%v: CMD %q, want %q", tt.files, got, tt.want)
			}
		}
	})
	t.Run("nothing to start", func(t *testing.T) {
		prepareErr(t, "node", map[string]string{"package.json": `{"dependencies":{"a":"1"}}`, "app.js": ""},
			`package.json has no "scripts": {"start": ...} and there is no server.js or index.js`)
	})
	t.Run("bad package.json", func(t *testing.T) {
		prepareErr(t, "node", map[string]string{"package.json": "{\n  \"name\": \"x\",\n}\n"}, "package.json is not valid JSON: invalid character '}' looking for beginning of object key string (line 3, column 1)")
		prepareErr(t, "node", map[string]string{"package.json": "[1,2]"}, "package.json must be a JSON object")
		prepareErr(t, "node", map[string]string{"package.json": `{"scripts":{"start":42}}`}, "scripts.start must be a string")
		prepareErr(t, "node", map[string]string{"package.json": `{"scripts":"npm"}`}, `"scripts" must be an object`)
		prepareErr(t, "node", map[string]string{"package.json": ""}, "package.json is not valid JSON")
	})
	t.Run("package.json must be a regular file", func(t *testing.T) {
		dir := repo(t, map[string]string{"server.js": ""})
		if err := os.Symlink("/etc/passwd", filepath.Join(dir, "package.json")); err != nil {
			t.Fatal(err)
		}
		_, err := Prepare(dir, Options{Runtime: "node"})
		if err == nil || !strings.Contains(err.Error(), "package.json is a symbolic link") {
			t.Errorf("a linked package.json: %v", err)
		}
	})
	t.Run("a linked lock file is refused", func(t *testing.T) {
		dir := repo(t, map[string]string{"package.json": `{"dependencies":{"a":"1"},"scripts":{"start":"x"}}`})
		if err := os.Symlink("/etc/shadow", filepath.Join(dir, "package-lock.json")); err != nil {
			t.Fatal(err)
		}
		if _, err := Prepare(dir, Options{Runtime: "node"}); err == nil || !IsUserError(err) {
			t.Errorf("a linked package-lock.json: %v", err)
		}
	})
}

func TestPythonDockerfile(t *testing.T) {
	t.Run("standard library only", func(t *testing.T) {
		for _, req := range []string{"", "# nothing yet\n\n"} {
			p := prepare(t, "python", map[string]string{"requirements.txt": req, "app.py": ""})
			if strings.Contains(p.Dockerfile, "pip") {
				t.Errorf("pip for an empty requirements.txt:\n%s", p.Dockerfile)
			}
			order(t, p.Dockerfile, "FROM python:3.11-slim-bookworm\n", "COPY app/ /app/\n", "USER 1000:1000\n", `CMD ["python3","app.py"]`)
		}
		p := prepare(t, "python", map[string]string{"pyproject.toml": "[project]\nname='x'\n", "main.py": ""})
		if got := cmdOf(t, p.Dockerfile); got[1] != "main.py" {
			t.Errorf("CMD %q", got)
		}
	})
	t.Run("requirements in their own layer", func(t *testing.T) {
		p := prepare(t, "python", map[string]string{"requirements.txt": "flask==3.0.0\n", "app.py": ""})
		order(t, p.Dockerfile, "COPY app/requirements.txt /app/\n", "RUN python3 -m pip --version", "pip install", "-r requirements.txt\n", "COPY app/ /app/\n")
	})
	t.Run("requirements that need the repository", func(t *testing.T) {
		for _, req := range []string{"-r requirements/base.txt\n", "-e .\n", "./vendor/pkg.whl\n", "--find-links wheels\nflask\n", "-rother.txt\n", "pkg @ file:///app/x\n"} {
			p := prepare(t, "python", map[string]string{"requirements.txt": req, "app.py": ""})
			order(t, p.Dockerfile, "COPY app/ /app/\n", "pip install")
			if strings.Contains(p.Dockerfile, "COPY app/requirements.txt") {
				t.Errorf("%q: requirements copied alone:\n%s", req, p.Dockerfile)
			}
		}
		p := prepare(t, "python", map[string]string{"requirements.txt": "--index-url https://pypi.example/simple\nflask\n", "app.py": ""})
		order(t, p.Dockerfile, "COPY app/requirements.txt /app/\n", "pip install")
	})
	t.Run("nothing to start", func(t *testing.T) {
		prepareErr(t, "python", map[string]string{"requirements.txt": "", "server.py": ""}, "add a Procfile with a web: line")
	})
}

func TestPHPDockerfile(t *testing.T) {
	p := prepare(t, "php", map[string]string{"index.php": "<?php echo 1;"})
	order(t, p.Dockerfile, "FROM php:8.2-apache-bookworm\n", "WORKDIR /var/www/html\n", "RUN if [ -f /etc/apache2/ports.conf ]", "COPY app/ /var/www/html/\n", "USER 1000:1000\n", `CMD ["apache2-foreground"]`)

	p = prepare(t, "auto", map[string]string{"composer.json": `{"require":{"php":">=8.1"}}`, "composer.lock": "{}", "index.php": ""})
	order(t, p.Dockerfile, "COPY app/composer.json app/composer.lock /var/www/html/\n", "composer install", "COPY app/ /var/www/html/\n", "composer dump-autoload")

	prepareErr(t, "php", map[string]string{"composer.json": "{oops"}, "composer.json is not valid JSON")
}

func TestProcfileStartIsEmbeddedVerbatim(t *testing.T) {
	hostile := []string{
		`node server.js --port "$PORT"`,
		`sh -c 'echo $(id) && rm -rf / ; echo "\"quoted\""' \`,
		"python3 -c \"print('\\u2028 line\u2028separator <script>&amp;')\" ]",
		`"]` + "\t" + `RUN evil`,
		`echo \"]\nRUN echo pwned`,
		"exec gunicorn app:app --bind 0.0.0.0:${PORT:-8080} # trailing comment",
		strings.Repeat("x", MaxWebCommand),
		`$(curl http://169.254.169.254/) ` + "`uname`",
	}
	for _, web := range hostile {
		p := prepare(t, "node", map[string]string{
			"package.json": `{}`,
			"Procfile":     "worker: node worker.js\nweb: " + web + "\r\nrelease: ./migrate\n",
		})
		argv := cmdOf(t, p.Dockerfile)
		if len(argv) != 3 || argv[0] != "/bin/bash" || argv[1] != "-c" || argv[2] != web {
			t.Errorf("CMD %q, want bash -c %q", argv, web)
		}
		if p.StartFrom != "Procfile" {
			t.Errorf("start from %q", p.StartFrom)
		}
		for _, ins := range instructions(p.Dockerfile) {
			if strings.Contains(ins, "pwned") && !strings.HasPrefix(ins, "CMD ") || strings.HasPrefix(ins, "RUN evil") {
				t.Errorf("the Procfile made an instruction: %q", ins)
			}
		}
		if n := len(instructions(p.Dockerfile)); n != len(instructions(prepare(t, "node", map[string]string{"package.json": `{}`, "Procfile": "web: x"}).Dockerfile)) {
			t.Errorf("%q changed the number of instructions to %d:\n%s", web, n, p.Dockerfile)
		}
	}
}

func TestParseProcfile(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"web: npm start\n", "npm start", ""},
		{"web:npm start", "npm start", ""},
		{"  web :  python3 app.py  \r\n", "python3 app.py", ""},
		{"\uFEFFweb: x\n", "x", ""},
		{"# web: commented\nworker: node w.js\n", "", ""},
		{"", "", ""},
		{"webby: x\nweb-2: y\n", "", ""},
		{"release: ./migrate\nweb: ./serve\nclock: ./tick\n", "./serve", ""},
		{"web:\n", "", "has no command"},
		{"web: a\nweb: b\n", "", "more than one web: line (line 2)"},
		{"web: a\x00b\n", "", "control character"},
		{"web: a\rb\n", "", "control character"},
		{"web: a\x1b[31mred\n", "", "control character"},
		{"web: \xff\xfe\n", "", "not valid UTF-8"},
		{"web: " + strings.Repeat("y", MaxWebCommand+1) + "\n", "", "longer than 4096 bytes"},
		{"web: a\tb", "a\tb", ""},
		{"web: echo a\nRUN echo pwned\n", "echo a", ""},
	}
	for _, tt := range tests {
		got, err := ParseProcfile([]byte(tt.in))
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseProcfile(%q) error %v, want %q", tt.in, err, tt.err)
		case tt.err == "" && err != nil:
			t.Errorf("ParseProcfile(%q): %v", tt.in, err)
		case tt.err == "" && got != tt.want:
			t.Errorf("ParseProcfile(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestProcfileFileLimits(t *testing.T) {
	prepareErr(t, "node", map[string]string{"package.json": "{}", "Procfile": strings.Repeat("# filler\n", 10<<10)}, "Procfile is larger than 64 KiB")
	dir := repo(t, map[string]string{"package.json": "{}", "server.js": ""})
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "Procfile")); err != nil {
		t.Fatal(err)
	}
	if _, err := Prepare(dir, Options{Runtime: "node"}); err == nil || !strings.Contains(err.Error(), "Procfile is a symbolic link") {
		t.Errorf("linked Procfile: %v", err)
	}
}

func TestJSONArrayStaysOnOneLine(t *testing.T) {
	for _, s := range []string{"a\nb", "a\rb", "\u2028", "\u2029", `\`, "x\\\n", "<&>"} {
		line := jsonArray([]string{s})
		if strings.ContainsAny(line, "\n\r\u2028\u2029") || strings.HasSuffix(line, `\`) {
			t.Errorf("jsonArray(%q) = %q", s, line)
		}
		var back []string
		if err := json.Unmarshal([]byte(line), &back); err != nil || back[0] != s {
			t.Errorf("jsonArray(%q) decodes to %q (%v)", s, back, err)
		}
	}
}

func TestAutoRuntimeUsesTheCatalogueImagesOfTheDetectedStack(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "requirements.txt"), []byte("# stdlib only\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte("print('hi')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plan, err := Prepare(dir, Options{Runtime: "auto", ByKind: map[Kind][2]string{
		Python: {"registry.example/python:build", "registry.example/python:run"},
		Node:   {"registry.example/node:1", "registry.example/node:1"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Kind != Python || plan.BuildImage != "registry.example/python:build" || plan.RunImage != "registry.example/python:run" {
		t.Errorf("plan %s build %s run %s", plan.Kind, plan.BuildImage, plan.RunImage)
	}
}
