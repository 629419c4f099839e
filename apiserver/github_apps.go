package apiserver

import (
	"context"
	"errors"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/apiserver/ghconnect"
	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
)

// appSource is where an app's code comes from: a plain Git URL, or a GitHub repository read
// with the token of the user who connected it (GitURL then being its clone URL).
type appSource struct {
	GitURL, Branch   string
	GitHubRepository string // owner/repo; "" for a plain Git URL
	GitHubUserID     string
	owner, repo      string
	token            string // the connecting user's, to manage the repository's webhook
}

// resolveSource checks a source given as git_url or github_repository (exactly one), and for
// GitHub reads the repository with the caller's token: its clone URL, and its default branch
// when branch is "".
func (s *Server) resolveSource(ctx context.Context, gitURL, githubRepository, branch string) (appSource, error) {
	switch {
	case gitURL != "" && githubRepository != "":
		return appSource{}, fieldError("body.github_repository", "give git_url or github_repository, not both", githubRepository)
	case githubRepository == "":
		if gitURL == "" {
			return appSource{}, fieldError("body.git_url", "git_url (an https:// Git URL) or github_repository (owner/repo) is required", nil)
		}
		if branch == "" {
			branch = "main"
		}
		return appSource{GitURL: gitURL, Branch: branch}, s.validateSource(gitURL, branch)
	}
	owner, repo, err := splitGitHubRepository(githubRepository, "body.github_repository")
	if err != nil {
		return appSource{}, err
	}
	if err := s.requireGitHub(); err != nil {
		return appSource{}, err
	}
	userID := principal(ctx).UserID
	token, _, err := s.githubToken(ctx, userID)
	var se huma.StatusError
	if errors.As(err, &se) && se.GetStatus() == 409 {
		return appSource{}, fieldError("body.github_repository", "connect your GitHub account first: GET /api/paas/github/authorize", githubRepository)
	}
	if err != nil {
		return appSource{}, err
	}
	r, err := s.cfg.GitHub.Repository(ctx, token, owner, repo)
	if errors.Is(err, ghconnect.ErrNotFound) {
		return appSource{}, fieldError("body.github_repository", "no such repository, or your GitHub account cannot read it", githubRepository)
	}
	if err != nil {
		return appSource{}, s.githubProblem(ctx, "read "+githubRepository, err)
	}
	if branch == "" {
		branch = r.DefaultBranch
	}
	src := appSource{GitURL: r.CloneURL, Branch: branch, GitHubRepository: r.FullName, GitHubUserID: userID, owner: r.Owner, repo: r.Name, token: token}
	if err := s.validateSource(src.GitURL, branch); err != nil {
		return appSource{}, err
	}
	return src, nil
}

// createPushHook makes the repository's webhook that delivers pushes to this platform.
func (s *Server) createPushHook(ctx context.Context, src appSource) (int64, error) {
	if len(s.cfg.GitHubWebhookSecret) == 0 {
		return 0, fieldError("body.auto_deploy", "auto-deploy needs the platform's webhook secret, which is not configured (GITHUB_WEBHOOK_SECRET)", true)
	}
	public := strings.TrimRight(s.cfg.NodeInstall.PublicURL, "/")
	if public == "" {
		return 0, fieldError("body.auto_deploy", "auto-deploy needs the platform's public URL for GitHub to deliver pushes to (SKYPANEL_PUBLIC_URL)", true)
	}
	id, err := s.cfg.GitHub.CreatePushHook(ctx, src.token, src.owner, src.repo, public+"/api/paas/github/webhook", string(s.cfg.GitHubWebhookSecret))
	if err != nil {
		return 0, s.githubProblem(ctx, "create the webhook of "+src.GitHubRepository+" (the token needs admin:repo_hook, and you admin rights on the repository)", err)
	}
	s.log.InfoContext(ctx, "GitHub webhook created", "repository", src.GitHubRepository, "hook_id", id)
	return id, nil
}

// removePushHook deletes an app's webhook with the token of the user who connected the app,
// as far as it can: a hook it cannot delete (the user disconnected) only goes on delivering
// pushes that deploy nothing. It is logged, not an error.
func (s *Server) removePushHook(ctx context.Context, app db.Application) {
	if app.GitHubHookID == nil || app.GitHubRepository == "" || app.GitHubUserID == nil || !s.cfg.GitHub.Enabled() {
		return
	}
	owner, repo, _ := strings.Cut(app.GitHubRepository, "/")
	log := s.log.With("app_id", app.ID, "repository", app.GitHubRepository, "hook_id", *app.GitHubHookID)
	conn, err := s.store.GitHubConnectionOf(ctx, *app.GitHubUserID)
	if err != nil {
		log.WarnContext(ctx, "GitHub webhook left in place: its user's token is gone", "error", err)
		return
	}
	token, err := s.cfg.Keyring.Decrypt(conn.TokenSealed, secrets.GitHubToken(*app.GitHubUserID))
	if err != nil {
		log.ErrorContext(ctx, "open GitHub token", "error", secrets.Explain(err))
		return
	}
	if err := s.cfg.GitHub.DeleteHook(ctx, string(token), owner, repo, *app.GitHubHookID); err != nil {
		log.WarnContext(ctx, "delete GitHub webhook", "error", err)
		return
	}
	log.InfoContext(ctx, "GitHub webhook deleted")
}

