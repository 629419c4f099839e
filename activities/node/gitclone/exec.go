package gitclone

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// progressEvery throttles git's carriage-return progress lines ("Receiving objects: 42%") so
// the build log gets a readable trace, not thousands of updates.
const progressEvery = 2 * time.Second

// outputKeep bounds how much of git's output is kept for error messages.
const outputKeep = 8 << 10

// gitAuth is how the git commands of one clone authenticate; nil for an anonymous clone.
type gitAuth struct {
	// askpass is the helper git runs for the username and the password (see writeAskpass).
	askpass string
	// token is cut out of every line git prints, should git ever print it.
	token string
}

// redact replaces the token in s.
func (g *gitAuth) redact(s string) string {
	if g == nil || g.token == "" {
		return s
	}
	return strings.ReplaceAll(s, g.token, "[REDACTED]")
}

// runGit runs git with an argument list (never a shell) in a clean environment, hands each
// output line to onLine while it runs and returns the combined output (its tail, when long).
// With auth, git asks auth's helper for credentials (and no credential helper may store them),
// and the token is cut out of what git prints before anyone sees it.
// The process group is killed when ctx ends, so git's helpers (git-remote-https) die with it.
func runGit(ctx context.Context, auth *gitAuth, args []string, onLine func(string)) (string, error) {
	cmd := gitCommand(ctx, auth, args)
	pr, pw, err := os.Pipe()
	if err != nil {
		return "", err
	}
	cmd.Stdout = pw
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return "", err
	}
	pw.Close()

	var out tailBuffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		readLines(pr, &out, auth.redact, onLine)
	}()
	stopBeat := heartbeatWhile(onLine)
	waitErr := cmd.Wait()
	// A helper git left behind may still hold the pipe open; don't wait for it forever.
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	pr.Close()
	<-done
	stopBeat()
	return out.String(), waitErr
}

// gitCommand is git with args in the clean environment, in its own process group (killed
// whole when ctx ends); the caller sets its output.
func gitCommand(ctx context.Context, auth *gitAuth, args []string) *exec.Cmd {
	askpass := ""
	if auth != nil {
		askpass = auth.askpass
		// An empty credential.helper clears any helper git would otherwise hand the token to
		// for storing (the global and system configs are ignored already; this is for
		// certain).
		args = append([]string{"-c", "credential.helper="}, args...)
	}
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Env = gitEnvWith(askpass)
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// gitOutput runs git and returns the first limit bytes of its standard output (the rest is
// read and dropped, so git is not blocked); its standard error's tail goes into the error.
func gitOutput(ctx context.Context, auth *gitAuth, args []string, limit int) (string, error) {
	cmd := gitCommand(ctx, auth, args)
	stdout := &cappedBuffer{limit: limit}
	var stderr tailBuffer
	cmd.Stdout = stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w", lastLines(auth.redact(stderr.String()), 3), err)
	}
	return auth.redact(stdout.buf.String()), nil
}

// cappedBuffer keeps the first limit bytes written to it.
type cappedBuffer struct {
	buf   bytes.Buffer
	limit int
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := c.limit - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// heartbeatWhile keeps a silent git (a large fetch prints nothing for a while) from looking dead:
// it calls onLine with an empty string, which the caller turns into a heartbeat only.
func heartbeatWhile(onLine func(string)) (stop func()) {
	if onLine == nil {
		return func() {}
	}
	ticker := time.NewTicker(5 * time.Second)
	quit := make(chan struct{})
	go func() {
		for {
			select {
			case <-ticker.C:
				onLine("")
			case <-quit:
				return
			}
		}
	}()
	return func() { ticker.Stop(); close(quit) }
}

// readLines splits git's output on '\n' and '\r'; '\r' lines are progress updates, passed on
// at most every progressEvery. Every line is redacted before it is kept or passed on.
func readLines(r io.Reader, out *tailBuffer, redact func(string) string, onLine func(string)) {
	br := bufio.NewReader(r)
	var line []byte
	var lastProgress time.Time
	for {
		b, err := br.ReadByte()
		if err != nil {
			if len(line) > 0 {
				emit(out, onLine, redact(string(line)))
			}
			return
		}
		switch b {
		case '\n':
			emit(out, onLine, redact(string(line)))
			line = line[:0]
		case '\r':
			if onLine != nil && len(line) > 0 && time.Since(lastProgress) >= progressEvery {
				lastProgress = time.Now()
				onLine(redact(string(line)))
			}
			line = line[:0]
		default:
			if len(line) < 4096 {
				line = append(line, b)
			}
		}
	}
}

func emit(out *tailBuffer, onLine func(string), line string) {
	out.WriteString(line + "\n")
	if onLine != nil && strings.TrimSpace(line) != "" {
		onLine(line)
	}
}

// gitEnv is what git runs with: only the variables it needs from the agent's environment
// (PATH, HOME, TMPDIR, the operator's proxy and CA settings), never the agent's own
// (SKYPANEL_*, which may carry a registration token) nor any GIT_* or locale setting, plus
// settings that make git fail instead of prompting and ignore the machine's system and global
// git config (where a url.insteadOf could rewrite the URL we validated).
func gitEnv() []string { return gitEnvWith("") }

// gitEnvWith is gitEnv with askpass as git's askpass program ("true", which answers nothing,
// when empty).
func gitEnvWith(askpass string) []string {
	if askpass == "" {
		askpass = "true"
	}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if gitEnvPassed[strings.ToUpper(name)] {
			env = append(env, kv)
		}
	}
	return append(env,
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS="+askpass,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"LC_ALL=C",
	)
}

// gitEnvPassed are the variables of the agent's environment git gets (names upper-cased:
// proxies are often set in lower case).
var gitEnvPassed = map[string]bool{
	"PATH": true, "HOME": true, "TMPDIR": true,
	"HTTP_PROXY": true, "HTTPS_PROXY": true, "NO_PROXY": true, "ALL_PROXY": true,
	"SSL_CERT_FILE": true, "SSL_CERT_DIR": true,
}

// tailBuffer keeps the last outputKeep bytes written to it.
type tailBuffer struct{ buf bytes.Buffer }

func (t *tailBuffer) WriteString(s string) {
	t.buf.WriteString(s)
	if t.buf.Len() > 2*outputKeep {
		tail := append([]byte(nil), t.buf.Bytes()[t.buf.Len()-outputKeep:]...)
		t.buf.Reset()
		t.buf.Write(tail)
	}
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.WriteString(string(p))
	return len(p), nil
}

func (t *tailBuffer) String() string { return t.buf.String() }
