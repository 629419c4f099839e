// Package fakegithub is a GitHub stand-in for tests: one user, one OAuth app, bare repositories
// on disk. It speaks GitHub's real shapes, the OAuth web flow (authorize, access_token), the
// REST calls the platform makes (JSON marshalled from go-github's own types, paged with Link
// headers, 401 "Bad credentials" for unknown or revoked tokens) and git smart HTTP (fetch only,
// through `git http-backend`), on an httptest server on loopback. It records what a test wants
// to check afterwards: issued and revoked tokens, live hooks, authenticated git requests.
package fakegithub

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/google/go-github/v62/github"
)

// Server is the fake GitHub. Its exported fields are for the platform's configuration.
type Server struct {
	URL          string // web base (authorize, access_token, git), e.g. http://127.0.0.1:PORT
	APIURL       string // URL + "/api/v3/", as for GitHub Enterprise
	ClientID     string
	ClientSecret string

	root   string // bare repositories, root/<login>/<name>.git
	login  string
	userID int64
	git    string // absolute path of the git binary, for http-backend
	srv    *httptest.Server

	mu              sync.Mutex
	codes           map[string]pendingCode // authorization codes not yet exchanged
	tokens          map[string]bool        // issued token -> revoked
	issued          []string               // in order of issue
	revoked         []string               // in order of revocation
	repos           map[string]*repo       // by full name
	nextRepoID      int64
	hooks           map[string][]github.Hook // live hooks by repository full name
	nextHookID      int64
	gitRequests     map[string]int
	uploadPackDelay time.Duration
}

type pendingCode struct {
	redirectURI string
	scope       string
}

type repo struct {
	id      int64
	name    string
	private bool
	created time.Time
}

// New starts a fake GitHub on loopback. root holds the bare repositories; login (with userID) is
// the one GitHub user, who approves every authorization.
func New(root, clientID, clientSecret, login string, userID int64) (*Server, error) {
	if clientID == "" || clientSecret == "" || login == "" {
		return nil, fmt.Errorf("fakegithub: client id, client secret and login are required")
	}
	if !validName.MatchString(login) {
		return nil, fmt.Errorf("fakegithub: login %q: letters, digits, '-', '_' and '.' only", login)
	}
	gitPath, err := exec.LookPath("git")
	if err != nil {
		return nil, fmt.Errorf("fakegithub: git http-backend needs git: %w", err)
	}
	root, err = filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("fakegithub: root: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(root, login), 0o755); err != nil {
		return nil, fmt.Errorf("fakegithub: root: %w", err)
	}
	s := &Server{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		root:         root,
		login:        login,
		userID:       userID,
		git:          gitPath,
		codes:        map[string]pendingCode{},
		tokens:       map[string]bool{},
		repos:        map[string]*repo{},
		nextRepoID:   100000,
		hooks:        map[string][]github.Hook{},
		nextHookID:   1000,
		gitRequests:  map[string]int{},
	}
	s.srv = httptest.NewServer(s.routes())
	s.URL = s.srv.URL
	s.APIURL = s.URL + "/api/v3/"
	return s, nil
}

// Close stops the server (the repositories stay on disk, under the caller's root).
func (s *Server) Close() { s.srv.Close() }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/oauth/authorize", s.authorize)
	mux.HandleFunc("POST /login/oauth/access_token", s.accessToken)
	// The grant endpoint authenticates the app (basic auth), not a user token.
	mux.HandleFunc("DELETE /api/v3/applications/{client_id}/grant", s.deleteGrant)

	api := http.NewServeMux()
	api.HandleFunc("GET /api/v3/user", s.getUser)
	api.HandleFunc("GET /api/v3/user/repos", s.listRepos)
	api.HandleFunc("GET /api/v3/repos/{owner}/{repo}", s.getRepo)
	api.HandleFunc("GET /api/v3/repos/{owner}/{repo}/branches", s.listBranches)
	api.HandleFunc("GET /api/v3/repos/{owner}/{repo}/hooks", s.listHooks)
	api.HandleFunc("POST /api/v3/repos/{owner}/{repo}/hooks", s.createHook)
	api.HandleFunc("DELETE /api/v3/repos/{owner}/{repo}/hooks/{id}", s.deleteHook)
	api.HandleFunc("/api/v3/", func(w http.ResponseWriter, r *http.Request) { notFound(w) })
	mux.Handle("/api/v3/", s.requireToken(api))

	mux.HandleFunc("/{owner}/{repo}/{rest...}", s.serveGit)
	return mux
}

