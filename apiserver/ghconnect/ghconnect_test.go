package ghconnect_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/skypanel/skypanel/apiserver/ghconnect"
	"github.com/skypanel/skypanel/testsuite/fakegithub"
)

const (
	clientID     = "Iv1.panelapp"
	clientSecret = "panel-client-secret-9f8e7d6c5b4a"
	login        = "octo"
	userID       = 583231
	callback     = "https://panel.example/api/paas/github/callback"
)

func setup(t *testing.T) (*fakegithub.Server, ghconnect.Config) {
	t.Helper()
	s, err := fakegithub.New(t.TempDir(), clientID, clientSecret, login, userID)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	cfg := ghconnect.Config{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		CallbackURL:  callback,
		WebURL:       s.URL,
		APIURL:       s.APIURL,
	}
	require.NoError(t, cfg.Validate())
	return s, cfg
}

// approve follows AuthorizeURL as the user's browser would, up to the callback, and returns the
// code GitHub hands back.
func approve(t *testing.T, cfg ghconnect.Config, state string) string {
	t.Helper()
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirects.Get(cfg.AuthorizeURL(state))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, callback, loc.Scheme+"://"+loc.Host+loc.Path)
	require.Equal(t, state, loc.Query().Get("state"))
	return loc.Query().Get("code")
}

func connect(t *testing.T, cfg ghconnect.Config) string {
	t.Helper()
	token, _, err := cfg.Exchange(context.Background(), approve(t, cfg, "state"))
	require.NoError(t, err)
	return token
}

func TestEnabledAndValidate(t *testing.T) {
	require.False(t, ghconnect.Config{ClientID: "id"}.Enabled())
	require.False(t, ghconnect.Config{ClientSecret: "s"}.Enabled())
	require.NoError(t, ghconnect.Config{}.Validate(), "a disabled config has nothing to check")

	ok := ghconnect.Config{ClientID: "id", ClientSecret: clientSecret, CallbackURL: callback}
	require.True(t, ok.Enabled())
	require.NoError(t, ok.Validate(), "WebURL and APIURL default to github.com")

	for name, mutate := range map[string]func(*ghconnect.Config){
		"no callback":        func(c *ghconnect.Config) { c.CallbackURL = "" },
		"relative callback":  func(c *ghconnect.Config) { c.CallbackURL = "/api/paas/github/callback" },
		"ftp web URL":        func(c *ghconnect.Config) { c.WebURL = "ftp://github.example" },
		"no host in API URL": func(c *ghconnect.Config) { c.APIURL = "https:///api/v3/" },
		"userinfo in API URL": func(c *ghconnect.Config) {
			c.APIURL = "https://" + clientID + ":" + clientSecret + "@ghe.example/api/v3/"
		},
		"userinfo in callback": func(c *ghconnect.Config) { c.CallbackURL = "https://u:" + clientSecret + "@panel.example/cb" },
		"unparsable web URL":   func(c *ghconnect.Config) { c.WebURL = "https://" + clientSecret + "@[::1" },
	} {
		c := ok
		mutate(&c)
		err := c.Validate()
		require.Error(t, err, name)
		require.NotContains(t, err.Error(), clientSecret, name)
	}
}

func TestAuthorizeURL(t *testing.T) {
	cfg := ghconnect.Config{ClientID: clientID, ClientSecret: clientSecret, CallbackURL: callback}
	u, err := url.Parse(cfg.AuthorizeURL("st/at+e=1"))
	require.NoError(t, err)
	require.Equal(t, "https://github.com/login/oauth/authorize", u.Scheme+"://"+u.Host+u.Path)
	q := u.Query()
	require.Equal(t, clientID, q.Get("client_id"))
	require.Equal(t, callback, q.Get("redirect_uri"))
	require.Equal(t, "repo read:user admin:repo_hook", q.Get("scope"))
	require.Equal(t, "st/at+e=1", q.Get("state"))
	require.NotContains(t, u.String(), clientSecret)

	cfg.WebURL = "https://ghe.example/"
	require.True(t, strings.HasPrefix(cfg.AuthorizeURL("x"), "https://ghe.example/login/oauth/authorize?"), cfg.AuthorizeURL("x"))
}

