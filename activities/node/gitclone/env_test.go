package gitclone

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
)

// gitEnv drops everything the agent's own environment could use to steer git (GIT_*, and the
// locale, LANG and LC_ALL) and adds the settings that make git fail instead of prompting and
// ignore the machine's system and global configuration.
func TestGitEnvScrubsInheritedSettings(t *testing.T) {
	inherited := map[string]string{
		"GIT_DIR":                     "/tmp/elsewhere/.git",
		"GIT_WORK_TREE":               "/tmp/elsewhere",
		"GIT_SSH_COMMAND":             "ssh -o ProxyCommand=evil",
		"GIT_CONFIG_PARAMETERS":       "'url.https://evil.example/.insteadof'='https://github.com/'",
		"GIT_CONFIG_COUNT":            "1",
		"GIT_CONFIG_KEY_0":            "core.askPass",
		"GIT_CONFIG_VALUE_0":          "/tmp/askpass",
		"GIT_ASKPASS":                 "/tmp/askpass",
		"GIT_TERMINAL_PROMPT":         "1",
		"GIT_CONFIG_NOSYSTEM":         "0",
		"GIT_CONFIG_GLOBAL":           "/tmp/gitconfig",
		"GIT_CONFIG_SYSTEM":           "/tmp/gitconfig",
		"LANG":                        "de_DE.UTF-8",
		"LC_ALL":                      "de_DE.UTF-8",
		"SKYPANEL_REGISTRATION_TOKEN": "spr_secret",
		"SKYPANEL_API_URL":            "http://127.0.0.1:3001",
		"https_proxy":                 "http://proxy.internal:3128",
	}
	for k, v := range inherited {
		t.Setenv(k, v)
	}

	got := map[string][]string{}
	for _, kv := range gitEnv() {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = append(got[k], v)
	}
	want := map[string]string{
		"GIT_TERMINAL_PROMPT": "0",
		"GIT_ASKPASS":         "true",
		"GIT_CONFIG_NOSYSTEM": "1",
		"GIT_CONFIG_GLOBAL":   "/dev/null",
		"LC_ALL":              "C",
	}
	for k, v := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint([]string{v}) {
			t.Errorf("%s = %q in git's environment, want exactly [%q]", k, got[k], v)
		}
	}
	for k, vs := range got {
		if _, ok := want[k]; !ok && strings.HasPrefix(k, "GIT_") {
			t.Errorf("inherited %s=%q reaches git", k, vs)
		}
	}
	if vs, ok := got["LANG"]; ok {
		t.Errorf("inherited LANG=%q reaches git", vs)
	}
	for k, vs := range got {
		if strings.HasPrefix(k, "SKYPANEL_") {
			t.Errorf("the agent's own %s=%q reaches git", k, vs)
		}
	}
	if fmt.Sprint(got["https_proxy"]) != "[http://proxy.internal:3128]" || len(got["PATH"]) != 1 {
		t.Errorf("what git needs is not passed on: https_proxy=%q PATH=%q", got["https_proxy"], got["PATH"])
	}
}

