package gitclone

import (
	"context"
	"errors"
	"net/http"
	"net/http/cgi"
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

// fakeTokens hands out one token, or an error, and records what it was asked for.
type fakeTokens struct {
	token string
	err   error

	mu    sync.Mutex
	asked []string // appID/deploymentID
}

func (f *fakeTokens) OpenGitHubToken(_ context.Context, appID, deploymentID string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, appID+"/"+deploymentID)
	return f.token, f.err
}

// privateRepo makes ROOT/app.git with two commits on main, the second with a message of
// several lines, and returns ROOT, both commits and the second's message.
func privateRepo(t *testing.T) (root, first, head, message string) {
	t.Helper()
	src := t.TempDir()
	git(t, src, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(src, "Dockerfile"), []byte("FROM scratch\n"), 0o644)
	git(t, src, "add", ".")
	git(t, src, "commit", "-q", "-m", "first")
	first = git(t, src, "rev-parse", "HEAD")
	os.WriteFile(filepath.Join(src, "README"), []byte("hello\n"), 0o644)
	git(t, src, "add", ".")
	message = "Add a README\n\nIt says hello, in plain words: café."
	git(t, src, "commit", "-q", "-m", message)
	head = git(t, src, "rev-parse", "HEAD")
	root = t.TempDir()
	git(t, root, "clone", "-q", "--bare", src, "app.git")
	return root, first, head, message
}

// privateServer serves root over smart HTTP (git http-backend) to a client whose basic-auth
// password is token, and asks any other for credentials (401), as GitHub does for a private
// repository. Each upload-pack request (the fetch itself) waits delay first, so a test can look
// at the cloning processes. fetches counts the upload-pack requests that got through.
func privateServer(t *testing.T, root, token string, delay time.Duration) (url string, fetches *atomic.Int64) {
	t.Helper()
	fetches = new(atomic.Int64)
	backend := &cgi.Handler{
		Path: filepath.Join(git(t, root, "--exec-path"), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, password, ok := r.BasicAuth(); !ok || password != token {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "credentials required", http.StatusUnauthorized)
			return
		}
		// The CGI handler would hand the header on to git http-backend's environment.
		r.Header.Del("Authorization")
		if strings.HasSuffix(r.URL.Path, "/git-upload-pack") {
			fetches.Add(1)
			time.Sleep(delay)
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/app.git", fetches
}

// tokenIn lists the processes whose command line or environment holds token.
func tokenIn(token string) (where []string, procs int) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		procs++
		for _, file := range []string{"cmdline", "environ"} {
			data, err := os.ReadFile(filepath.Join("/proc", e.Name(), file))
			if err == nil && strings.Contains(string(data), token) {
				comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
				where = append(where, e.Name()+" ("+strings.TrimSpace(string(comm))+") "+file)
			}
		}
	}
	return where, procs
}

// envOf is the environment of the live processes whose command line holds s.
func envOf(s string) []string {
	var out []string
	for _, p := range procsWith(s) {
		data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.pid), "environ"))
		if err == nil {
			out = append(out, strings.Split(string(data), "\x00")...)
		}
	}
	return out
}

