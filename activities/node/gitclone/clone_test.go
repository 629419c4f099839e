package gitclone

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/skypanel/skypanel/activities/node/buildlog"
)

type memSink struct {
	mu     sync.Mutex
	chunks []buildlog.Chunk
}

func (s *memSink) Append(_ context.Context, c buildlog.Chunk) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chunks = append(s.chunks, c)
	return nil
}

func (s *memSink) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, c := range s.chunks {
		b.WriteString(c.Text)
	}
	return b.String()
}

func (s *memSink) checkSeq(t *testing.T, source string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	last := 0
	for _, c := range s.chunks {
		if c.Source != source || c.Attempt != 1 {
			t.Errorf("chunk %+v: want source %q attempt 1", c, source)
		}
		if c.Seq <= last {
			t.Errorf("chunk seq %d after %d: want increasing", c.Seq, last)
		}
		last = c.Seq
	}
}

// git runs a git command for test set-up.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// bareRepo makes ROOT/app.git with two commits on main and one on "feature", ready for dumb
// HTTP, and returns ROOT and main's head commit.
func bareRepo(t *testing.T) (root, head string) {
	t.Helper()
	src := t.TempDir()
	git(t, src, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(src, "Dockerfile"), []byte("FROM scratch\n"), 0o644)
	git(t, src, "add", ".")
	git(t, src, "commit", "-q", "-m", "first")
	os.WriteFile(filepath.Join(src, "README"), []byte("hello\n"), 0o644)
	git(t, src, "add", ".")
	git(t, src, "commit", "-q", "-m", "second")
	head = git(t, src, "rev-parse", "HEAD")
	git(t, src, "checkout", "-q", "-b", "feature")
	os.WriteFile(filepath.Join(src, "FEATURE"), []byte("x\n"), 0o644)
	git(t, src, "add", ".")
	git(t, src, "commit", "-q", "-m", "feature")

	root = t.TempDir()
	git(t, root, "clone", "-q", "--bare", src, "app.git")
	git(t, filepath.Join(root, "app.git"), "update-server-info")
	return root, head
}

func newEnv(t *testing.T, a *Activities) *testsuite.TestActivityEnvironment {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	return env
}

func clone(t *testing.T, a *Activities, in CloneInput) (CloneResult, error) {
	t.Helper()
	val, err := newEnv(t, a).ExecuteActivity(a.CloneRepository, in)
	if err != nil {
		return CloneResult{}, err
	}
	var res CloneResult
	if err := val.Get(&res); err != nil {
		t.Fatal(err)
	}
	return res, nil
}

func wantAppError(t *testing.T, err error, errType, msg string) {
	t.Helper()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		t.Fatalf("error %v: want a temporal application error of type %s", err, errType)
	}
	if appErr.Type() != errType || !appErr.NonRetryable() {
		t.Fatalf("error type %q non-retryable %v (%v): want %q, non-retryable", appErr.Type(), appErr.NonRetryable(), err, errType)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Fatalf("error %q: want it to contain %q", err, msg)
	}
}

