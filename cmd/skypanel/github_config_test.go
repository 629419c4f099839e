package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The GitHub settings: the secrets from the environment or their files (never a flag value),
// the client id and secret together or not at all, the callback derived from the public URL,
// and no error that quotes a secret.
func TestGitHubSettingsAreLoaded(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "client-secret")
	if err := os.WriteFile(secretFile, []byte("file-client-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	webhookFile := filepath.Join(dir, "webhook-secret")
	if err := os.WriteFile(webhookFile, []byte("file-webhook-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := func() controlConfig {
		var c controlConfig
		c.GitHub.WebURL, c.GitHub.APIURL = "https://github.com", "https://api.github.com/"
		return c
	}
	cases := []struct {
		name, envSecret, envWebhook string
		change                      func(*controlConfig)
		publicURL                   string
		wantErr                     string
		check                       func(t *testing.T, c controlConfig)
	}{
		{name: "off", change: func(*controlConfig) {}, check: func(t *testing.T, c controlConfig) {
			if c.GitHub.Enabled() || len(c.githubWebhookSecret) != 0 {
				t.Errorf("GitHub is on: %+v", c.GitHub.ClientID)
			}
		}},
		{name: "secrets from files, callback from the public URL", change: func(c *controlConfig) {
			c.GitHub.ClientID, c.GitHubClientSecretFile, c.GitHubWebhookSecretFile = "id", secretFile, webhookFile
		}, publicURL: "https://panel.example.com/", check: func(t *testing.T, c controlConfig) {
			if c.GitHub.ClientSecret != "file-client-secret" || string(c.githubWebhookSecret) != "file-webhook-secret" {
				t.Errorf("secrets %q %q", c.GitHub.ClientSecret, c.githubWebhookSecret)
			}
			if c.GitHub.CallbackURL != "https://panel.example.com/api/paas/github/callback" {
				t.Errorf("callback %q", c.GitHub.CallbackURL)
			}
		}},
		{name: "the environment before the files", envSecret: "env-client-secret", envWebhook: "env-webhook-secret", change: func(c *controlConfig) {
			c.GitHub.ClientID, c.GitHubClientSecretFile, c.GitHub.CallbackURL = "id", secretFile, "https://panel.example.com/api/paas/github/callback"
		}, check: func(t *testing.T, c controlConfig) {
			if c.GitHub.ClientSecret != "env-client-secret" || string(c.githubWebhookSecret) != "env-webhook-secret" {
				t.Errorf("secrets %q %q", c.GitHub.ClientSecret, c.githubWebhookSecret)
			}
		}},
		{name: "an id without a secret", change: func(c *controlConfig) { c.GitHub.ClientID = "id" }, wantErr: "both"},
		{name: "a secret without an id", envSecret: "env-client-secret", change: func(*controlConfig) {}, wantErr: "both"},
		{name: "no callback and no public URL", envSecret: "env-client-secret", change: func(c *controlConfig) { c.GitHub.ClientID = "id" }, wantErr: "GITHUB_CALLBACK_URL"},
		{name: "a bad API URL", envSecret: "env-client-secret", change: func(c *controlConfig) {
			c.GitHub.ClientID, c.GitHub.APIURL = "id", "api.github.com"
		}, publicURL: "https://panel.example.com", wantErr: "GitHub:"},
		{name: "a missing secret file", change: func(c *controlConfig) {
			c.GitHub.ClientID, c.GitHubClientSecretFile = "id", filepath.Join(dir, "missing")
		}, wantErr: "github-client-secret-file"},
		{name: "a frontend URL with credentials", change: func(c *controlConfig) { c.FrontendURL = "https://user:pw@dash.example.com" }, wantErr: "frontend-url"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(GitHubClientSecretEnv, c.envSecret)
			t.Setenv(GitHubWebhookSecretEnv, c.envWebhook)
			cfg := base()
			c.change(&cfg)
			err := cfg.loadGitHub(c.publicURL)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one naming %q", err, c.wantErr)
				}
				for _, secret := range []string{"env-client-secret", "file-client-secret", "env-webhook-secret"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("the error quotes a secret: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, cfg)
		})
	}
}