// countingServer serves root over dumb HTTP and counts the requests it gets.
func countingServer(t *testing.T, root string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	files := http.FileServer(http.Dir(root))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// A url.<decoy>.insteadOf rewrite, or a GIT_DIR, in the agent's environment or in its user's
// global git config, would make the clone fetch (or report) something other than the URL that
// was validated. The clone must come from the requested server, untouched.
func TestCloneIgnoresInheritedGitConfig(t *testing.T) {
	root, head := bareRepo(t)
	good, goodHits := countingServer(t, root)

	// The decoy serves another repository (a different history) under the same path.
	decoySrc := t.TempDir()
	git(t, decoySrc, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(decoySrc, "DECOY"), []byte("decoy\n"), 0o644)
	git(t, decoySrc, "add", ".")
	git(t, decoySrc, "commit", "-q", "-m", "decoy")
	decoyHead := git(t, decoySrc, "rev-parse", "HEAD")
	decoyRoot := t.TempDir()
	git(t, decoyRoot, "clone", "-q", "--bare", decoySrc, "app.git")
	git(t, filepath.Join(decoyRoot, "app.git"), "update-server-info")
	decoy, decoyHits := countingServer(t, decoyRoot)

	rewrite := fmt.Sprintf("[url %q]\n\tinsteadOf = %s/\n", decoy.URL+"/", good.URL)
	writeConfig := func(t *testing.T, path string) string {
		t.Helper()
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(rewrite), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}

	cases := []struct {
		name string
		env  func(t *testing.T) map[string]string
	}{
		{"GIT_CONFIG_COUNT", func(t *testing.T) map[string]string {
			return map[string]string{
				"GIT_CONFIG_COUNT":   "1",
				"GIT_CONFIG_KEY_0":   "url." + decoy.URL + "/.insteadOf",
				"GIT_CONFIG_VALUE_0": good.URL + "/",
			}
		}},
		{"GIT_CONFIG_PARAMETERS", func(t *testing.T) map[string]string {
			return map[string]string{
				"GIT_CONFIG_PARAMETERS": fmt.Sprintf("'url.%s/.insteadof'='%s/'", decoy.URL, good.URL),
			}
		}},
		{"HOME .gitconfig", func(t *testing.T) map[string]string {
			home := t.TempDir()
			writeConfig(t, filepath.Join(home, ".gitconfig"))
			writeConfig(t, filepath.Join(home, ".config", "git", "config"))
			return map[string]string{"HOME": home, "XDG_CONFIG_HOME": filepath.Join(home, ".config")}
		}},
		{"GIT_CONFIG_GLOBAL and GIT_CONFIG_SYSTEM", func(t *testing.T) map[string]string {
			path := writeConfig(t, filepath.Join(t.TempDir(), "gitconfig"))
			return map[string]string{"GIT_CONFIG_GLOBAL": path, "GIT_CONFIG_SYSTEM": path, "GIT_CONFIG_NOSYSTEM": "0"}
		}},
		{"GIT_DIR", func(t *testing.T) map[string]string {
			// git rev-parse would read the decoy's HEAD instead of the clone's.
			return map[string]string{"GIT_DIR": filepath.Join(decoySrc, ".git"), "GIT_WORK_TREE": decoySrc}
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			goodBefore := goodHits.Load()
			decoyBefore := decoyHits.Load()
			for k, v := range tc.env(t) {
				t.Setenv(k, v)
			}
			a := &Activities{WorkRoot: t.TempDir(), Logs: &memSink{}}
			res, err := clone(t, a, CloneInput{AppID: "app1", DeploymentID: "dep-env-" + strconv.Itoa(i),
				GitURL: good.URL + "/app.git", Branch: "main", AllowLoopbackHTTP: true})
			if err != nil {
				t.Fatalf("clone: %v", err)
			}
			if res.CommitSHA != head {
				t.Errorf("cloned commit %s, want %s (the decoy's is %s)", res.CommitSHA, head, decoyHead)
			}
			if _, err := os.Stat(filepath.Join(res.Dir, "DECOY")); err == nil {
				t.Error("the clone holds the decoy repository")
			}
			if n := decoyHits.Load() - decoyBefore; n != 0 {
				t.Errorf("the decoy server got %d requests: git followed an inherited rewrite", n)
			}
			if goodHits.Load() == goodBefore {
				t.Error("the requested server got no request")
			}
			if got := git(t, decoySrc, "rev-parse", "HEAD"); got != decoyHead {
				t.Errorf("the decoy repository's HEAD moved to %s", got)
			}
		})
	}
}

// A remote that asks for credentials makes the clone fail at once: git never runs an askpass
// program or prompt from the agent's environment (one that waits for a human would hang the
// clone until its timeout).
func TestCloneDoesNotPromptForCredentials(t *testing.T) {
	var asked atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.Header().Set("WWW-Authenticate", `Basic realm="private"`)
		http.Error(w, "credentials required", http.StatusUnauthorized)
	}))
	defer srv.Close()

	dir := t.TempDir()
	marker := filepath.Join(dir, "prompted")
	askpass := filepath.Join(dir, "askpass.sh")
	// A prompt waiting for a human: it records that it ran, then never answers.
	script := fmt.Sprintf("#!/bin/sh\necho \"$@\" >> %s\nexec sleep 3600\n", marker)
	if err := os.WriteFile(askpass, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GIT_ASKPASS", askpass)
	t.Setenv("SSH_ASKPASS", askpass)
	t.Setenv("GIT_TERMINAL_PROMPT", "1")
	t.Setenv("GIT_CONFIG_COUNT", "1")
	t.Setenv("GIT_CONFIG_KEY_0", "core.askPass")
	t.Setenv("GIT_CONFIG_VALUE_0", askpass)

	// A generous timeout: a prompt that hangs shows up as a timeout, not as the answer below.
	a := &Activities{WorkRoot: t.TempDir(), Logs: &memSink{}, Timeout: 30 * time.Second}
	_, err := clone(t, a, CloneInput{AppID: "app1", DeploymentID: "dep-auth", GitURL: srv.URL + "/private.git", Branch: "main", AllowLoopbackHTTP: true})
	if data, statErr := os.ReadFile(marker); statErr == nil {
		t.Errorf("git ran the inherited askpass program: %q", data)
	}
	wantAppError(t, err, ErrTypeRepositoryNotFound, "asks for credentials")
	if asked.Load() == 0 {
		t.Error("the server was never asked")
	}
}