func TestExchange(t *testing.T) {
	s, cfg := setup(t)
	ctx := context.Background()

	code := approve(t, cfg, "state-1")
	token, scopes, err := cfg.Exchange(ctx, code)
	require.NoError(t, err)
	require.Equal(t, s.Tokens(), []string{token})
	require.Equal(t, "repo,read:user,admin:repo_hook", scopes)

	_, _, err = cfg.Exchange(ctx, code)
	require.ErrorContains(t, err, "bad_verification_code", "GitHub's 200 with an error field is an error")
	_, _, err = cfg.Exchange(ctx, "not-a-code")
	require.ErrorContains(t, err, "bad_verification_code")
	require.NotContains(t, err.Error(), clientSecret)

	gone := cfg
	gone.WebURL = "http://127.0.0.1:1" // nothing listens on port 1
	_, _, err = gone.Exchange(ctx, "some-code")
	require.Error(t, err, "a GitHub out of reach is an error")
	require.NotContains(t, err.Error(), clientSecret)

	wrong := cfg
	wrong.ClientSecret = "another-secret-entirely"
	_, _, err = wrong.Exchange(ctx, approve(t, cfg, "s"))
	require.Error(t, err)
	require.NotContains(t, err.Error(), "another-secret-entirely")
	require.Len(t, s.Tokens(), 1)
}

func TestUser(t *testing.T) {
	_, cfg := setup(t)
	token := connect(t, cfg)
	u, err := cfg.User(context.Background(), token)
	require.NoError(t, err)
	require.Equal(t, ghconnect.User{ID: userID, Login: login}, u)

	_, err = cfg.User(context.Background(), "gho_forged")
	require.ErrorIs(t, err, ghconnect.ErrUnauthorized)
	require.NotContains(t, err.Error(), "gho_forged")
}

func TestAPIURLWithoutTheV3Suffix(t *testing.T) {
	s, cfg := setup(t)
	token := connect(t, cfg)
	cfg.APIURL = s.URL // go-github appends /api/v3/ for an enterprise base without it
	u, err := cfg.User(context.Background(), token)
	require.NoError(t, err)
	require.Equal(t, login, u.Login)
}

func TestRepositoriesPaging(t *testing.T) {
	s, cfg := setup(t)
	token := connect(t, cfg)
	for _, name := range []string{"r1", "r2", "r3", "r4", "r5"} {
		_, err := s.AddRepo(name, name == "r2")
		require.NoError(t, err)
	}
	var names, nexts []string
	page := 1
	for page != 0 {
		repos, next, err := cfg.Repositories(context.Background(), token, page, 2)
		require.NoError(t, err)
		for _, r := range repos {
			names = append(names, r.Name)
		}
		nexts = append(nexts, map[int]string{0: "end", 2: "2", 3: "3"}[next])
		page = next
		require.Less(t, len(nexts), 5, "paging must end")
	}
	require.Equal(t, []string{"r5", "r4", "r3", "r2", "r1"}, names, "most recently updated first")
	require.Equal(t, []string{"2", "3", "end"}, nexts)
}

func TestRepository(t *testing.T) {
	s, cfg := setup(t)
	token := connect(t, cfg)
	_, err := s.AddRepo("app", true)
	require.NoError(t, err)

	r, err := cfg.Repository(context.Background(), token, login, "app")
	require.NoError(t, err)
	require.NotZero(t, r.ID)
	r.ID = 0
	require.Equal(t, ghconnect.Repository{
		FullName: "octo/app", Owner: login, Name: "app", DefaultBranch: "main",
		CloneURL: s.URL + "/octo/app.git", HTMLURL: s.URL + "/octo/app", Private: true,
	}, r)

	_, err = cfg.Repository(context.Background(), token, login, "nothing")
	require.ErrorIs(t, err, ghconnect.ErrNotFound)
	require.NotErrorIs(t, err, ghconnect.ErrUnauthorized)
}

