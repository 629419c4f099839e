package gitclone

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/activities/contract"
	"github.com/skypanel/skypanel/activities/node/buildlog"
	"github.com/skypanel/skypanel/activities/node/limitwatch"
)

// Error types of the non-retryable application errors this package returns; workflows and the
// API match on them to tell the user what to fix.
const (
	ErrTypeInvalidInput       = "InvalidInput"
	ErrTypeRepositoryNotFound = "RepositoryNotFound"
	ErrTypeBranchNotFound     = "BranchNotFound"
	ErrTypeCommitNotFound     = "CommitNotFound"
	ErrTypeCloneTooLarge      = "CloneTooLarge"
	// ErrTypeCredentials: the GitHub token a clone needs was refused, by the control plane
	// (GitHub disconnected, the app not on this node) or by GitHub (revoked, access lost).
	ErrTypeCredentials = "CredentialsRefused"
)

// maxCommitMessageBytes bounds CloneResult.CommitMessage: it is shown with the deployment, and
// a message can be as long as its author likes.
const maxCommitMessageBytes = 4096

// DefaultMaxCloneBytes bounds a clone (history and checkout) when Activities.MaxCloneBytes is
// zero: a repository past it would fill the node's disk for every tenant.
const DefaultMaxCloneBytes int64 = 1 << 30

// cloneSizeCheckEvery is how often a running clone's size is measured.
const cloneSizeCheckEvery = 500 * time.Millisecond

// DefaultCloneTimeout bounds one clone when Activities.Timeout is zero.
const DefaultCloneTimeout = 10 * time.Minute

// Activities clones applications' sources into WorkRoot/<deploymentID>.
type Activities struct {
	WorkRoot string
	Logs     buildlog.Sink
	// DenyLoopbackHTTP makes the node refuse CloneInput.AllowLoopbackHTTP: only an agent started
	// for development (--allow-loopback-git) clones from its own loopback.
	DenyLoopbackHTTP bool
	// Timeout bounds each git run; zero means DefaultCloneTimeout.
	Timeout time.Duration
	// MaxCloneBytes bounds the clone's size on disk; zero means DefaultMaxCloneBytes.
	MaxCloneBytes int64
	// Tokens fetches the GitHub token of a CloneInput.GitHubToken clone; without it such a
	// clone is refused.
	Tokens CloneTokens
}

var deploymentIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)

var commitPattern = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