// git's messages stay in English whatever the agent's locale (LC_ALL=C), so a failure is still
// classified: a missing branch is BranchNotFound, not a retryable error in German.
func TestCloneClassifiesFailuresWhateverTheLocale(t *testing.T) {
	if _, err := os.Stat("/usr/share/locale/de/LC_MESSAGES/git.mo"); err != nil {
		t.Skip("git has no German translation installed")
	}
	root, _ := bareRepo(t)
	srv := httptest.NewServer(http.FileServer(http.Dir(root)))
	defer srv.Close()

	// C.UTF-8 is a locale that is always there; LANGUAGE then picks git's German messages.
	t.Setenv("LANG", "C.UTF-8")
	t.Setenv("LC_ALL", "C.UTF-8")
	t.Setenv("LC_MESSAGES", "C.UTF-8")
	t.Setenv("LANGUAGE", "de")

	a := &Activities{WorkRoot: t.TempDir(), Logs: &memSink{}}
	_, err := clone(t, a, CloneInput{AppID: "app1", DeploymentID: "dep-locale", GitURL: srv.URL + "/app.git", Branch: "nope", AllowLoopbackHTTP: true})
	wantAppError(t, err, ErrTypeBranchNotFound, `branch "nope" does not exist`)
}

// hangingServer accepts connections on loopback and never answers; it closes them when the
// test ends.
func hangingServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + l.Addr().String()
}

// proc is a live process whose command line holds a string.
type proc struct {
	pid, pgid int
	comm      string
}

// procsWith lists the live (not zombie) processes whose command line contains s.
func procsWith(s string) []proc {
	entries, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), s) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		open, close := strings.IndexByte(string(stat), '('), strings.LastIndexByte(string(stat), ')')
		if open < 0 || close < open {
			continue
		}
		// After "(comm) ": state ppid pgrp ...
		fields := strings.Fields(string(stat[close+1:]))
		if len(fields) < 3 || fields[0] == "Z" || fields[0] == "X" {
			continue
		}
		pgid, _ := strconv.Atoi(fields[2])
		out = append(out, proc{pid: pid, pgid: pgid, comm: string(stat[open+1 : close])})
	}
	return out
}

// procsInGroup lists the live processes of a process group.
func procsInGroup(pgid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		close := strings.LastIndexByte(string(stat), ')')
		fields := strings.Fields(string(stat[close+1:]))
		if len(fields) < 3 || fields[0] == "Z" || fields[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(fields[2]); g == pgid {
			out = append(out, pid)
		}
	}
	return out
}

// A clone whose server never answers ends when Activities.Timeout passes, as a (retryable)
// timeout, and git's whole process group dies with it: no git-remote-http is left holding a
// connection.
func TestCloneTimeoutKillsGitAndItsHelpers(t *testing.T) {
	base := hangingServer(t)
	unique := fmt.Sprintf("hang-%d-%d.git", os.Getpid(), time.Now().UnixNano())
	url := base + "/" + unique
	const timeout = 3 * time.Second
	a := &Activities{WorkRoot: t.TempDir(), Logs: &memSink{}, Timeout: timeout}

	type result struct{ err error }
	done := make(chan result, 1)
	go func() {
		_, err := newEnv(t, a).ExecuteActivity(a.CloneRepository, CloneInput{
			AppID: "app1", DeploymentID: "dep-hang", GitURL: url, Branch: "main", AllowLoopbackHTTP: true})
		done <- result{err}
	}()

	// While the clone hangs, git has started its HTTP helper.
	var helpers []proc
	deadline := time.Now().Add(30 * time.Second)
	for {
		helpers = nil
		for _, p := range procsWith(unique) {
			if strings.HasPrefix(p.comm, "git-remote-") || strings.HasPrefix(p.comm, "remote-http") {
				helpers = append(helpers, p)
			}
		}
		if len(helpers) > 0 {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("the clone ended before its helper was seen: %v", r.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no git-remote-http for %s appeared; processes: %+v", url, procsWith(unique))
		}
		time.Sleep(20 * time.Millisecond)
	}
	pgid := helpers[0].pgid

	var r result
	select {
	case r = <-done:
	case <-time.After(timeout + 60*time.Second):
		t.Fatalf("the clone did not end after its %s timeout", timeout)
	}
	if r.err == nil || !strings.Contains(r.err.Error(), "timed out after "+timeout.String()) {
		t.Fatalf("error %v: want the clone to time out after %s", r.err, timeout)
	}
	var appErr *temporal.ApplicationError
	if errors.As(r.err, &appErr) && appErr.NonRetryable() {
		t.Errorf("a timeout is non-retryable: %v", r.err)
	}
	if _, err := os.Stat(filepath.Join(a.WorkRoot, "dep-hang")); err == nil {
		t.Error("the timed-out clone's directory was left behind")
	}

	// Gone right away (SIGKILL), but give the kernel and the reaper a moment.
	deadline = time.Now().Add(10 * time.Second)
	for {
		left, group := procsWith(unique), procsInGroup(pgid)
		if len(left) == 0 && len(group) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("git processes left after the timeout: with the URL %+v, in process group %d: %v", left, pgid, group)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
