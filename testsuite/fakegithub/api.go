package fakegithub

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-github/v62/github"
)

const docsURL = "https://docs.github.com/rest"

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func badCredentials(w http.ResponseWriter) {
	writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Bad credentials", "documentation_url": docsURL})
}

func notFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found", "documentation_url": docsURL})
}

// requireToken lets through only requests carrying an issued, unrevoked token, as
// "Authorization: Bearer <token>" or the older "token <token>".
func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "bearer") && !strings.EqualFold(scheme, "token") || !s.tokenValid(token) {
			badCredentials(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) user() *github.User {
	return &github.User{
		Login:   github.String(s.login),
		ID:      github.Int64(s.userID),
		Type:    github.String("User"),
		URL:     github.String(s.APIURL + "users/" + s.login),
		HTMLURL: github.String(s.URL + "/" + s.login),
	}
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.user())
}

// repository is r in GitHub's shape; call with s.mu held.
func (s *Server) repository(r *repo) *github.Repository {
	fullName := s.login + "/" + r.name
	visibility := "public"
	if r.private {
		visibility = "private"
	}
	created := github.Timestamp{Time: r.created}
	return &github.Repository{
		ID:            github.Int64(r.id),
		Name:          github.String(r.name),
		FullName:      github.String(fullName),
		Owner:         s.user(),
		Private:       github.Bool(r.private),
		Visibility:    github.String(visibility),
		DefaultBranch: github.String("main"),
		URL:           github.String(s.APIURL + "repos/" + fullName),
		HTMLURL:       github.String(s.URL + "/" + fullName),
		CloneURL:      github.String(s.URL + "/" + fullName + ".git"),
		CreatedAt:     &created,
		UpdatedAt:     &created,
		PushedAt:      &created,
	}
}

// lookupRepo finds the repository named by the path's {owner} and {repo}; call with s.mu held.
func (s *Server) lookupRepo(r *http.Request) (*repo, string, bool) {
	fullName := r.PathValue("owner") + "/" + r.PathValue("repo")
	rp, ok := s.repos[fullName]
	return rp, fullName, ok
}

// listRepos is GET /user/repos. As on GitHub the default order is by full_name, ascending; sort
// created, updated or pushed is newest first (the fake's repositories never change after
// creation, so all three are creation order). direction overrides.
func (s *Server) listRepos(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	all := make([]*github.Repository, 0, len(s.repos))
	for _, rp := range s.repos {
		all = append(all, s.repository(rp))
	}
	s.mu.Unlock()
	q := r.URL.Query()
	byName := true
	switch q.Get("sort") {
	case "", "full_name":
	case "created", "updated", "pushed":
		byName = false
	default:
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "Validation Failed: sort"})
		return
	}
	ascending := byName
	switch q.Get("direction") {
	case "asc":
		ascending = true
	case "desc":
		ascending = false
	}
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if !ascending {
			a, b = b, a
		}
		if byName {
			return a.GetFullName() < b.GetFullName()
		}
		return a.GetID() < b.GetID() // ids grow with creation
	})
	page, ok := paginate(w, r, len(all))
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, all[page.from:page.to])
}

func (s *Server) getRepo(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	rp, _, ok := s.lookupRepo(r)
	var out *github.Repository
	if ok {
		out = s.repository(rp)
	}
	s.mu.Unlock()
	if !ok {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// listBranches reads the bare repository's refs/heads: what was pushed into it is what GitHub
// would show.
func (s *Server) listBranches(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	rp, fullName, ok := s.lookupRepo(r)
	s.mu.Unlock()
	if !ok {
		notFound(w)
		return
	}
	out, err := s.runGit(s.barePath(s.login, rp.name), "for-each-ref", "--format=%(refname:lstrip=2) %(objectname)", "refs/heads/")
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"message": fmt.Sprintf("fakegithub: git for-each-ref %s: %v: %s", fullName, err, out)})
		return
	}
	var branches []*github.Branch
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, sha, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		branches = append(branches, &github.Branch{
			Name: github.String(name),
			Commit: &github.RepositoryCommit{
				SHA: github.String(sha),
				URL: github.String(s.APIURL + "repos/" + fullName + "/commits/" + sha),
			},
			Protected: github.Bool(false),
		})
	}
	page, ok := paginate(w, r, len(branches))
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, append([]*github.Branch{}, branches[page.from:page.to]...))
}

