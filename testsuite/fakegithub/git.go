package fakegithub

import (
	"net/http"
	"net/http/cgi"
	"strings"
	"time"
)

// serveGit is git smart HTTP at /{owner}/{repo}.git/..., fetch only, by `git http-backend`.
// A private repository wants HTTP basic auth whose password is a live token (the username is
// free; GitHub's tooling uses x-access-token); a public one serves anyone.
func (s *Server) serveGit(w http.ResponseWriter, r *http.Request) {
	owner := r.PathValue("owner")
	name, isGit := strings.CutSuffix(r.PathValue("repo"), ".git")
	if !isGit {
		http.NotFound(w, r)
		return
	}
	rest := r.PathValue("rest")
	service := r.URL.Query().Get("service")
	if rest == "git-receive-pack" || service == "git-receive-pack" {
		http.Error(w, "fakegithub: pushes go through the filesystem, not HTTP", http.StatusForbidden)
		return
	}
	// Only the smart protocol's two fetch requests; no dumb-HTTP file serving.
	isAdvertisement := r.Method == http.MethodGet && rest == "info/refs" && service == "git-upload-pack"
	isUploadPack := r.Method == http.MethodPost && rest == "git-upload-pack"
	if !isAdvertisement && !isUploadPack {
		http.NotFound(w, r)
		return
	}

	fullName := owner + "/" + name
	s.mu.Lock()
	rp, known := s.repos[fullName]
	delay := s.uploadPackDelay
	s.mu.Unlock()
	if !known || owner != s.login {
		http.NotFound(w, r)
		return
	}
	_, password, hasAuth := r.BasicAuth()
	authenticated := hasAuth && s.tokenValid(password)
	if rp.private && !authenticated {
		w.Header().Set("WWW-Authenticate", `Basic realm="GitHub"`)
		http.Error(w, "Invalid username or token.", http.StatusUnauthorized)
		return
	}
	if authenticated {
		s.mu.Lock()
		s.gitRequests[fullName]++
		s.mu.Unlock()
	}
	if isUploadPack && delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	h := &cgi.Handler{
		Path: s.git,
		Args: []string{"http-backend"},
		Dir:  s.root,
		Env: []string{
			"GIT_PROJECT_ROOT=" + s.root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
		},
	}
	h.ServeHTTP(w, r)
}