func TestBranches(t *testing.T) {
	s, cfg := setup(t)
	token := connect(t, cfg)
	bare, err := s.AddRepo("app", false)
	require.NoError(t, err)
	mainSHA, err := fakegithub.CommitAndPush(bare, "main", "one", map[string]string{"a": "1"})
	require.NoError(t, err)
	devSHA, err := fakegithub.CommitAndPush(bare, "dev", "two", map[string]string{"b": "2"})
	require.NoError(t, err)

	first, next, err := cfg.Branches(context.Background(), token, login, "app", 1, 1)
	require.NoError(t, err)
	require.Len(t, first, 1)
	require.Equal(t, 2, next)
	second, next, err := cfg.Branches(context.Background(), token, login, "app", next, 1)
	require.NoError(t, err)
	require.Zero(t, next)
	got := map[string]string{}
	for _, b := range append(first, second...) {
		got[b.Name] = b.CommitSHA
		require.False(t, b.Protected)
	}
	require.Equal(t, map[string]string{"main": mainSHA, "dev": devSHA}, got)

	_, _, err = cfg.Branches(context.Background(), token, login, "nothing", 1, 30)
	require.ErrorIs(t, err, ghconnect.ErrNotFound)
}

func TestPushHooks(t *testing.T) {
	s, cfg := setup(t)
	token := connect(t, cfg)
	_, err := s.AddRepo("app", true)
	require.NoError(t, err)
	ctx := context.Background()

	id, err := cfg.CreatePushHook(ctx, token, login, "app", "https://panel.example/api/paas/github/webhook/d1", "hook-secret")
	require.NoError(t, err)
	require.NotZero(t, id)
	hooks := s.Hooks("octo/app")
	require.Len(t, hooks, 1)
	h := hooks[0]
	require.Equal(t, id, h.GetID())
	require.True(t, h.GetActive())
	require.Equal(t, []string{"push"}, h.Events)
	require.Equal(t, "https://panel.example/api/paas/github/webhook/d1", h.GetConfig().GetURL())
	require.Equal(t, "json", h.GetConfig().GetContentType())
	require.Equal(t, "0", h.GetConfig().GetInsecureSSL())
	require.Equal(t, "hook-secret", h.GetConfig().GetSecret())

	_, err = cfg.CreatePushHook(ctx, token, login, "nothing", "https://panel.example/h", "x")
	require.ErrorIs(t, err, ghconnect.ErrNotFound)

	require.NoError(t, cfg.DeleteHook(ctx, token, login, "app", id))
	require.Empty(t, s.Hooks("octo/app"))
	require.NoError(t, cfg.DeleteHook(ctx, token, login, "app", id), "a hook already gone is deleted")

	err = cfg.DeleteHook(ctx, "gho_forged", login, "app", id)
	require.ErrorIs(t, err, ghconnect.ErrUnauthorized, "a refused token is not 'already gone'")
}

func TestRevokeGrant(t *testing.T) {
	s, cfg := setup(t)
	token := connect(t, cfg)
	ctx := context.Background()

	wrong := cfg
	wrong.ClientSecret = "not-the-app-secret"
	err := wrong.RevokeGrant(ctx, token)
	require.Error(t, err)
	require.NotErrorIs(t, err, ghconnect.ErrUnauthorized, "the app's credentials, not the user's token, were refused")
	require.NotContains(t, err.Error(), "not-the-app-secret")
	require.NotContains(t, err.Error(), token)
	require.Empty(t, s.Revocations())

	require.NoError(t, cfg.RevokeGrant(ctx, token))
	require.Equal(t, []string{token}, s.Revocations())
	_, err = cfg.User(ctx, token)
	require.ErrorIs(t, err, ghconnect.ErrUnauthorized)

	require.NoError(t, cfg.RevokeGrant(ctx, token), "a grant already gone is revoked")
}