// CloneRepository makes a shallow, single-branch clone of in.GitURL at in.Branch, or, when
// in.Commit is set, clones the branch's history and checks that commit out. The deployment's
// directory is emptied first, so a retried attempt starts clean.
func (a *Activities) CloneRepository(ctx context.Context, in CloneInput) (CloneResult, error) {
	if err := a.validate(in); err != nil {
		return CloneResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidInput, nil)
	}
	if in.GitHubToken && a.Tokens == nil {
		return CloneResult{}, temporal.NewNonRetryableApplicationError(
			"this node has no source of GitHub tokens: it cannot clone a private GitHub repository", ErrTypeInvalidInput, nil)
	}
	dir, err := a.workdir(in.DeploymentID)
	if err != nil {
		return CloneResult{}, err
	}
	if err := os.MkdirAll(a.WorkRoot, 0o700); err != nil {
		return CloneResult{}, fmt.Errorf("create work root: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return CloneResult{}, fmt.Errorf("clear work dir of deployment %s: %w", in.DeploymentID, err)
	}

	logs := buildlog.NewWriter(a.Logs, in.DeploymentID, "clone", activity.GetInfo(ctx).Attempt)
	defer logs.Flush(context.WithoutCancel(ctx))
	logger := slog.With("app_id", in.AppID, "deployment_id", in.DeploymentID)
	logger.InfoContext(ctx, "clone repository", "url", in.GitURL, "branch", in.Branch, "dir", dir)
	logs.Write(ctx, fmt.Sprintf("Cloning %s (branch %s)\n", in.GitURL, in.Branch))

	timeout := a.Timeout
	if timeout <= 0 {
		timeout = DefaultCloneTimeout
	}

	// auth, for a private GitHub repository, makes every git command below ask the askpass
	// helper for the token; it is removed when the clone ends, whichever way it ends.
	var auth *gitAuth
	if in.GitHubToken {
		// No live clone is older than its own timeouts (twice: the token's fetch and the
		// checkout count too), with room to spare.
		removeStaleAskpass(ctx, a.WorkRoot, 2*timeout+10*time.Minute)
		token, err := a.openToken(ctx, in)
		if err != nil {
			logs.Write(ctx, "ERROR: "+err.Error()+"\n")
			return CloneResult{}, err
		}
		askDir, script, err := writeAskpass(a.WorkRoot, token)
		if err != nil {
			return CloneResult{}, err
		}
		defer func() {
			if err := os.RemoveAll(askDir); err != nil {
				logger.WarnContext(ctx, "remove the askpass directory", "err", err)
			}
		}()
		auth = &gitAuth{askpass: script, token: token}
		logs.Write(ctx, "Cloning with the GitHub token of the user who connected the app\n")
	}
	cloneCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	limit := a.MaxCloneBytes
	if limit <= 0 {
		limit = DefaultMaxCloneBytes
	}
	// git has no size limit of its own: the work dir is measured while git writes it, and git
	// is stopped once it is past the limit.
	sizeCtx, tooLarge := context.WithCancelCause(cloneCtx)
	defer tooLarge(nil)
	stopWatch := limitwatch.Start(sizeCtx, cloneSizeCheckEvery, func() bool {
		size, err := dirSize(dir)
		return err == nil && size > limit
	}, tooLarge, errCloneTooLarge)
	defer stopWatch()
	cloneCtx = sizeCtx
	tooLargeErr := func() error {
		if !errors.Is(context.Cause(sizeCtx), errCloneTooLarge) {
			return nil
		}
		msg := fmt.Sprintf("the repository is larger than the clone limit of %s", formatBytes(limit))
		logs.Write(ctx, "ERROR: "+msg+"\n")
		logger.InfoContext(ctx, "clone over its size limit", "limit_bytes", limit)
		return temporal.NewNonRetryableApplicationError(msg, ErrTypeCloneTooLarge, nil)
	}

	onLine := func(line string) {
		activity.RecordHeartbeat(ctx, "cloning")
		if line != "" {
			logs.Write(ctx, line+"\n")
		}
	}
	// A pinned commit may be deep in the branch's history: fetch all of it.
	shallow := in.Commit == ""
	out, err := runGit(cloneCtx, auth, cloneArgs(in, dir, shallow), onLine)
	if err != nil && shallow && strings.Contains(out, "does not support shallow") {
		// Dumb-HTTP servers (a static file host) cannot serve a shallow clone: fetch the
		// branch's full history instead.
		logs.Write(ctx, "The server cannot make a shallow clone; fetching the branch's full history\n")
		_ = os.RemoveAll(dir)
		out, err = runGit(cloneCtx, auth, cloneArgs(in, dir, false), onLine)
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		if err := tooLargeErr(); err != nil {
			return CloneResult{}, err
		}
		if ctx.Err() == nil && errors.Is(cloneCtx.Err(), context.DeadlineExceeded) {
			logs.Write(ctx, fmt.Sprintf("git clone did not finish within %s\n", timeout))
			return CloneResult{}, fmt.Errorf("git clone of %s timed out after %s", in.GitURL, timeout)
		}
		if ctx.Err() != nil {
			return CloneResult{}, ctx.Err()
		}
		return CloneResult{}, classifyCloneFailure(in, out, err)
	}
	if in.Commit != "" {
		logs.Write(ctx, "Checking out commit "+in.Commit+"\n")
		if err := checkoutCommit(cloneCtx, auth, in, dir); err != nil {
			_ = os.RemoveAll(dir)
			if err := tooLargeErr(); err != nil {
				return CloneResult{}, err
			}
			return CloneResult{}, err
		}
	}
	// What was written after the last measure counts too.
	stopWatch()
	if size, err := dirSize(dir); err == nil && size > limit {
		tooLarge(errCloneTooLarge)
	}
	if err := tooLargeErr(); err != nil {
		_ = os.RemoveAll(dir)
		return CloneResult{}, err
	}

	sha, err := runGit(ctx, auth, []string{"-C", dir, "rev-parse", "HEAD"}, nil)
	if err != nil {
		return CloneResult{}, fmt.Errorf("read cloned commit: %s: %w", lastLines(sha, 3), err)
	}
	sha = strings.TrimSpace(sha)
	if !commitPattern.MatchString(sha) {
		return CloneResult{}, fmt.Errorf("read cloned commit: unexpected output %q", sha)
	}
	if in.Commit != "" && sha != in.Commit {
		return CloneResult{}, fmt.Errorf("checked out commit %s, want %s", sha, in.Commit)
	}
	// More than the cap is read, so the cap counts after the message's blank edges are trimmed.
	message, err := gitOutput(ctx, auth, []string{"-C", dir, "log", "-1", "--format=%B", "HEAD"}, 4*maxCommitMessageBytes)
	if err != nil {
		return CloneResult{}, fmt.Errorf("read the message of commit %s: %w", sha, err)
	}
	logs.Write(ctx, "Cloned commit "+sha+"\n")
	logger.InfoContext(ctx, "cloned repository", "commit", sha)
	return CloneResult{Dir: dir, CommitSHA: sha, CommitMessage: capMessage(message)}, nil
}

