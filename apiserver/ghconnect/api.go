package ghconnect

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-github/v62/github"
)

// User is the GitHub account behind a token.
type User struct {
	ID    int64
	Login string
}

// Repository is what the platform needs of a GitHub repository.
type Repository struct {
	ID                                                      int64
	FullName, Owner, Name, DefaultBranch, CloneURL, HTMLURL string
	Private                                                 bool
}

// Branch is one branch head.
type Branch struct {
	Name, CommitSHA string
	Protected       bool
}

// client is a go-github client acting with token, pointed at the Config's API.
func (c Config) client(token string) (*github.Client, error) {
	gh := github.NewClient(c.httpClient()).WithAuthToken(token)
	if c.APIURL == "" || c.APIURL == defaultAPIURL {
		return gh, nil
	}
	// WithEnterpriseURLs appends /api/v3/ to a base lacking it (unless the host is api.*).
	gh, err := gh.WithEnterpriseURLs(c.APIURL, c.APIURL)
	if err != nil {
		return nil, fmt.Errorf("github: API URL: %w", err)
	}
	return gh, nil
}

// apiError gives go-github's error for what context: 401 and 404 become ErrUnauthorized and
// ErrNotFound (wrapped, so errors.Is works) and the rest is wrapped as it is. go-github's own
// messages carry the method, the URL (no token: that travels in a header) and GitHub's message.
func apiError(what string, err error) error {
	var er *github.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		switch er.Response.StatusCode {
		case http.StatusUnauthorized:
			return fmt.Errorf("%s: %w", what, ErrUnauthorized)
		case http.StatusNotFound:
			return fmt.Errorf("%s: %w", what, ErrNotFound)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// User is the account the token belongs to.
func (c Config) User(ctx context.Context, token string) (User, error) {
	gh, err := c.client(token)
	if err != nil {
		return User{}, err
	}
	u, _, err := gh.Users.Get(ctx, "")
	if err != nil {
		return User{}, apiError("github: get user", err)
	}
	return User{ID: u.GetID(), Login: u.GetLogin()}, nil
}

// Repositories lists the repositories the token's user can reach (own, collaborator,
// organisation), most recently updated first. nextPage is 0 on the last page.
func (c Config) Repositories(ctx context.Context, token string, page, perPage int) (repos []Repository, nextPage int, err error) {
	gh, err := c.client(token)
	if err != nil {
		return nil, 0, err
	}
	list, resp, err := gh.Repositories.ListByAuthenticatedUser(ctx, &github.RepositoryListByAuthenticatedUserOptions{
		Sort:        "updated",
		ListOptions: github.ListOptions{Page: page, PerPage: perPage},
	})
	if err != nil {
		return nil, 0, apiError("github: list repositories", err)
	}
	repos = make([]Repository, 0, len(list))
	for _, r := range list {
		repos = append(repos, repositoryFrom(r))
	}
	return repos, resp.NextPage, nil
}

// Repository is one repository, ErrNotFound when it does not exist or the token cannot see it.
func (c Config) Repository(ctx context.Context, token, owner, repo string) (Repository, error) {
	gh, err := c.client(token)
	if err != nil {
		return Repository{}, err
	}
	r, _, err := gh.Repositories.Get(ctx, owner, repo)
	if err != nil {
		return Repository{}, apiError(fmt.Sprintf("github: get repository %s/%s", owner, repo), err)
	}
	return repositoryFrom(r), nil
}

func repositoryFrom(r *github.Repository) Repository {
	return Repository{
		ID:            r.GetID(),
		FullName:      r.GetFullName(),
		Owner:         r.GetOwner().GetLogin(),
		Name:          r.GetName(),
		DefaultBranch: r.GetDefaultBranch(),
		CloneURL:      r.GetCloneURL(),
		HTMLURL:       r.GetHTMLURL(),
		Private:       r.GetPrivate(),
	}
}

// Branches lists a repository's branches with their head commits; the second result is the next
// page, 0 on the last.
func (c Config) Branches(ctx context.Context, token, owner, repo string, page, perPage int) ([]Branch, int, error) {
	gh, err := c.client(token)
	if err != nil {
		return nil, 0, err
	}
	list, resp, err := gh.Repositories.ListBranches(ctx, owner, repo, &github.BranchListOptions{
		ListOptions: github.ListOptions{Page: page, PerPage: perPage},
	})
	if err != nil {
		return nil, 0, apiError(fmt.Sprintf("github: list branches of %s/%s", owner, repo), err)
	}
	branches := make([]Branch, 0, len(list))
	for _, b := range list {
		branches = append(branches, Branch{Name: b.GetName(), CommitSHA: b.GetCommit().GetSHA(), Protected: b.GetProtected()})
	}
	return branches, resp.NextPage, nil
}

// CreatePushHook subscribes hookURL to the repository's pushes, JSON-encoded and signed with
// secret, over verified TLS only. It returns the hook's id, for DeleteHook.
func (c Config) CreatePushHook(ctx context.Context, token, owner, repo, hookURL, secret string) (int64, error) {
	gh, err := c.client(token)
	if err != nil {
		return 0, err
	}
	hook, _, err := gh.Repositories.CreateHook(ctx, owner, repo, &github.Hook{
		Name:   github.String("web"),
		Active: github.Bool(true),
		Events: []string{"push"},
		Config: &github.HookConfig{
			URL:         github.String(hookURL),
			ContentType: github.String("json"),
			InsecureSSL: github.String("0"),
			Secret:      github.String(secret),
		},
	})
	if err != nil {
		return 0, apiError(fmt.Sprintf("github: create push hook on %s/%s", owner, repo), err)
	}
	return hook.GetID(), nil
}

// DeleteHook removes a webhook. A hook already gone (404) is success: deleting is what was
// wanted, and a retried cleanup must not fail on its own earlier success.
func (c Config) DeleteHook(ctx context.Context, token, owner, repo string, id int64) error {
	gh, err := c.client(token)
	if err != nil {
		return err
	}
	if _, err := gh.Repositories.DeleteHook(ctx, owner, repo, id); err != nil {
		err = apiError(fmt.Sprintf("github: delete hook %d on %s/%s", id, owner, repo), err)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	return nil
}

// RevokeGrant deletes the user's authorization of the app (the token and every other token of
// the grant), as on disconnecting. The call authenticates as the app (basic auth with the client
// id and secret), not with the token. A grant already gone (404) is success.
func (c Config) RevokeGrant(ctx context.Context, token string) error {
	base := c.httpClient()
	transport := base.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	appClient := &http.Client{
		Timeout:       base.Timeout,
		CheckRedirect: base.CheckRedirect,
		Jar:           base.Jar,
		Transport: &github.BasicAuthTransport{
			Username:  c.ClientID,
			Password:  c.ClientSecret,
			Transport: transport,
		},
	}
	gh := github.NewClient(appClient)
	if c.APIURL != "" && c.APIURL != defaultAPIURL {
		var err error
		if gh, err = gh.WithEnterpriseURLs(c.APIURL, c.APIURL); err != nil {
			return fmt.Errorf("github: API URL: %w", err)
		}
	}
	if _, err := gh.Authorizations.DeleteGrant(ctx, c.ClientID, token); err != nil {
		var er *github.ErrorResponse
		if errors.As(err, &er) && er.Response != nil {
			switch er.Response.StatusCode {
			case http.StatusNotFound:
				return nil
			case http.StatusUnauthorized:
				// Here it is the app's credentials GitHub refused, not the user's token: not
				// ErrUnauthorized, which would send the user to reconnect for nothing.
				return errors.New("github: revoke grant: GitHub refused the OAuth app's client id and secret")
			}
		}
		return fmt.Errorf("github: revoke grant: %w", err)
	}
	return nil
}
