// Package ghconnect is the platform's GitHub client: the OAuth web flow that connects a user's
// GitHub account, the few REST calls the dashboard and deployments need (user, repositories,
// branches, push webhooks, grant revocation), and the checks on incoming push webhooks.
//
// It speaks to github.com by default and to GitHub Enterprise (or a test server) when WebURL
// and APIURL say so. Tokens are passed in per call and never stored here; no error this package
// returns contains a token or the client secret.
package ghconnect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

const (
	defaultWebURL = "https://github.com"
	defaultAPIURL = "https://api.github.com/"

	// defaultTimeout bounds every call when the Config brings no HTTP client: a GitHub that
	// hangs must not hold an API request (or a worker) forever.
	defaultTimeout = 15 * time.Second
)

// Scopes asked for at authorization: repo to list and clone private repositories, read:user for
// the account's identity, admin:repo_hook to create and delete the push webhooks.
var Scopes = []string{"repo", "read:user", "admin:repo_hook"}

// Config is the OAuth app's registration and where GitHub lives.
type Config struct {
	ClientID, ClientSecret string
	// CallbackURL is the absolute URL of GET /api/paas/github/callback, registered with the
	// OAuth app; GitHub sends the user back there with the code.
	CallbackURL string
	// WebURL is where users log in; default https://github.com.
	WebURL string
	// APIURL is the REST API base; default https://api.github.com/. For GitHub Enterprise e.g.
	// https://ghe.example.com/api/v3/ (go-github appends /api/v3/ when it is missing).
	APIURL string
	// HTTPClient is optional; the default has a 15 s timeout.
	HTTPClient *http.Client
}

// ErrUnauthorized means GitHub answered 401: the token was revoked or expired, and the user must
// connect their account again.
var ErrUnauthorized = errors.New("github: token refused (revoked or expired); reconnect the GitHub account")

// ErrNotFound means GitHub answered 404: no such repository (or hook), or not visible to the token.
var ErrNotFound = errors.New("github: not found, or not visible to this account")

// Enabled reports whether a GitHub OAuth app is configured at all.
func (c Config) Enabled() bool { return c.ClientID != "" && c.ClientSecret != "" }

// Validate checks the URLs of an enabled Config. Its messages name the field and the URL but
// never the client secret.
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	for _, f := range []struct{ name, value string }{
		{"WebURL", c.webURL()},
		{"APIURL", c.apiURL()},
		{"CallbackURL", c.CallbackURL},
	} {
		if err := checkAbsoluteHTTPURL(f.value); err != nil {
			return fmt.Errorf("github config: %s: %w", f.name, err)
		}
	}
	return nil
}

func checkAbsoluteHTTPURL(raw string) error {
	if raw == "" {
		return errors.New("missing")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error quotes the input, which may carry userinfo: say only what is wrong.
		return errors.New("not a valid URL")
	}
	if u.User != nil {
		// Credentials in a URL end up in logs and error messages; the OAuth app's secret has its
		// own field.
		return errors.New("must not contain userinfo")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("%q: missing host", raw)
	}
	return nil
}

func (c Config) webURL() string {
	if c.WebURL == "" {
		return defaultWebURL
	}
	return strings.TrimSuffix(c.WebURL, "/")
}

func (c Config) apiURL() string {
	if c.APIURL == "" {
		return defaultAPIURL
	}
	return c.APIURL
}

func (c Config) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return &http.Client{Timeout: defaultTimeout}
}

func (c Config) oauth2Config() *oauth2.Config {
	return &oauth2.Config{
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret,
		RedirectURL:  c.CallbackURL,
		Scopes:       Scopes,
		Endpoint: oauth2.Endpoint{
			AuthURL:  c.webURL() + "/login/oauth/authorize",
			TokenURL: c.webURL() + "/login/oauth/access_token",
			// GitHub takes the client credentials in the form; saying so spares oauth2 its
			// trial-and-error over the two styles.
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}
}

// AuthorizeURL is where to send the user to approve the app; state comes back unchanged on the
// callback and must be checked there.
func (c Config) AuthorizeURL(state string) string {
	return c.oauth2Config().AuthCodeURL(state)
}

// Exchange trades the callback's code for an access token and the scopes GitHub granted
// (comma-separated, as GitHub reports them).
func (c Config) Exchange(ctx context.Context, code string) (token string, scopes string, err error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.httpClient())
	tok, err := c.oauth2Config().Exchange(ctx, code)
	if err != nil {
		// GitHub answers a bad or used code with 200 and {"error": ...}; oauth2 turns that into a
		// RetrieveError. Report only its code and description: the raw response is not ours to
		// echo.
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			if re.ErrorCode != "" {
				return "", "", fmt.Errorf("github: code exchange refused: %s (%s)", re.ErrorCode, re.ErrorDescription)
			}
			status := 0
			if re.Response != nil {
				status = re.Response.StatusCode
			}
			return "", "", fmt.Errorf("github: code exchange failed with HTTP %d", status)
		}
		return "", "", fmt.Errorf("github: code exchange: %w", err)
	}
	if tok.AccessToken == "" {
		return "", "", errors.New("github: code exchange returned no access token")
	}
	scope, _ := tok.Extra("scope").(string)
	return tok.AccessToken, scope, nil
}