// capMessage trims message and cuts it to maxCommitMessageBytes, at the start of a character
// so no rune is split.
func capMessage(message string) string {
	message = strings.TrimSpace(message)
	if len(message) <= maxCommitMessageBytes {
		return message
	}
	cut := maxCommitMessageBytes
	for cut > 0 && !utf8.RuneStart(message[cut]) {
		cut--
	}
	return message[:cut]
}

// RemoveWorkdir deletes a deployment's work area; a missing one is fine.
func (a *Activities) RemoveWorkdir(ctx context.Context, in RemoveWorkdirInput) error {
	dir, err := a.workdir(in.DeploymentID)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove work dir of deployment %s: %w", in.DeploymentID, err)
	}
	slog.InfoContext(ctx, "removed work dir", "deployment_id", in.DeploymentID, "dir", dir)
	return nil
}

func (a *Activities) validate(in CloneInput) error {
	if !deploymentIDPattern.MatchString(in.DeploymentID) {
		return errors.New("the deployment id must be letters, digits, '-' or '_'")
	}
	if in.AllowLoopbackHTTP && a.DenyLoopbackHTTP {
		return errors.New("this node does not clone from loopback URLs (start the agent with --allow-loopback-git for development)")
	}
	if err := contract.ValidateRemoteURL(in.GitURL, in.AllowLoopbackHTTP); err != nil {
		return err
	}
	if err := contract.ValidateBranch(in.Branch); err != nil {
		return err
	}
	if in.Commit != "" && !commitPattern.MatchString(in.Commit) {
		return errors.New("the commit must be a full 40- or 64-character lowercase hex SHA")
	}
	return nil
}

func (a *Activities) workdir(deploymentID string) (string, error) {
	if a.WorkRoot == "" {
		return "", errors.New("gitclone: WorkRoot is not set")
	}
	if !deploymentIDPattern.MatchString(deploymentID) {
		return "", temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("invalid deployment id %q: letters, digits, '-' or '_' only", deploymentID), ErrTypeInvalidInput, nil)
	}
	return filepath.Join(a.WorkRoot, deploymentID), nil
}

// cloneArgs allows https only (and http for the development loopback case) and puts "--"
// before the positionals so no user value is read as an option.
func cloneArgs(in CloneInput, dir string, shallow bool) []string {
	args := []string{"-c", "protocol.allow=never", "-c", "protocol.https.allow=always"}
	if in.AllowLoopbackHTTP && strings.HasPrefix(in.GitURL, "http://") {
		args = append(args, "-c", "protocol.http.allow=always")
	}
	args = append(args, "clone", "--progress")
	if shallow {
		args = append(args, "--depth", "1")
	}
	return append(args, "--single-branch", "--no-tags", "--branch", in.Branch, "--", in.GitURL, dir)
}

