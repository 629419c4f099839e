package fakegithub_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-github/v62/github"
	"github.com/stretchr/testify/require"

	"github.com/skypanel/skypanel/testsuite/fakegithub"
)

const (
	clientID     = "Iv1.fakeclient"
	clientSecret = "fake-client-secret-0123456789"
	login        = "octo"
	userID       = 4242
	callback     = "https://panel.example/api/paas/github/callback"
)

func newServer(t *testing.T) *fakegithub.Server {
	t.Helper()
	s, err := fakegithub.New(t.TempDir(), clientID, clientSecret, login, userID)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// authorizeCode walks the authorize step and returns the code from the redirect.
func authorizeCode(t *testing.T, s *fakegithub.Server, state string) string {
	t.Helper()
	q := url.Values{"client_id": {clientID}, "redirect_uri": {callback}, "state": {state}, "scope": {"repo read:user admin:repo_hook"}}
	resp, err := noRedirects.Get(s.URL + "/login/oauth/authorize?" + q.Encode())
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, "panel.example", loc.Host)
	require.Equal(t, "/api/paas/github/callback", loc.Path)
	require.Equal(t, state, loc.Query().Get("state"), "state comes back unchanged")
	require.NotEmpty(t, loc.Query().Get("code"))
	return loc.Query().Get("code")
}

// exchange posts the code the way oauth2 does (credentials in the form, Accept JSON) and returns
// the decoded JSON answer.
func exchange(t *testing.T, s *fakegithub.Server, secret, code string) map[string]string {
	t.Helper()
	form := url.Values{"client_id": {clientID}, "client_secret": {secret}, "code": {code}, "redirect_uri": {callback}, "grant_type": {"authorization_code"}}
	req, err := http.NewRequest(http.MethodPost, s.URL+"/login/oauth/access_token", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "GitHub answers token errors with 200 too")
	var out map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out
}

func issueToken(t *testing.T, s *fakegithub.Server) string {
	t.Helper()
	out := exchange(t, s, clientSecret, authorizeCode(t, s, "st"))
	require.NotEmpty(t, out["access_token"], "exchange failed: %v", out)
	return out["access_token"]
}

func apiGet(t *testing.T, s *fakegithub.Server, path, authorization string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.APIURL+path, nil)
	require.NoError(t, err)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

func revoke(t *testing.T, s *fakegithub.Server, user, pass, token string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodDelete, s.APIURL+"applications/"+clientID+"/grant", strings.NewReader(`{"access_token":"`+token+`"}`))
	require.NoError(t, err)
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func TestOAuthRoundTrip(t *testing.T) {
	s := newServer(t)

	resp, err := noRedirects.Get(s.URL + "/login/oauth/authorize?client_id=someone-else&redirect_uri=" + url.QueryEscape(callback))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "an unknown client id is GitHub's 404")

	code := authorizeCode(t, s, "state-123")
	require.Equal(t, "bad_verification_code", exchange(t, s, "wrong-secret", code)["error"], "wrong client secret")

	out := exchange(t, s, clientSecret, code)
	require.Equal(t, "bearer", out["token_type"])
	require.Equal(t, "repo,read:user,admin:repo_hook", out["scope"])
	require.True(t, strings.HasPrefix(out["access_token"], "gho_"), out["access_token"])
	require.Equal(t, []string{out["access_token"]}, s.Tokens())

	again := exchange(t, s, clientSecret, code)
	require.Equal(t, "bad_verification_code", again["error"], "a code is single use")
	require.Empty(t, again["access_token"])
	require.Equal(t, "bad_verification_code", exchange(t, s, clientSecret, "made-up")["error"])

	// Without Accept: application/json GitHub answers form-encoded.
	form := url.Values{"client_id": {clientID}, "client_secret": {clientSecret}, "code": {authorizeCode(t, s, "x")}}
	resp, err = http.PostForm(s.URL+"/login/oauth/access_token", form)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	vals, err := url.ParseQuery(string(body))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(vals.Get("access_token"), "gho_"), string(body))
	require.Len(t, s.Tokens(), 2)
}