// validName is what the fake accepts as a login or repository name: enough for tests, and
// nothing that could climb out of root.
var validName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// AddRepo creates a repository owned by the login: an empty bare repository at
// root/<login>/<name>.git whose initial branch is main and which refuses pushes over HTTP. Tests
// push into the returned path from a working copy on the filesystem.
func (s *Server) AddRepo(name string, private bool) (barePath string, err error) {
	if !validName.MatchString(name) || name == "." || name == ".." {
		return "", fmt.Errorf("fakegithub: repository name %q: letters, digits, '-', '_' and '.' only", name)
	}
	fullName := s.login + "/" + name
	s.mu.Lock()
	if _, ok := s.repos[fullName]; ok {
		s.mu.Unlock()
		return "", fmt.Errorf("fakegithub: repository %s exists", fullName)
	}
	s.nextRepoID++
	s.repos[fullName] = &repo{id: s.nextRepoID, name: name, private: private, created: time.Now().UTC()}
	s.mu.Unlock()

	barePath = s.barePath(s.login, name)
	if out, err := s.runGit("", "init", "--quiet", "--bare", "--initial-branch=main", barePath); err != nil {
		return "", fmt.Errorf("fakegithub: git init %s: %w: %s", barePath, err, out)
	}
	// Pushes reach the repository through the filesystem only; http-backend would refuse an
	// anonymous receive-pack anyway, this makes it refuse an authenticated one too.
	if out, err := s.runGit(barePath, "config", "http.receivepack", "false"); err != nil {
		return "", fmt.Errorf("fakegithub: git config %s: %w: %s", barePath, err, out)
	}
	return barePath, nil
}

func (s *Server) barePath(owner, name string) string {
	return filepath.Join(s.root, owner, name+".git")
}

// runGit runs git in dir (if any), ignoring the machine's and the user's config so tests behave
// alike everywhere.
func (s *Server) runGit(dir string, args ...string) ([]byte, error) {
	if dir != "" {
		args = append([]string{"-C", dir}, args...)
	}
	cmd := exec.Command(s.git, args...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull)
	return cmd.CombinedOutput()
}

// Tokens is every access token issued, revoked or not, in order of issue (for leak scans).
func (s *Server) Tokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.issued)
}

// Revocations is every token revoked through DELETE applications/{client_id}/grant, in order:
// the token named in the call first, then the other tokens of its grant.
func (s *Server) Revocations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.revoked)
}

// Hooks is the live hooks of a repository ("owner/name"), with their real config (url, secret,
// content type) and events.
func (s *Server) Hooks(fullName string) []github.Hook {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]github.Hook, 0, len(s.hooks[fullName]))
	for _, h := range s.hooks[fullName] {
		out = append(out, copyHook(h))
	}
	return out
}

// GitRequests counts the git smart-HTTP requests (info/refs and upload-pack) served for a
// repository with a valid token.
func (s *Server) GitRequests(fullName string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gitRequests[fullName]
}

// SetUploadPackDelay makes the server sleep d before serving each git-upload-pack POST, so a
// test can look at a clone while it runs (its process list, say).
func (s *Server) SetUploadPackDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.uploadPackDelay = d
}

// tokenValid reports whether token was issued and is not revoked.
func (s *Server) tokenValid(token string) bool {
	if token == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	revoked, issued := s.tokens[token]
	return issued && !revoked
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}

// Sign is what GitHub puts in X-Hub-Signature-256 for body under the hook's secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
