package fakegithub

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// CommitAndPush writes files (path relative to the repository -> content) on branch of the bare
// repository at barePath as one commit with message, through a throwaway working copy on the
// filesystem (the fake refuses pushes over HTTP). A branch that does not exist yet forks from the
// repository's default branch, or starts the history of an empty repository. It returns the new
// commit's id.
func CommitAndPush(barePath, branch, message string, files map[string]string) (string, error) {
	work, err := os.MkdirTemp("", "fakegithub-work-")
	if err != nil {
		return "", fmt.Errorf("fakegithub: working copy: %w", err)
	}
	defer os.RemoveAll(work)

	run := func(args ...string) (string, error) {
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(),
			// Neither the machine's nor the user's git config: no signing, hooks or templates.
			"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull,
			"GIT_AUTHOR_NAME=Fake GitHub", "GIT_AUTHOR_EMAIL=fake@github.invalid",
			"GIT_COMMITTER_NAME=Fake GitHub", "GIT_COMMITTER_EMAIL=fake@github.invalid",
		)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("fakegithub: git %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out)), nil
	}

	if _, err := run("clone", "--quiet", barePath, "."); err != nil {
		return "", err
	}
	if _, err := run("rev-parse", "--verify", "--quiet", "refs/remotes/origin/"+branch); err == nil {
		_, err = run("checkout", "--quiet", "-B", branch, "origin/"+branch)
		if err != nil {
			return "", err
		}
	} else if _, err := run("checkout", "--quiet", "-B", branch); err != nil {
		return "", err
	}
	for name, content := range files {
		path := filepath.Join(work, filepath.FromSlash(name))
		if !strings.HasPrefix(path, work+string(filepath.Separator)) {
			return "", fmt.Errorf("fakegithub: file %q is outside the repository", name)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return "", fmt.Errorf("fakegithub: %w", err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return "", fmt.Errorf("fakegithub: %w", err)
		}
	}
	if _, err := run("add", "--all"); err != nil {
		return "", err
	}
	if _, err := run("commit", "--quiet", "--allow-empty", "-m", message); err != nil {
		return "", err
	}
	if _, err := run("push", "--quiet", "origin", "HEAD:refs/heads/"+branch); err != nil {
		return "", err
	}
	return run("rev-parse", "HEAD")
}