func TestAPIWantsALiveToken(t *testing.T) {
	s := newServer(t)
	token := issueToken(t, s)

	for _, auth := range []string{"", "Bearer gho_madeup", "Basic " + token} {
		resp, body := apiGet(t, s, "user", auth)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "authorization %q", auth)
		require.JSONEq(t, `{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}`, string(body))
	}
	for _, auth := range []string{"Bearer " + token, "token " + token} {
		resp, body := apiGet(t, s, "user", auth)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		var u github.User
		require.NoError(t, json.Unmarshal(body, &u))
		require.Equal(t, login, u.GetLogin())
		require.EqualValues(t, userID, u.GetID())
	}

	resp, body := apiGet(t, s, "repos/octo/nothing", "Bearer "+token)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Contains(t, string(body), `"Not Found"`)
}

func TestReposPagedWithLinkHeaders(t *testing.T) {
	s := newServer(t)
	token := issueToken(t, s)
	for _, name := range []string{"a", "b", "c"} {
		_, err := s.AddRepo(name, name == "b")
		require.NoError(t, err)
	}

	resp, body := apiGet(t, s, "user/repos?sort=updated&per_page=2", "Bearer "+token)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var page1 []github.Repository
	require.NoError(t, json.Unmarshal(body, &page1))
	require.Len(t, page1, 2)
	require.Equal(t, "octo/c", page1[0].GetFullName(), "newest first")
	require.Equal(t, "octo/b", page1[1].GetFullName())
	require.True(t, page1[1].GetPrivate())
	require.Equal(t, s.URL+"/octo/b.git", page1[1].GetCloneURL())
	link := resp.Header.Get("Link")
	require.Contains(t, link, `/api/v3/user/repos?page=2&per_page=2&sort=updated>; rel="next"`)
	require.Contains(t, link, `rel="last"`)
	require.Contains(t, link, "sort=updated", "links keep the query")

	_, body = apiGet(t, s, "user/repos", "Bearer "+token)
	var byName []github.Repository
	require.NoError(t, json.Unmarshal(body, &byName))
	require.Len(t, byName, 3)
	require.Equal(t, "octo/a", byName[0].GetFullName(), "GitHub's default order is full_name")

	resp, body = apiGet(t, s, "user/repos?sort=updated&per_page=2&page=2", "Bearer "+token)
	var page2 []github.Repository
	require.NoError(t, json.Unmarshal(body, &page2))
	require.Len(t, page2, 1)
	require.Equal(t, "octo/a", page2[0].GetFullName())
	require.NotContains(t, resp.Header.Get("Link"), `rel="next"`)
}

func TestBranchesFromTheBareRepository(t *testing.T) {
	s := newServer(t)
	token := issueToken(t, s)
	bare, err := s.AddRepo("app", true)
	require.NoError(t, err)
	require.Equal(t, filepath.Join("octo", "app.git"), filepath.Join(filepath.Base(filepath.Dir(bare)), filepath.Base(bare)))

	resp, body := apiGet(t, s, "repos/octo/app/branches", "Bearer "+token)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.JSONEq(t, `[]`, string(body), "an empty repository has no branches")

	mainSHA, err := fakegithub.CommitAndPush(bare, "main", "first", map[string]string{"README": "hi\n"})
	require.NoError(t, err)
	featSHA, err := fakegithub.CommitAndPush(bare, "feature/x", "second", map[string]string{"a.txt": "a\n"})
	require.NoError(t, err)
	require.NotEqual(t, mainSHA, featSHA)

	_, body = apiGet(t, s, "repos/octo/app/branches", "Bearer "+token)
	var branches []github.Branch
	require.NoError(t, json.Unmarshal(body, &branches))
	got := map[string]string{}
	for _, b := range branches {
		got[b.GetName()] = b.GetCommit().GetSHA()
	}
	require.Equal(t, map[string]string{"main": mainSHA, "feature/x": featSHA}, got)

	resp, body = apiGet(t, s, "repos/octo/app/branches?per_page=1", "Bearer "+token)
	require.NoError(t, json.Unmarshal(body, &branches))
	require.Len(t, branches, 1)
	require.Contains(t, resp.Header.Get("Link"), `rel="next"`)
}