// hookChanges is what an update did to GitHub webhooks, settled once the row is written: the
// old hook goes when the update is stored, the new one when it is not.
type hookChanges struct {
	s       *Server
	created *appSource
	hookID  int64
	old     *db.Application
}

func (h hookChanges) settle(ctx context.Context, stored bool) {
	switch {
	case stored && h.old != nil:
		h.s.removePushHook(ctx, *h.old)
	case !stored && h.created != nil:
		if err := h.s.cfg.GitHub.DeleteHook(ctx, h.created.token, h.created.owner, h.created.repo, h.hookID); err != nil {
			h.s.log.WarnContext(ctx, "remove the webhook of an update not stored", "repository", h.created.GitHubRepository, "error", err)
		}
	}
}

// changeSource turns an update's source fields into changes: a new plain URL (which
// disconnects GitHub), a GitHub repository (connected with the caller's token), a branch, or
// auto-deploy switched on or off (the webhook made or removed).
func (s *Server) changeSource(ctx context.Context, current db.Application, gitURL, githubRepository, branch *string, autoDeploy *bool, c *db.ApplicationChanges) (hookChanges, error) {
	h := hookChanges{s: s}
	wantBranch := ""
	if branch != nil {
		wantBranch = *branch
	}
	hadHook := current.GitHubHookID != nil
	noHook := func() {
		c.SetHook, c.HookID = true, nil
		if hadHook {
			h.old = &current
		}
	}
	switch {
	case gitURL != nil && githubRepository != nil:
		return h, fieldError("body.github_repository", "give git_url or github_repository, not both", *githubRepository)
	case gitURL != nil:
		if autoDeploy != nil && *autoDeploy {
			return h, fieldError("body.auto_deploy", "auto-deploy needs github_repository: pushes come from GitHub", true)
		}
		if wantBranch == "" {
			wantBranch = current.GitBranch
		}
		src, err := s.resolveSource(ctx, *gitURL, "", wantBranch)
		if err != nil {
			return h, err
		}
		none, off := "", false
		c.GitURL, c.GitBranch, c.GitHubRepository, c.GitHubUserID, c.AutoDeploy = &src.GitURL, &src.Branch, &none, &none, &off
		noHook()
		return h, nil
	case githubRepository == nil && current.GitHubRepository == "":
		if autoDeploy != nil && *autoDeploy {
			return h, fieldError("body.auto_deploy", "auto-deploy needs github_repository: pushes come from GitHub", true)
		}
		if branch != nil {
			if err := s.validateSource(current.GitURL, *branch); err != nil {
				return h, err
			}
			c.GitBranch = branch
		}
		return h, nil
	case githubRepository == nil && (autoDeploy == nil || *autoDeploy == current.AutoDeploy || !*autoDeploy):
		// The same repository: a branch change (the webhook delivers every branch's pushes), or
		// auto-deploy off, which needs no token (the webhook is removed with the token of the
		// user who connected the app, as far as it still can be).
		if branch != nil {
			if err := s.validateSource(current.GitURL, *branch); err != nil {
				return h, err
			}
			c.GitBranch = branch
		}
		if autoDeploy != nil && !*autoDeploy && current.AutoDeploy {
			c.AutoDeploy = autoDeploy
			noHook()
		}
		return h, nil
	}
	// (Re)connect to a repository, or switch auto-deploy: with the caller's token.
	repository := current.GitHubRepository
	if githubRepository != nil {
		repository = *githubRepository
	}
	if wantBranch == "" && strings.EqualFold(repository, current.GitHubRepository) {
		wantBranch = current.GitBranch
	}
	src, err := s.resolveSource(ctx, "", repository, wantBranch)
	if err != nil {
		return h, err
	}
	on := current.AutoDeploy
	if autoDeploy != nil {
		on = *autoDeploy
	}
	c.GitURL, c.GitBranch, c.GitHubRepository, c.GitHubUserID, c.AutoDeploy = &src.GitURL, &src.Branch, &src.GitHubRepository, &src.GitHubUserID, &on
	sameHook := hadHook && on && strings.EqualFold(src.GitHubRepository, current.GitHubRepository)
	switch {
	case sameHook:
	case on:
		id, err := s.createPushHook(ctx, src)
		if err != nil {
			return h, err
		}
		c.SetHook, c.HookID = true, &id
		h.created, h.hookID = &src, id
		if hadHook {
			h.old = &current
		}
	default:
		noHook()
	}
	return h, nil
}