// A private repository clones with the token of the user who connected the app: the right
// commit and its message come back, and while git runs the token is in no process's argument
// list or environment; afterwards it is in no build-log line and no git config, and the
// askpass directory that held it is gone.
func TestCloneWithGitHubToken(t *testing.T) {
	const token = "gho_S3cretTokenOfTheUser0123456789"
	root, _, head, message := privateRepo(t)
	url, fetches := privateServer(t, root, token, 1500*time.Millisecond)

	sink := &memSink{}
	tokens := &fakeTokens{token: token}
	a := &Activities{WorkRoot: t.TempDir(), Logs: sink, Tokens: tokens}
	in := CloneInput{AppID: "app1", DeploymentID: "dep-gh", GitURL: url, Branch: "main", AllowLoopbackHTTP: true, GitHubToken: true}

	type result struct {
		res CloneResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := newEnv(t, a).ExecuteActivity(a.CloneRepository, in)
		var out CloneResult
		if err == nil {
			err = res.Get(&out)
		}
		done <- result{out, err}
	}()

	// While the fetch waits in the server, git and its HTTP helper are running.
	deadline := time.Now().Add(30 * time.Second)
	for fetches.Load() == 0 || len(procsWith(url)) == 0 {
		select {
		case r := <-done:
			t.Fatalf("the clone ended before it could be looked at: %v", r.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("git never fetched")
		}
		time.Sleep(10 * time.Millisecond)
	}
	where, procs := tokenIn(token)
	if len(where) > 0 {
		t.Errorf("the token is in %v while git clones", where)
	}
	if procs < 3 {
		t.Errorf("only %d processes in /proc: the scan saw nothing", procs)
	}
	// The askpass helper git runs: private, outside the clone, the token in a file only.
	askDirs, _ := filepath.Glob(filepath.Join(a.WorkRoot, askpassPrefix+"*"))
	if len(askDirs) != 1 {
		t.Fatalf("askpass directories %v while cloning, want one", askDirs)
	}
	var askpassEnv string
	for _, kv := range envOf(url) {
		if v, ok := strings.CutPrefix(kv, "GIT_ASKPASS="); ok {
			askpassEnv = v
		}
	}
	if askpassEnv != filepath.Join(askDirs[0], "askpass") {
		t.Errorf("git runs with GIT_ASKPASS=%q, want the clone's helper in %s", askpassEnv, askDirs[0])
	}
	for name, want := range map[string]os.FileMode{"": 0o700, "askpass": 0o700, "token": 0o600} {
		if info, err := os.Stat(filepath.Join(askDirs[0], name)); err != nil || info.Mode().Perm() != want {
			t.Errorf("askpass %q: %v %v, want mode %v", name, info.Mode(), err, want)
		}
	}

	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.res.CommitSHA != head || r.res.CommitMessage != message {
		t.Errorf("cloned commit %s %q, want %s %q", r.res.CommitSHA, r.res.CommitMessage, head, message)
	}
	tokens.mu.Lock()
	if asked := tokens.asked; len(asked) != 1 || asked[0] != "app1/dep-gh" {
		t.Errorf("tokens asked for %v, want app1/dep-gh once", asked)
	}
	tokens.mu.Unlock()
	log := sink.text()
	if strings.Contains(log, token) {
		t.Errorf("the build log holds the token:\n%s", log)
	}
	if !strings.Contains(log, "GitHub token of the user who connected the app") || !strings.Contains(log, head) {
		t.Errorf("the build log does not say how and what it cloned:\n%s", log)
	}
	config, err := os.ReadFile(filepath.Join(r.res.Dir, ".git", "config"))
	if err != nil || strings.Contains(string(config), token) || strings.Contains(string(config), githubUsername) {
		t.Errorf("the clone's git config (%v) holds the credentials:\n%s", err, config)
	}
	if entries, _ := os.ReadDir(a.WorkRoot); len(entries) != 1 || entries[0].Name() != "dep-gh" {
		t.Errorf("the work area holds %v after the clone, want only the deployment's directory", entries)
	}
}

// A pinned commit (a heal's rebuild) clones the branch's history with the token and checks
// that commit out.
func TestCloneAtCommitWithGitHubToken(t *testing.T) {
	const token = "gho_PinnedCommitToken42"
	root, first, _, _ := privateRepo(t)
	url, _ := privateServer(t, root, token, 0)
	a := &Activities{WorkRoot: t.TempDir(), Logs: &memSink{}, Tokens: &fakeTokens{token: token}}
	res, err := clone(t, a, CloneInput{AppID: "app1", DeploymentID: "dep-pin", GitURL: url, Branch: "main", Commit: first,
		AllowLoopbackHTTP: true, GitHubToken: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.CommitSHA != first || res.CommitMessage != "first" {
		t.Errorf("commit %s %q, want the first commit %s", res.CommitSHA, res.CommitMessage, first)
	}
	if _, err := os.Stat(filepath.Join(res.Dir, "README")); err == nil {
		t.Error("README of the second commit is in the work dir")
	}
	if dirs, _ := filepath.Glob(filepath.Join(a.WorkRoot, askpassPrefix+"*")); len(dirs) != 0 {
		t.Errorf("askpass directories left: %v", dirs)
	}
}

// A token GitHub refuses (revoked, access lost) fails the deployment for good, saying to
// reconnect GitHub, without the token; a private repository cloned without a token fails as
// before; a refusal of the control plane reaches the deployment in its words.
func TestCloneWithGitHubTokenRefused(t *testing.T) {
	const token = "gho_TheRightToken"
	root, _, _, _ := privateRepo(t)
	url, _ := privateServer(t, root, token, 0)

	refused := temporal.NewNonRetryableApplicationError("the control plane gave this node no GitHub token to clone app app1 (HTTP 409): reconnect GitHub",
		ErrTypeCredentials, nil)
	for _, c := range []struct {
		name    string
		tokens  CloneTokens
		github  bool
		errType string
		msg     string
	}{
		{"wrong token", &fakeTokens{token: "gho_RevokedToken"}, true, ErrTypeCredentials,
			"GitHub refused the token of the user who connected this app (revoked, or no longer allowed to read " + url + "): reconnect GitHub (GET /api/paas/github/authorize) and deploy again"},
		{"no token asked for", &fakeTokens{token: token}, false, ErrTypeRepositoryNotFound, "asks for credentials: it is private or does not exist"},
		{"no token source", nil, true, ErrTypeInvalidInput, "no source of GitHub tokens"},
		{"refused by the control plane", &fakeTokens{err: refused}, true, ErrTypeCredentials, "reconnect GitHub"},
		{"malformed token", &fakeTokens{token: "gho_a\nb"}, true, ErrTypeCredentials, "malformed GitHub token"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sink := &memSink{}
			a := &Activities{WorkRoot: t.TempDir(), Logs: sink, Tokens: c.tokens}
			_, err := clone(t, a, CloneInput{AppID: "app1", DeploymentID: "dep-no", GitURL: url, Branch: "main",
				AllowLoopbackHTTP: true, GitHubToken: c.github})
			wantAppError(t, err, c.errType, c.msg)
			if strings.Contains(err.Error(), "gho_") || strings.Contains(sink.text(), "gho_") {
				t.Errorf("the token is in the error or the build log: %v\n%s", err, sink.text())
			}
			if entries, _ := os.ReadDir(a.WorkRoot); len(entries) != 0 {
				t.Errorf("the work area keeps %v after the refused clone", entries)
			}
		})
	}
}

// A clone that times out while fetching with the token removes the askpass directory too.
func TestCloneWithGitHubTokenTimedOutRemovesAskpass(t *testing.T) {
	const token = "gho_SlowServer"
	root, _, _, _ := privateRepo(t)
	url, _ := privateServer(t, root, token, 3*time.Second)
	a := &Activities{WorkRoot: t.TempDir(), Logs: &memSink{}, Tokens: &fakeTokens{token: token}, Timeout: time.Second}
	_, err := clone(t, a, CloneInput{AppID: "app1", DeploymentID: "dep-slow", GitURL: url, Branch: "main", AllowLoopbackHTTP: true, GitHubToken: true})
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("error %v: want a timeout", err)
	}
	if entries, _ := os.ReadDir(a.WorkRoot); len(entries) != 0 {
		t.Errorf("the work area keeps %v after the timed-out clone", entries)
	}
}

// An agent killed in the middle of a clone leaves its askpass directory: the next token clone
// removes it once no live clone can own it, and leaves a young one alone.
func TestCloneRemovesStaleAskpassDirectories(t *testing.T) {
	const token = "gho_StaleSweep"
	root, _, _, _ := privateRepo(t)
	url, _ := privateServer(t, root, token, 0)
	a := &Activities{WorkRoot: t.TempDir(), Logs: &memSink{}, Tokens: &fakeTokens{token: token}, Timeout: time.Minute}
	stale, young := filepath.Join(a.WorkRoot, askpassPrefix+"stale"), filepath.Join(a.WorkRoot, askpassPrefix+"young")
	for _, d := range []string{stale, young} {
		os.MkdirAll(d, 0o700)
		os.WriteFile(filepath.Join(d, "token"), []byte("gho_old"), 0o600)
	}
	old := time.Now().Add(-3 * time.Hour)
	os.Chtimes(stale, old, old)
	if _, err := clone(t, a, CloneInput{AppID: "app1", DeploymentID: "dep-sweep", GitURL: url, Branch: "main", AllowLoopbackHTTP: true, GitHubToken: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stale askpass directory is still there: %v", err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("a young askpass directory was removed: %v", err)
	}
}

// Should git ever print the token, it is cut out of every line before it reaches the build
// log, and out of the output errors quote.
func TestGitOutputIsRedacted(t *testing.T) {
	const token = "gho_PrintedByGit"
	auth := &gitAuth{askpass: "true", token: token}
	repo := t.TempDir()
	git(t, repo, "init", "-q")
	var lines []string
	// git repeats an unknown revision in its error.
	out, err := runGit(context.Background(), auth, []string{"-C", repo, "rev-parse", "x" + token}, func(l string) { lines = append(lines, l) })
	if err == nil {
		t.Fatal("git rev-parse of an unknown revision succeeded")
	}
	if strings.Contains(out, token) || strings.Contains(strings.Join(lines, "\n"), token) {
		t.Errorf("git's output holds the token: %q, lines %q", out, lines)
	}
	if _, err := gitOutput(context.Background(), auth, []string{"-C", repo, "log", "x" + token}, 100); err == nil || strings.Contains(err.Error(), token) {
		t.Errorf("gitOutput error %v: want an error without the token", err)
	}
	if !strings.Contains(out+strings.Join(lines, "\n"), "[REDACTED]") {
		t.Errorf("git's output %q does not show the redaction: did git print the revision at all?", out)
	}
}

func TestCapMessage(t *testing.T) {
	if got := capMessage("  subject\n\nbody\n\n"); got != "subject\n\nbody" {
		t.Errorf("trimmed %q", got)
	}
	// "é" is two bytes: a cut at maxCommitMessageBytes would split the last one.
	long := strings.Repeat("a", maxCommitMessageBytes-1) + strings.Repeat("é", 10)
	got := capMessage(long)
	if len(got) != maxCommitMessageBytes-1 || !strings.HasSuffix(long[:len(got)], "a") {
		t.Errorf("capped to %d bytes ending %q, want %d bytes on a character boundary", len(got), got[len(got)-3:], maxCommitMessageBytes-1)
	}
	exact := strings.Repeat("é", maxCommitMessageBytes/2)
	if got := capMessage(exact + "x"); got != exact {
		t.Errorf("capped to %d bytes, want the %d of whole characters", len(got), len(exact))
	}
}