func TestHooksKeepTheSecretButShowItMasked(t *testing.T) {
	s := newServer(t)
	token := issueToken(t, s)
	_, err := s.AddRepo("app", false)
	require.NoError(t, err)

	post := func(repo, body string) (*http.Response, []byte) {
		req, err := http.NewRequest(http.MethodPost, s.APIURL+"repos/octo/"+repo+"/hooks", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, _ := post("nothing", `{"config":{"url":"https://panel.example/hook"}}`)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	resp, body := post("app", `{"name":"web","active":true,"events":["push"],"config":{"url":"https://panel.example/hook","content_type":"json","insecure_ssl":"0","secret":"s3cret"}}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	var created github.Hook
	require.NoError(t, json.Unmarshal(body, &created))
	require.NotZero(t, created.GetID())
	require.Equal(t, "********", created.GetConfig().GetSecret(), "GitHub never shows a hook's secret")

	live := s.Hooks("octo/app")
	require.Len(t, live, 1)
	require.Equal(t, "s3cret", live[0].GetConfig().GetSecret())
	require.Equal(t, "https://panel.example/hook", live[0].GetConfig().GetURL())
	require.Equal(t, []string{"push"}, live[0].Events)

	_, body = apiGet(t, s, "repos/octo/app/hooks", "Bearer "+token)
	require.NotContains(t, string(body), "s3cret")

	del := func(id int64) int {
		req, err := http.NewRequest(http.MethodDelete, s.APIURL+"repos/octo/app/hooks/"+strings.TrimSpace(string(must(json.Marshal(id)))), nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusNoContent, del(created.GetID()))
	require.Empty(t, s.Hooks("octo/app"))
	require.Equal(t, http.StatusNotFound, del(created.GetID()))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// gitEnv is an environment for git commands that reads no config of the machine or user and
// never prompts on a terminal.
func gitEnv(extra ...string) []string {
	return append(append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull, "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=", "SSH_ASKPASS="), extra...)
}

// askpass writes a GIT_ASKPASS script answering x-access-token and token, so the clone URL
// carries no credential (as the platform must do it).
func askpass(t *testing.T, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "askpass.sh")
	script := "#!/bin/sh\ncase \"$1\" in\nUsername*) echo x-access-token ;;\n*) echo '" + token + "' ;;\nesac\n"
	require.NoError(t, os.WriteFile(path, []byte(script), 0o700))
	return path
}

func gitClone(t *testing.T, cloneURL string, env ...string) (dir string, out string, err error) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "clone")
	cmd := exec.Command("git", "clone", "--quiet", cloneURL, dir)
	cmd.Env = gitEnv(env...)
	b, err := cmd.CombinedOutput()
	return dir, string(b), err
}

func TestGitCloneOfPrivateRepoNeedsAToken(t *testing.T) {
	s := newServer(t)
	token := issueToken(t, s)
	bare, err := s.AddRepo("secret-app", true)
	require.NoError(t, err)
	sha, err := fakegithub.CommitAndPush(bare, "main", "init", map[string]string{"app.txt": "private bits\n"})
	require.NoError(t, err)
	cloneURL := s.URL + "/octo/secret-app.git"

	resp, err := http.Get(cloneURL + "/info/refs?service=git-upload-pack")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Equal(t, `Basic realm="GitHub"`, resp.Header.Get("WWW-Authenticate"))

	_, out, err := gitClone(t, cloneURL)
	require.Error(t, err, "a clone without credentials must fail: %s", out)
	_, out, err = gitClone(t, cloneURL, "GIT_ASKPASS="+askpass(t, "gho_madeup"))
	require.Error(t, err, "a clone with a token never issued must fail: %s", out)
	require.Zero(t, s.GitRequests("octo/secret-app"))

	dir, out, err := gitClone(t, cloneURL, "GIT_ASKPASS="+askpass(t, token))
	require.NoError(t, err, out)
	content, err := os.ReadFile(filepath.Join(dir, "app.txt"))
	require.NoError(t, err)
	require.Equal(t, "private bits\n", string(content))
	head, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	require.NoError(t, err)
	require.Equal(t, sha, strings.TrimSpace(string(head)))
	require.GreaterOrEqual(t, s.GitRequests("octo/secret-app"), 2, "info/refs and upload-pack")

	// Userinfo in the URL works too (tests only: the platform must not put tokens in URLs).
	u, _ := url.Parse(cloneURL)
	u.User = url.UserPassword("x-access-token", token)
	_, out, err = gitClone(t, u.String())
	require.NoError(t, err, out)

	// Pushing over HTTP is refused, even with a live token.
	cmd := exec.Command("git", "-C", dir, "push", "origin", "HEAD:refs/heads/other")
	cmd.Env = gitEnv("GIT_ASKPASS=" + askpass(t, token))
	b, err := cmd.CombinedOutput()
	require.Error(t, err, string(b))
	req, _ := http.NewRequest(http.MethodGet, cloneURL+"/info/refs?service=git-receive-pack", nil)
	req.SetBasicAuth("x-access-token", token)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
}

func TestGitCloneOfPublicRepoNeedsNoToken(t *testing.T) {
	s := newServer(t)
	bare, err := s.AddRepo("open", false)
	require.NoError(t, err)
	_, err = fakegithub.CommitAndPush(bare, "main", "init", map[string]string{"x": "y"})
	require.NoError(t, err)
	_, out, err := gitClone(t, s.URL+"/octo/open.git")
	require.NoError(t, err, out)
	require.Zero(t, s.GitRequests("octo/open"), "anonymous requests are not counted")

	_, out, err = gitClone(t, s.URL+"/octo/absent.git")
	require.Error(t, err, out)
}

func TestRevokedTokenIsRefusedByAPIAndGit(t *testing.T) {
	s := newServer(t)
	token := issueToken(t, s)
	sibling := issueToken(t, s)
	bare, err := s.AddRepo("app", true)
	require.NoError(t, err)
	_, err = fakegithub.CommitAndPush(bare, "main", "init", map[string]string{"x": "y"})
	require.NoError(t, err)
	cloneURL := s.URL + "/octo/app.git"
	_, out, err := gitClone(t, cloneURL, "GIT_ASKPASS="+askpass(t, token))
	require.NoError(t, err, out)

	require.Equal(t, http.StatusUnauthorized, revoke(t, s, clientID, "wrong", token), "the app must authenticate")
	require.Equal(t, http.StatusUnauthorized, revoke(t, s, "", "", token))
	require.Empty(t, s.Revocations())
	require.Equal(t, http.StatusNotFound, revoke(t, s, clientID, clientSecret, "gho_never_issued"))

	require.Equal(t, http.StatusNoContent, revoke(t, s, clientID, clientSecret, token))
	require.Equal(t, []string{token, sibling}, s.Revocations(), "the whole grant goes")

	for _, tok := range []string{token, sibling} {
		resp, _ := apiGet(t, s, "user", "Bearer "+tok)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}
	_, out, err = gitClone(t, cloneURL, "GIT_ASKPASS="+askpass(t, token))
	require.Error(t, err, "a revoked token must not clone: %s", out)
	require.Equal(t, http.StatusNotFound, revoke(t, s, clientID, clientSecret, token), "already revoked")
	require.Equal(t, []string{token, sibling}, s.Tokens(), "issued tokens stay listed for leak scans")
}

func TestPushPayloadAndSign(t *testing.T) {
	after := strings.Repeat("ab", 20)
	body := fakegithub.PushPayload("octo/app", "main", strings.Repeat("0", 40), after, "first commit")
	var ev github.PushEvent
	require.NoError(t, json.Unmarshal(body, &ev))
	require.Equal(t, "refs/heads/main", ev.GetRef())
	require.Equal(t, after, ev.GetAfter())
	require.Equal(t, "octo/app", ev.GetRepo().GetFullName())
	require.Equal(t, "first commit", ev.GetHeadCommit().GetMessage())
	require.Equal(t, after, ev.GetHeadCommit().GetID())
	require.True(t, ev.GetCreated())
	require.False(t, ev.GetDeleted())

	// The HMAC-SHA256 test vector of RFC 4231 case 2.
	require.Equal(t, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
		fakegithub.Sign([]byte("Jefe"), []byte("what do ya want for nothing?")))
}

func TestUploadPackDelayHoldsTheClone(t *testing.T) {
	s := newServer(t)
	bare, err := s.AddRepo("open", false)
	require.NoError(t, err)
	_, err = fakegithub.CommitAndPush(bare, "main", "init", map[string]string{"x": "y"})
	require.NoError(t, err)

	const delay = 700 * time.Millisecond
	s.SetUploadPackDelay(delay)
	start := time.Now()
	_, out, err := gitClone(t, s.URL+"/octo/open.git")
	require.NoError(t, err, out)
	require.GreaterOrEqual(t, time.Since(start), delay)
}
