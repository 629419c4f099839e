package gitclone

import (
	"bufio"
	"bytes"
	"context"
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

// runGit runs git with an argument list (never a shell) in a clean environment, hands each
// output line to onLine while it runs and returns the combined output (its tail, when long).
// The process group is killed when ctx ends, so git's helpers (git-remote-https) die with it.
func runGit(ctx context.Context, args []string, onLine func(string)) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Env = gitEnv()
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second

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
		readLines(pr, &out, onLine)
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
// at most every progressEvery.
func readLines(r io.Reader, out *tailBuffer, onLine func(string)) {
	br := bufio.NewReader(r)
	var line []byte
	var lastProgress time.Time
	for {
		b, err := br.ReadByte()
		if err != nil {
			if len(line) > 0 {
				emit(out, onLine, string(line))
			}
			return
		}
		switch b {
		case '\n':
			emit(out, onLine, string(line))
			line = line[:0]
		case '\r':
			if onLine != nil && len(line) > 0 && time.Since(lastProgress) >= progressEvery {
				lastProgress = time.Now()
				onLine(string(line))
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
func gitEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if gitEnvPassed[strings.ToUpper(name)] {
			env = append(env, kv)
		}
	}
	return append(env,
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=true",
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

func (t *tailBuffer) String() string { return t.buf.String() }
