package apiserver

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/apiserver/ghconnect"
	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
)

// GitHub connects a user's GitHub account through OAuth (docs/github.md). The authorization's
// state is sealed under the platform keyring (so it cannot be forged), names the user and its
// expiry, and carries a nonce stored until the callback consumes it (so it cannot be replayed).
// The access token is stored sealed (secrets.GitHubToken) and leaves the control plane only
// re-sealed for the node that clones a deployment of an app the user connected.

// GitHubStateLifetime is how long an authorization may take in the browser.
const GitHubStateLifetime = 10 * time.Minute

var (
	githubOwnerPattern = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$`)
	githubRepoPattern  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)
)

type githubState struct {
	Nonce   string `json:"n"`
	UserID  string `json:"u"`
	Expires int64  `json:"e"`
}

type githubAuthorizeOutput struct {
	Body struct {
		URL       string    `json:"url" doc:"open it in a browser: GitHub asks the user to authorize, then returns to the callback"`
		ExpiresAt time.Time `json:"expires_at" doc:"the authorization must be completed before this"`
	}
}

type githubCallbackInput struct {
	Code             string `query:"code" maxLength:"512"`
	State            string `query:"state" maxLength:"4096"`
	Error            string `query:"error" maxLength:"256" doc:"set by GitHub when the user denied the authorization"`
	ErrorDescription string `query:"error_description" maxLength:"1024"`
}

type githubCallbackOutput struct {
	Status   int
	Location string `header:"Location"`
	Body     *githubStatusBody
}

type githubStatusBody struct {
	Configured        bool       `json:"configured" doc:"the platform has a GitHub OAuth app"`
	WebhookConfigured bool       `json:"webhook_configured" doc:"the platform has a webhook secret: auto-deploy is available"`
	Connected         bool       `json:"connected"`
	Login             string     `json:"login,omitempty"`
	GitHubUserID      int64      `json:"github_user_id,omitempty"`
	Scopes            string     `json:"scopes,omitempty"`
	ConnectedAt       *time.Time `json:"connected_at,omitempty"`
}

type githubDisconnectOutput struct {
	Body struct {
		Connected bool   `json:"connected"`
		Revoked   bool   `json:"revoked" doc:"GitHub confirmed the grant is revoked"`
		Message   string `json:"message"`
	}
}

type githubPageInput struct {
	Page    int `query:"page" minimum:"1" maximum:"10000" default:"1"`
	PerPage int `query:"per_page" minimum:"1" maximum:"100" default:"30"`
}

type githubRepository struct {
	FullName      string `json:"full_name"`
	Owner         string `json:"owner"`
	Name          string `json:"name"`
	Private       bool   `json:"private"`
	DefaultBranch string `json:"default_branch"`
	CloneURL      string `json:"clone_url"`
	HTMLURL       string `json:"html_url"`
}

type githubRepositoriesOutput struct {
	Body struct {
		Repositories []githubRepository `json:"repositories"`
		NextPage     int                `json:"next_page,omitempty" doc:"the page to ask for next; absent on the last"`
	}
}

type githubBranchesInput struct {
	Owner string `path:"owner" maxLength:"39"`
	Repo  string `path:"repo" maxLength:"100"`
	githubPageInput
}

type githubBranch struct {
	Name      string `json:"name"`
	CommitSHA string `json:"commit_sha"`
	Protected bool   `json:"protected"`
}

type githubBranchesOutput struct {
	Body struct {
		Branches []githubBranch `json:"branches"`
		NextPage int            `json:"next_page,omitempty"`
	}
}

func (s *Server) registerGitHub() {
	huma.Register(s.api, s.op("github-authorize", http.MethodGet, "/api/paas/github/authorize",
		"Start connecting your GitHub account: the URL to open in a browser", "github", 0, false), s.githubAuthorize)
	huma.Register(s.api, huma.Operation{OperationID: "github-callback", Method: http.MethodGet, Path: "/api/paas/github/callback",
		Summary: "Where GitHub returns the browser after the authorization (not called by clients)", Tags: []string{"github"},
		DefaultStatus: http.StatusFound}, s.githubCallback)
	huma.Register(s.api, s.op("github-status", http.MethodGet, "/api/paas/github/status", "Whether your GitHub account is connected", "github", 0, false),
		func(ctx context.Context, _ *struct{}) (*body[githubStatusBody], error) {
			st, err := s.githubStatus(ctx, principal(ctx).UserID)
			if err != nil {
				return nil, err
			}
			return bodyOf(st), nil
		})
	huma.Register(s.api, s.op("github-disconnect", http.MethodDelete, "/api/paas/github/disconnect",
		"Forget your GitHub token and revoke the platform's grant at GitHub", "github", 0, false), s.githubDisconnect)
	huma.Register(s.api, s.op("github-repositories", http.MethodGet, "/api/paas/github/repositories",
		"The repositories your GitHub account can read, most recently updated first", "github", 0, false),
		func(ctx context.Context, in *githubPageInput) (*githubRepositoriesOutput, error) {
			token, _, err := s.githubToken(ctx, principal(ctx).UserID)
			if err != nil {
				return nil, err
			}
			repos, next, err := s.cfg.GitHub.Repositories(ctx, token, in.Page, in.PerPage)
			if err != nil {
				return nil, s.githubProblem(ctx, "list your repositories", err)
			}
			out := &githubRepositoriesOutput{}
			out.Body.Repositories = make([]githubRepository, len(repos))
			for i, r := range repos {
				out.Body.Repositories[i] = githubRepository{FullName: r.FullName, Owner: r.Owner, Name: r.Name, Private: r.Private,
					DefaultBranch: r.DefaultBranch, CloneURL: r.CloneURL, HTMLURL: r.HTMLURL}
			}
			out.Body.NextPage = next
			return out, nil
		})
	huma.Register(s.api, s.op("github-branches", http.MethodGet, "/api/paas/github/repositories/{owner}/{repo}/branches",
		"A repository's branches", "github", 0, false),
		func(ctx context.Context, in *githubBranchesInput) (*githubBranchesOutput, error) {
			if err := validateGitHubName(in.Owner, in.Repo, "path.owner", "path.repo"); err != nil {
				return nil, err
			}
			token, _, err := s.githubToken(ctx, principal(ctx).UserID)
			if err != nil {
				return nil, err
			}
			branches, next, err := s.cfg.GitHub.Branches(ctx, token, in.Owner, in.Repo, in.Page, in.PerPage)
			if err != nil {
				return nil, s.githubProblem(ctx, "list the branches of "+in.Owner+"/"+in.Repo, err)
			}
			out := &githubBranchesOutput{}
			out.Body.Branches = make([]githubBranch, len(branches))
			for i, b := range branches {
				out.Body.Branches[i] = githubBranch{Name: b.Name, CommitSHA: b.CommitSHA, Protected: b.Protected}
			}
			out.Body.NextPage = next
			return out, nil
		})
	s.registerGitHubWebhook()
	s.registerAgentCloneToken()
}

// requireGitHub refuses GitHub routes on a platform without an OAuth app.
func (s *Server) requireGitHub() error {
	if !s.cfg.GitHub.Enabled() {
		return huma.Error503ServiceUnavailable("GitHub is not configured on this platform: the operator sets GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET (docs/github.md)")
	}
	return nil
}

func (s *Server) githubAuthorize(ctx context.Context, _ *struct{}) (*githubAuthorizeOutput, error) {
	if err := s.requireGitHub(); err != nil {
		return nil, err
	}
	userID := principal(ctx).UserID
	if userID == "" {
		return nil, huma.Error403Forbidden("GitHub is connected per user: sign in as a user, not with a node's or the platform's credentials")
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("make a state nonce: %w", err)
	}
	nonce := base64.RawURLEncoding.EncodeToString(raw)
	expires := time.Now().Add(GitHubStateLifetime).Truncate(time.Second)
	payload, err := json.Marshal(githubState{Nonce: nonce, UserID: userID, Expires: expires.Unix()})
	if err != nil {
		return nil, err
	}
	state, err := s.cfg.Keyring.Encrypt(payload, secrets.GitHubOAuthState())
	if err != nil {
		return nil, fmt.Errorf("seal the state: %w", err)
	}
	if err := s.store.SaveGitHubState(ctx, nonce, userID, expires); err != nil {
		return nil, s.problem(ctx, "github", err)
	}
	out := &githubAuthorizeOutput{}
	out.Body.URL, out.Body.ExpiresAt = s.cfg.GitHub.AuthorizeURL(state), expires
	return out, nil
}

// openGitHubState is the user a state was issued to, once: a state this platform did not seal,
// an expired one or one used before is an error that says which.
func (s *Server) openGitHubState(ctx context.Context, state string) (string, error) {
	bad := func(why string) error {
		return huma.Error400BadRequest("the authorization cannot be completed: "+why+"; start again with GET /api/paas/github/authorize",
			&huma.ErrorDetail{Location: "query.state", Message: why})
	}
	if state == "" {
		return "", bad("the state is missing")
	}
	plain, err := s.cfg.Keyring.Decrypt(state, secrets.GitHubOAuthState())
	if err != nil {
		return "", bad("the state was not issued by this platform")
	}
	var st githubState
	if err := json.Unmarshal(plain, &st); err != nil || st.Nonce == "" || st.UserID == "" {
		return "", bad("the state was not issued by this platform")
	}
	if time.Now().Unix() > st.Expires {
		return "", bad("the state has expired (an authorization must be completed within 10 minutes)")
	}
	fresh, err := s.store.TakeGitHubState(ctx, st.Nonce, st.UserID)
	if err != nil {
		return "", s.problem(ctx, "github", err)
	}
	if !fresh {
		return "", bad("the state was used already")
	}
	return st.UserID, nil
}

func (s *Server) githubCallback(ctx context.Context, in *githubCallbackInput) (*githubCallbackOutput, error) {
	if err := s.requireGitHub(); err != nil {
		return nil, err
	}
	userID, err := s.openGitHubState(ctx, in.State)
	if err != nil {
		return nil, err
	}
	if in.Error != "" {
		s.log.InfoContext(ctx, "GitHub authorization denied", "user_id", userID, "error", in.Error)
		return s.githubReturn(userID, "denied", nil), nil
	}
	if in.Code == "" {
		return nil, huma.Error400BadRequest("GitHub returned no code", &huma.ErrorDetail{Location: "query.code", Message: "missing"})
	}
	token, scopes, err := s.cfg.GitHub.Exchange(ctx, in.Code)
	if err != nil {
		s.log.WarnContext(ctx, "GitHub code exchange failed", "user_id", userID, "error", err)
		return nil, huma.Error502BadGateway("GitHub did not exchange the authorization code for a token: start again with GET /api/paas/github/authorize")
	}
	user, err := s.cfg.GitHub.User(ctx, token)
	if err != nil {
		return nil, s.githubProblem(ctx, "read the GitHub user", err)
	}
	sealed, err := s.cfg.Keyring.Encrypt([]byte(token), secrets.GitHubToken(userID))
	if err != nil {
		return nil, fmt.Errorf("seal the GitHub token: %w", err)
	}
	if err := s.store.SaveGitHubConnection(ctx, db.GitHubConnection{UserID: userID, GitHubUserID: user.ID, Login: user.Login, TokenSealed: sealed, Scopes: scopes}); err != nil {
		return nil, s.problem(ctx, "github", err)
	}
	s.log.InfoContext(ctx, "GitHub connected", "user_id", userID, "github_login", user.Login)
	st := &githubStatusBody{Configured: true, WebhookConfigured: len(s.cfg.GitHubWebhookSecret) > 0, Connected: true, Login: user.Login, GitHubUserID: user.ID, Scopes: scopes}
	return s.githubReturn(userID, "connected", st), nil
}

// githubReturn sends the browser back to the dashboard (FRONTEND_URL, with ?github=<outcome>);
// without one, the outcome is the answer itself.
func (s *Server) githubReturn(userID, outcome string, st *githubStatusBody) *githubCallbackOutput {
	if s.cfg.FrontendURL == "" {
		if st == nil {
			st = &githubStatusBody{Configured: true}
		}
		return &githubCallbackOutput{Status: http.StatusOK, Body: st}
	}
	u, err := url.Parse(s.cfg.FrontendURL)
	if err != nil {
		// Checked at start; a bad one here is a programming error.
		return &githubCallbackOutput{Status: http.StatusOK, Body: st}
	}
	q := u.Query()
	q.Set("github", outcome)
	u.RawQuery = q.Encode()
	return &githubCallbackOutput{Status: http.StatusFound, Location: u.String()}
}

func (s *Server) githubStatus(ctx context.Context, userID string) (githubStatusBody, error) {
	st := githubStatusBody{Configured: s.cfg.GitHub.Enabled(), WebhookConfigured: len(s.cfg.GitHubWebhookSecret) > 0}
	conn, err := s.store.GitHubConnectionOf(ctx, userID)
	if errors.Is(err, db.ErrNotFound) {
		return st, nil
	}
	if err != nil {
		return st, s.problem(ctx, "github", err)
	}
	at := conn.ConnectedAt
	st.Connected, st.Login, st.GitHubUserID, st.Scopes, st.ConnectedAt = true, conn.Login, conn.GitHubUserID, conn.Scopes, &at
	return st, nil
}

func (s *Server) githubDisconnect(ctx context.Context, _ *struct{}) (*githubDisconnectOutput, error) {
	userID := principal(ctx).UserID
	conn, err := s.store.GitHubConnectionOf(ctx, userID)
	if errors.Is(err, db.ErrNotFound) {
		return nil, huma.Error404NotFound("your GitHub account is not connected")
	}
	if err != nil {
		return nil, s.problem(ctx, "github", err)
	}
	out := &githubDisconnectOutput{}
	out.Body.Message = "GitHub disconnected: the platform no longer holds your token"
	if token, err := s.cfg.Keyring.Decrypt(conn.TokenSealed, secrets.GitHubToken(userID)); err != nil {
		s.log.ErrorContext(ctx, "open GitHub token to revoke it", "user_id", userID, "error", secrets.Explain(err))
	} else if !s.cfg.GitHub.Enabled() {
		out.Body.Message += "; the platform has no GitHub app configured, so revoke its access in your GitHub settings"
	} else if err := s.cfg.GitHub.RevokeGrant(ctx, string(token)); err != nil {
		// The user's intent is that the platform forgets the token: that happens either way.
		s.log.WarnContext(ctx, "revoke GitHub grant", "user_id", userID, "error", err)
		out.Body.Message += "; GitHub did not confirm the revocation, so revoke the platform's access in your GitHub settings (Applications)"
	} else {
		out.Body.Revoked = true
	}
	if err := s.store.DeleteGitHubConnection(ctx, userID); err != nil && !errors.Is(err, db.ErrNotFound) {
		return nil, s.problem(ctx, "github", err)
	}
	s.log.InfoContext(ctx, "GitHub disconnected", "user_id", userID, "github_login", conn.Login, "revoked", out.Body.Revoked)
	return out, nil
}

// githubToken opens userID's token; a user without a connection is told how to make one.
func (s *Server) githubToken(ctx context.Context, userID string) (string, db.GitHubConnection, error) {
	if err := s.requireGitHub(); err != nil {
		return "", db.GitHubConnection{}, err
	}
	conn, err := s.store.GitHubConnectionOf(ctx, userID)
	if errors.Is(err, db.ErrNotFound) {
		return "", conn, huma.Error409Conflict("your GitHub account is not connected: connect it with GET /api/paas/github/authorize")
	}
	if err != nil {
		return "", conn, s.problem(ctx, "github", err)
	}
	token, err := s.cfg.Keyring.Decrypt(conn.TokenSealed, secrets.GitHubToken(userID))
	if err != nil {
		return "", conn, fmt.Errorf("open the GitHub token of user %s: %s", userID, secrets.Explain(err))
	}
	return string(token), conn, nil
}

// githubProblem tells the user what GitHub's refusal means for them.
func (s *Server) githubProblem(ctx context.Context, what string, err error) error {
	switch {
	case errors.Is(err, ghconnect.ErrUnauthorized):
		return huma.Error409Conflict("GitHub refused your token (revoked or expired): reconnect GitHub with GET /api/paas/github/authorize")
	case errors.Is(err, ghconnect.ErrNotFound):
		return huma.Error404NotFound("GitHub found nothing to " + what + " with your account's access")
	}
	s.log.WarnContext(ctx, "GitHub call failed", "what", what, "error", err)
	return huma.Error502BadGateway("GitHub did not answer: could not " + what + "; try again")
}

func validateGitHubName(owner, repo, ownerLocation, repoLocation string) error {
	if !githubOwnerPattern.MatchString(owner) {
		return fieldError(ownerLocation, "a GitHub owner is 1-39 letters, digits or '-'", owner)
	}
	if !githubRepoPattern.MatchString(repo) || repo == "." || repo == ".." {
		return fieldError(repoLocation, "a GitHub repository name is 1-100 letters, digits, '.', '-' or '_'", repo)
	}
	return nil
}

// splitGitHubRepository checks owner/repo.
func splitGitHubRepository(fullName, location string) (string, string, error) {
	owner, repo, ok := strings.Cut(fullName, "/")
	if !ok {
		return "", "", fieldError(location, "want owner/repository", fullName)
	}
	if err := validateGitHubName(owner, repo, location, location); err != nil {
		return "", "", err
	}
	return owner, repo, nil
}