type pageRange struct{ from, to int }

// paginate reads page and per_page (GitHub's defaults: 1 and 30, per_page at most 100), sets
// GitHub's Link header (first/prev/next/last, as applicable) and returns the slice bounds.
func paginate(w http.ResponseWriter, r *http.Request, total int) (pageRange, bool) {
	q := r.URL.Query()
	page, perPage := 1, 30
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "Invalid page"})
			return pageRange{}, false
		}
		page = n
	}
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "Invalid per_page"})
			return pageRange{}, false
		}
		perPage = min(n, 100)
	}
	last := max(1, (total+perPage-1)/perPage)

	link := func(p int, rel string) string {
		u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path}
		lq := r.URL.Query()
		lq.Set("page", strconv.Itoa(p))
		lq.Set("per_page", strconv.Itoa(perPage))
		u.RawQuery = lq.Encode()
		return fmt.Sprintf("<%s>; rel=%q", u.String(), rel)
	}
	var links []string
	if page > 1 {
		links = append(links, link(min(page-1, last), "prev"))
	}
	if page < last {
		links = append(links, link(page+1, "next"), link(last, "last"))
	}
	if page > 1 {
		links = append(links, link(1, "first"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	from := min((page-1)*perPage, total)
	return pageRange{from: from, to: min(from+perPage, total)}, true
}

// createHook is POST /repos/{owner}/{repo}/hooks. As GitHub does, the answer masks the secret;
// Hooks keeps the real one for the test.
func (s *Server) createHook(w http.ResponseWriter, r *http.Request) {
	var in github.Hook
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "Problems parsing JSON"})
		return
	}
	if in.Config == nil || in.Config.GetURL() == "" {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "Validation Failed: config.url is required"})
		return
	}
	if u, err := url.Parse(in.Config.GetURL()); err != nil || !u.IsAbs() {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "Validation Failed: config.url is not a URL"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, fullName, ok := s.lookupRepo(r)
	if !ok {
		notFound(w)
		return
	}
	s.nextHookID++
	now := github.Timestamp{Time: time.Now().UTC()}
	events := in.Events
	if len(events) == 0 {
		events = []string{"push"}
	}
	active := true
	if in.Active != nil {
		active = *in.Active
	}
	hookURL := fmt.Sprintf("%srepos/%s/hooks/%d", s.APIURL, fullName, s.nextHookID)
	hook := github.Hook{
		ID:        github.Int64(s.nextHookID),
		Type:      github.String("Repository"),
		Name:      github.String("web"),
		Active:    github.Bool(active),
		Events:    events,
		Config:    in.Config,
		URL:       github.String(hookURL),
		TestURL:   github.String(hookURL + "/test"),
		PingURL:   github.String(hookURL + "/pings"),
		CreatedAt: &now,
		UpdatedAt: &now,
	}
	s.hooks[fullName] = append(s.hooks[fullName], hook)
	writeJSON(w, http.StatusCreated, maskedHook(hook))
}

func (s *Server) listHooks(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	_, fullName, ok := s.lookupRepo(r)
	out := []github.Hook{}
	for _, h := range s.hooks[fullName] {
		out = append(out, maskedHook(h))
	}
	s.mu.Unlock()
	if !ok {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) deleteHook(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		notFound(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, fullName, ok := s.lookupRepo(r)
	if !ok {
		notFound(w)
		return
	}
	hooks := s.hooks[fullName]
	for i, h := range hooks {
		if h.GetID() == id {
			s.hooks[fullName] = append(hooks[:i:i], hooks[i+1:]...)
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	notFound(w)
}

// copyHook deep-copies what a caller could mutate through the pointers of a stored hook.
func copyHook(h github.Hook) github.Hook {
	h.Events = append([]string(nil), h.Events...)
	if h.Config != nil {
		c := *h.Config
		h.Config = &c
	}
	return h
}

// maskedHook is the hook as GitHub's API shows it: the secret replaced by asterisks.
func maskedHook(h github.Hook) github.Hook {
	h = copyHook(h)
	if h.Config != nil && h.Config.Secret != nil {
		h.Config.Secret = github.String("********")
	}
	return h
}