// checkoutCommit detaches HEAD at in.Commit once it is known to be on the branch. Its presence
// is not enough: a dumb-HTTP clone downloads whole packs, which may hold other branches'
// commits. in.Commit is validated hex; "--end-of-options" and the trailing "--" keep it from
// being read as an option or a path all the same.
func checkoutCommit(ctx context.Context, auth *gitAuth, in CloneInput, dir string) error {
	// Both checks exit 1 for "no" (not in the clone, not an ancestor); other failures may be
	// passing, so they stay retryable.
	for _, check := range [][]string{
		{"-C", dir, "rev-parse", "-q", "--verify", "--end-of-options", in.Commit + "^{commit}"},
		{"-C", dir, "merge-base", "--is-ancestor", "--end-of-options", in.Commit, "HEAD"},
	} {
		out, err := runGit(ctx, auth, check, nil)
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) && exitErr.ExitCode() == 1 {
			return temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("commit %s is no longer on branch %q of %s: it cannot be rebuilt", in.Commit[:12], in.Branch, in.GitURL),
				ErrTypeCommitNotFound, nil)
		}
		if err != nil {
			return fmt.Errorf("look up commit %s: %s: %w", in.Commit, lastLines(out, 3), err)
		}
	}
	if out, err := runGit(ctx, auth, []string{"-C", dir, "checkout", "-q", "--detach", in.Commit, "--"}, nil); err != nil {
		return fmt.Errorf("check out commit %s: %s: %w", in.Commit, lastLines(out, 3), err)
	}
	return nil
}

// classifyCloneFailure turns git's words into an error the user can act on. Mistakes (no such
// repository or branch) are non-retryable; anything else (network, server) may be retried.
func classifyCloneFailure(in CloneInput, out string, err error) error {
	lower := strings.ToLower(out)
	authFailed := strings.Contains(lower, "could not read username") ||
		strings.Contains(lower, "authentication failed") ||
		strings.Contains(lower, "returned error: 401") ||
		strings.Contains(lower, "returned error: 403")
	if in.GitHubToken {
		// git had the token: asked for credentials all the same, GitHub refused it.
		switch {
		case authFailed:
			return temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("GitHub refused the token of the user who connected this app (revoked, or no longer allowed to read %s): "+
					"reconnect GitHub (GET /api/paas/github/authorize) and deploy again", in.GitURL),
				ErrTypeCredentials, nil)
		case strings.Contains(lower, "remote branch") && strings.Contains(lower, "not found"):
			// A missing branch: the plain message below says so.
		case strings.Contains(lower, "repository") && strings.Contains(lower, "not found"),
			strings.Contains(lower, "returned error: 404"):
			// GitHub answers "not found" for a private repository the token may not read.
			return temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("repository %s was not found, or the GitHub user who connected this app may not read it: "+
					"check the URL, or reconnect GitHub (GET /api/paas/github/authorize) as a user who can", in.GitURL),
				ErrTypeRepositoryNotFound, nil)
		}
	}
	switch {
	case strings.Contains(lower, "remote branch") && strings.Contains(lower, "not found"):
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("branch %q does not exist in repository %s", in.Branch, in.GitURL), ErrTypeBranchNotFound, nil)
	case strings.Contains(lower, "repository") && strings.Contains(lower, "not found"),
		strings.Contains(lower, "returned error: 404"):
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("repository %s was not found: check the URL (only public repositories can be cloned)", in.GitURL),
			ErrTypeRepositoryNotFound, nil)
	case authFailed:
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("repository %s asks for credentials: it is private or does not exist (only public repositories can be cloned)", in.GitURL),
			ErrTypeRepositoryNotFound, nil)
	}
	return fmt.Errorf("git clone of %s failed: %s: %w", in.GitURL, lastLines(out, 5), err)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

var errCloneTooLarge = errors.New("clone too large")

// dirSize is the bytes of the regular files under dir; files that vanish meanwhile (git's
// temporary packs) are skipped.
func dirSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total, err
}

// formatBytes says a size the way a limit is read: 1 GiB, 512 MiB, 300 KiB.
func formatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