func TestCloneOverDumbHTTP(t *testing.T) {
	root, head := bareRepo(t)
	srv := httptest.NewServer(http.FileServer(http.Dir(root)))
	defer srv.Close()

	sink := &memSink{}
	a := &Activities{WorkRoot: t.TempDir(), Logs: sink}
	in := CloneInput{AppID: "app1", DeploymentID: "dep-1", GitURL: srv.URL + "/app.git", Branch: "main", AllowLoopbackHTTP: true}

	// A leftover from an earlier attempt must not break the retry.
	os.MkdirAll(filepath.Join(a.WorkRoot, "dep-1", "stale"), 0o755)

	res, err := clone(t, a, in)
	if err != nil {
		t.Fatal(err)
	}
	if res.CommitSHA != head {
		t.Errorf("commit %s, want %s", res.CommitSHA, head)
	}
	if res.Dir != filepath.Join(a.WorkRoot, "dep-1") {
		t.Errorf("dir %s", res.Dir)
	}
	if _, err := os.Stat(filepath.Join(res.Dir, "README")); err != nil {
		t.Errorf("README not cloned: %v", err)
	}
	for _, absent := range []string{"stale", "FEATURE"} {
		if _, err := os.Stat(filepath.Join(res.Dir, absent)); err == nil {
			t.Errorf("%s present in the clone", absent)
		}
	}
	if log := sink.text(); !strings.Contains(log, "Cloning") || !strings.Contains(log, head) {
		t.Errorf("clone log lacks progress:\n%s", log)
	}
	sink.checkSeq(t, "clone")

	// The feature branch, into the same deployment dir: a clean second run.
	in.Branch = "feature"
	res, err = clone(t, a, in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(res.Dir, "FEATURE")); err != nil {
		t.Errorf("feature branch not cloned: %v", err)
	}

	val, err := newEnv(t, a).ExecuteActivity(a.RemoveWorkdir, RemoveWorkdirInput{DeploymentID: "dep-1"})
	if err != nil || val == nil {
		t.Fatalf("RemoveWorkdir: %v", err)
	}
	if _, err := os.Stat(res.Dir); !os.IsNotExist(err) {
		t.Errorf("work dir still there: %v", err)
	}
	if _, err := newEnv(t, a).ExecuteActivity(a.RemoveWorkdir, RemoveWorkdirInput{DeploymentID: "dep-1"}); err != nil {
		t.Errorf("second RemoveWorkdir: %v", err)
	}
}

