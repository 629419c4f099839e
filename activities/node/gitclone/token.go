package gitclone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
)

// CloneTokens fetches the GitHub token a deployment clones with: the control plane re-seals
// the token of the user who connected the app for this node and this deployment only.
type CloneTokens interface {
	OpenGitHubToken(ctx context.Context, appID, deploymentID string) (string, error)
}

// askpassPrefix names the private directories that hold a clone's askpass helper and token in
// WorkRoot. A leading '.' is never a deployment id (deploymentIDPattern), so neither a clone
// nor RemoveWorkdir ever lands in or on one.
const askpassPrefix = ".askpass-"

// githubUsername is the user name GitHub takes with an OAuth or installation token.
const githubUsername = "x-access-token"

// openToken fetches the deployment's GitHub token. An application error from Tokens (the API's
// refusal, in its words) is returned as it is: a wrapped one would reach Temporal as a plain,
// retryable error.
func (a *Activities) openToken(ctx context.Context, in CloneInput) (string, error) {
	token, err := a.Tokens.OpenGitHubToken(ctx, in.AppID, in.DeploymentID)
	if err != nil {
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) {
			return "", err
		}
		return "", fmt.Errorf("fetch the GitHub token of app %s for deployment %s: %w", in.AppID, in.DeploymentID, err)
	}
	// The token goes into a file git reads one line of: an empty one, or one with a newline or
	// another control character, is no token GitHub made.
	if token == "" || strings.IndexFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return "", temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("the control plane sent a malformed GitHub token for deployment %s", in.DeploymentID), ErrTypeCredentials, nil)
	}
	return token, nil
}

// writeAskpass makes a private directory in root holding the token (0600) and a helper script
// (0700) git runs as GIT_ASKPASS: it answers the username prompt with x-access-token and the
// password prompt with the token file. So the token is in no argument list, no environment and
// no git config, where other processes or the clone's .git/config could show it. The caller
// removes the directory when the clone ends.
func writeAskpass(root, token string) (dir, script string, err error) {
	dir, err = os.MkdirTemp(root, askpassPrefix) // 0700
	if err != nil {
		return "", "", fmt.Errorf("create the askpass directory: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	tokenFile := filepath.Join(dir, "token")
	if err := writeNew(tokenFile, token, 0o600); err != nil {
		return "", "", fmt.Errorf("write the askpass token file: %w", err)
	}
	script = filepath.Join(dir, "askpass")
	body := "#!/bin/sh\n" +
		"# git asks for the username, then the password (the token), of one clone.\n" +
		"case \"$1\" in\n" +
		"Username*) echo " + githubUsername + " ;;\n" +
		"*) exec cat " + shellQuote(tokenFile) + " ;;\n" +
		"esac\n"
	if err := writeNew(script, body, 0o700); err != nil {
		return "", "", fmt.Errorf("write the askpass script: %w", err)
	}
	return dir, script, nil
}

// writeNew writes a file that must not exist yet, with perm from the start (never wider).
func writeNew(path, content string, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// shellQuote quotes s for sh: inside single quotes only a single quote is special.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// removeStaleAskpass removes askpass directories older than maxAge: those of an agent killed
// in the middle of a clone, whose deferred removal never ran. A live clone's is younger.
func removeStaleAskpass(ctx context.Context, root string, maxAge time.Duration) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), askpassPrefix) {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < maxAge {
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
			slog.WarnContext(ctx, "remove a stale askpass directory", "dir", e.Name(), "err", err)
		}
	}
}
