package gitclone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/activities/contract"
	"github.com/skypanel/skypanel/activities/node/buildlog"
)

// Error types of the non-retryable application errors this package returns; workflows and the
// API match on them to tell the user what to fix.
const (
	ErrTypeInvalidInput       = "InvalidInput"
	ErrTypeRepositoryNotFound = "RepositoryNotFound"
	ErrTypeBranchNotFound     = "BranchNotFound"
)

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
}

var deploymentIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)

var commitPattern = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

// CloneRepository makes a shallow, single-branch clone of in.GitURL at in.Branch. The
// deployment's directory is emptied first, so a retried attempt starts clean.
func (a *Activities) CloneRepository(ctx context.Context, in CloneInput) (CloneResult, error) {
	if err := a.validate(in); err != nil {
		return CloneResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidInput, nil)
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
	cloneCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	onLine := func(line string) {
		activity.RecordHeartbeat(ctx, "cloning")
		if line != "" {
			logs.Write(ctx, line+"\n")
		}
	}
	out, err := runGit(cloneCtx, cloneArgs(in, dir, true), onLine)
	if err != nil && strings.Contains(out, "does not support shallow") {
		// Dumb-HTTP servers (a static file host) cannot serve a shallow clone: fetch the
		// branch's full history instead.
		logs.Write(ctx, "The server cannot make a shallow clone; fetching the branch's full history\n")
		_ = os.RemoveAll(dir)
		out, err = runGit(cloneCtx, cloneArgs(in, dir, false), onLine)
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		if ctx.Err() == nil && errors.Is(cloneCtx.Err(), context.DeadlineExceeded) {
			logs.Write(ctx, fmt.Sprintf("git clone did not finish within %s\n", timeout))
			return CloneResult{}, fmt.Errorf("git clone of %s timed out after %s", in.GitURL, timeout)
		}
		if ctx.Err() != nil {
			return CloneResult{}, ctx.Err()
		}
		return CloneResult{}, classifyCloneFailure(in, out, err)
	}

	sha, err := runGit(ctx, []string{"-C", dir, "rev-parse", "HEAD"}, nil)
	if err != nil {
		return CloneResult{}, fmt.Errorf("read cloned commit: %s: %w", lastLines(sha, 3), err)
	}
	sha = strings.TrimSpace(sha)
	if !commitPattern.MatchString(sha) {
		return CloneResult{}, fmt.Errorf("read cloned commit: unexpected output %q", sha)
	}
	logs.Write(ctx, "Cloned commit "+sha+"\n")
	logger.InfoContext(ctx, "cloned repository", "commit", sha)
	return CloneResult{Dir: dir, CommitSHA: sha}, nil
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
	return contract.ValidateBranch(in.Branch)
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

// classifyCloneFailure turns git's words into an error the user can act on. Mistakes (no such
// repository or branch) are non-retryable; anything else (network, server) may be retried.
func classifyCloneFailure(in CloneInput, out string, err error) error {
	lower := strings.ToLower(out)
	switch {
	case strings.Contains(lower, "remote branch") && strings.Contains(lower, "not found"):
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("branch %q does not exist in repository %s", in.Branch, in.GitURL), ErrTypeBranchNotFound, nil)
	case strings.Contains(lower, "repository") && strings.Contains(lower, "not found"),
		strings.Contains(lower, "returned error: 404"):
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("repository %s was not found: check the URL (only public repositories can be cloned)", in.GitURL),
			ErrTypeRepositoryNotFound, nil)
	case strings.Contains(lower, "could not read username"),
		strings.Contains(lower, "authentication failed"),
		strings.Contains(lower, "returned error: 401"),
		strings.Contains(lower, "returned error: 403"):
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