// Smart HTTP (git http-backend) serves shallow clones, the path production takes.
func TestCloneShallowOverSmartHTTP(t *testing.T) {
	root, head := bareRepo(t)
	execPath := git(t, root, "--exec-path")
	srv := httptest.NewServer(&cgi.Handler{
		Path: filepath.Join(execPath, "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	})
	defer srv.Close()

	a := &Activities{WorkRoot: t.TempDir(), Logs: &memSink{}}
	res, err := clone(t, a, CloneInput{AppID: "app1", DeploymentID: "dep-2", GitURL: srv.URL + "/app.git", Branch: "main", AllowLoopbackHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.CommitSHA != head {
		t.Errorf("commit %s, want %s", res.CommitSHA, head)
	}
	if res.CommitMessage != "second" {
		t.Errorf("commit message %q, want %q", res.CommitMessage, "second")
	}
	if count := git(t, res.Dir, "rev-list", "--count", "HEAD"); count != "1" {
		t.Errorf("clone has %s commits, want a shallow clone of 1", count)
	}
}

// servers serves root over dumb HTTP (whole packs, which may hold other branches' commits)
// and over smart HTTP (git http-backend).
func servers(t *testing.T, root string) map[string]string {
	t.Helper()
	dumb := httptest.NewServer(http.FileServer(http.Dir(root)))
	t.Cleanup(dumb.Close)
	smart := httptest.NewServer(&cgi.Handler{
		Path: filepath.Join(git(t, root, "--exec-path"), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	})
	t.Cleanup(smart.Close)
	return map[string]string{"dumb": dumb.URL + "/app.git", "smart": smart.URL + "/app.git"}
}

// A heal rebuilds from the release's own commit, an older one on the branch.
func TestCloneAtCommit(t *testing.T) {
	root, head := bareRepo(t)
	first := git(t, filepath.Join(root, "app.git"), "rev-parse", "main~1")
	if first == head {
		t.Fatal("test repository has one commit on main")
	}
	for name, url := range servers(t, root) {
		t.Run(name, func(t *testing.T) {
			sink := &memSink{}
			a := &Activities{WorkRoot: t.TempDir(), Logs: sink}
			res, err := clone(t, a, CloneInput{AppID: "app1", DeploymentID: "dep-4", GitURL: url, Branch: "main", Commit: first, AllowLoopbackHTTP: true})
			if err != nil {
				t.Fatal(err)
			}
			if res.CommitSHA != first {
				t.Errorf("commit %s, want the first commit %s (head is %s)", res.CommitSHA, first, head)
			}
			if b, err := os.ReadFile(filepath.Join(res.Dir, "Dockerfile")); err != nil || string(b) != "FROM scratch\n" {
				t.Errorf("Dockerfile %q, %v: want the first commit's", b, err)
			}
			if _, err := os.Stat(filepath.Join(res.Dir, "README")); err == nil {
				t.Error("README of the second commit is in the work dir")
			}
			if log := sink.text(); !strings.Contains(log, "Checking out commit "+first+"\n") {
				t.Errorf("clone log lacks the checkout:\n%s", log)
			}
			sink.checkSeq(t, "clone")
		})
	}
}

func TestCloneAtCommitNotOnBranch(t *testing.T) {
	root, _ := bareRepo(t)
	bare := filepath.Join(root, "app.git")
	feature := git(t, bare, "rev-parse", "feature")
	// One pack of every object: a dumb-HTTP clone then holds the feature commit too.
	git(t, bare, "repack", "-q", "-a", "-d")
	git(t, bare, "update-server-info")
	for name, url := range servers(t, root) {
		for what, commit := range map[string]string{
			"other branch":   feature, // in the dumb clone's pack, but not main's history
			"unknown sha1":   strings.Repeat("0123456789abcdef", 2) + "01234567",
			"unknown sha256": strings.Repeat("0123456789abcdef", 4),
		} {
			t.Run(name+"/"+what, func(t *testing.T) {
				a := &Activities{WorkRoot: t.TempDir(), Logs: &memSink{}}
				_, err := clone(t, a, CloneInput{AppID: "app1", DeploymentID: "dep-5", GitURL: url, Branch: "main", Commit: commit, AllowLoopbackHTTP: true})
				wantAppError(t, err, ErrTypeCommitNotFound, "commit "+commit[:12]+` is no longer on branch "main"`)
				if _, err := os.Stat(filepath.Join(a.WorkRoot, "dep-5")); !os.IsNotExist(err) {
					t.Errorf("work dir left behind: %v", err)
				}
			})
		}
	}
}

func TestCloneFailures(t *testing.T) {
	root, _ := bareRepo(t)
	srv := httptest.NewServer(http.FileServer(http.Dir(root)))
	defer srv.Close()
	marker := filepath.Join(t.TempDir(), "pwned")

	tests := []struct {
		name    string
		a       Activities
		in      CloneInput
		errType string
		msg     string
	}{
		{"missing branch", Activities{}, CloneInput{GitURL: srv.URL + "/app.git", Branch: "nope", AllowLoopbackHTTP: true}, ErrTypeBranchNotFound, `branch "nope" does not exist`},
		{"missing repository", Activities{}, CloneInput{GitURL: srv.URL + "/other.git", Branch: "main", AllowLoopbackHTTP: true}, ErrTypeRepositoryNotFound, "was not found"},
		{"ext transport", Activities{}, CloneInput{GitURL: "ext::sh -c touch " + marker, Branch: "main"}, ErrTypeInvalidInput, "spaces"},
		{"option as url", Activities{}, CloneInput{GitURL: "--upload-pack=touch " + marker, Branch: "main"}, ErrTypeInvalidInput, "'-'"},
		{"file url", Activities{}, CloneInput{GitURL: "file://" + root + "/app.git", Branch: "main"}, ErrTypeInvalidInput, "file"},
		{"option as branch", Activities{}, CloneInput{GitURL: srv.URL + "/app.git", Branch: "--upload-pack=x", AllowLoopbackHTTP: true}, ErrTypeInvalidInput, "branch name"},
		{"loopback without dev flag", Activities{}, CloneInput{GitURL: srv.URL + "/app.git", Branch: "main"}, ErrTypeInvalidInput, "development"},
		{"loopback denied by node", Activities{DenyLoopbackHTTP: true}, CloneInput{GitURL: srv.URL + "/app.git", Branch: "main", AllowLoopbackHTTP: true}, ErrTypeInvalidInput, "--allow-loopback-git"},
		{"short commit", Activities{}, CloneInput{GitURL: srv.URL + "/app.git", Branch: "main", Commit: "abc", AllowLoopbackHTTP: true}, ErrTypeInvalidInput, "commit"},
		{"option as commit", Activities{}, CloneInput{GitURL: srv.URL + "/app.git", Branch: "main", Commit: "--upload-pack=touch " + marker, AllowLoopbackHTTP: true}, ErrTypeInvalidInput, "commit"},
		{"uppercase commit", Activities{}, CloneInput{GitURL: srv.URL + "/app.git", Branch: "main", Commit: strings.Repeat("AB", 20), AllowLoopbackHTTP: true}, ErrTypeInvalidInput, "commit"},
		{"credentials", Activities{}, CloneInput{GitURL: "https://user:secret@example.com/x.git", Branch: "main"}, ErrTypeInvalidInput, "password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.a
			a.WorkRoot = t.TempDir()
			a.Logs = &memSink{}
			tt.in.AppID, tt.in.DeploymentID = "app1", "dep-3"
			_, err := clone(t, &a, tt.in)
			wantAppError(t, err, tt.errType, tt.msg)
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error repeats the credentials: %v", err)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("a hostile URL ran a command")
			}
		})
	}

	t.Run("path traversal in deployment id", func(t *testing.T) {
		a := &Activities{WorkRoot: t.TempDir()}
		_, err := newEnv(t, a).ExecuteActivity(a.RemoveWorkdir, RemoveWorkdirInput{DeploymentID: "../etc"})
		wantAppError(t, err, ErrTypeInvalidInput, "invalid deployment id")
	})
}

// A repository past the node's clone limit stops the clone with a message naming the limit,
// and leaves nothing in the work area; under the limit the same repository clones.
func TestCloneOverTheSizeLimitAborts(t *testing.T) {
	src := t.TempDir()
	git(t, src, "init", "-q", "-b", "main")
	big := make([]byte, 6<<20)
	if _, err := rand.Read(big); err != nil { // incompressible: the pack is as large
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "blob.bin"), big, 0o644)
	git(t, src, "add", ".")
	git(t, src, "commit", "-q", "-m", "big")
	root := t.TempDir()
	git(t, root, "clone", "-q", "--bare", src, "app.git")
	git(t, filepath.Join(root, "app.git"), "update-server-info")
	for name, url := range servers(t, root) {
		t.Run(name, func(t *testing.T) {
			sink := &memSink{}
			a := &Activities{WorkRoot: t.TempDir(), Logs: sink, MaxCloneBytes: 4 << 20}
			_, err := clone(t, a, CloneInput{AppID: "a1", DeploymentID: "d1", GitURL: url, Branch: "main", AllowLoopbackHTTP: true})
			wantAppError(t, err, ErrTypeCloneTooLarge, "larger than the clone limit of 4 MiB")
			if !strings.Contains(sink.text(), "clone limit of 4 MiB") {
				t.Errorf("the build log does not say why:\n%s", sink.text())
			}
			if entries, _ := os.ReadDir(a.WorkRoot); len(entries) != 0 {
				t.Errorf("the work area keeps %d entries after the refused clone", len(entries))
			}
			a.MaxCloneBytes = 64 << 20
			if _, err := clone(t, a, CloneInput{AppID: "a1", DeploymentID: "d2", GitURL: url, Branch: "main", AllowLoopbackHTTP: true}); err != nil {
				t.Errorf("under the limit: %v", err)
			}
		})
	}
}
