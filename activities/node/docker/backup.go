package docker

// Backups and restores of managed databases on their node. The engine's own dump and restore
// commands (the catalogue's) run inside the database's container; the bytes go between the
// container and the platform's backup store (BackupTransfer) through the node, hashed on the
// way both times, so neither a bad transfer nor a damaged stored object goes unnoticed.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// BackupTransfer carries backups between a node and the platform's backup store (the agent's
// implementation talks to the API with the node's token).
type BackupTransfer interface {
	// Upload streams body to the store as backup backupID of databaseID and returns what the
	// store received: its size and SHA-256 (hex).
	Upload(ctx context.Context, databaseID, backupID string, body io.Reader) (size int64, sha256Hex string, err error)
	// Download opens backup backupID of databaseID from the store.
	Download(ctx context.Context, databaseID, backupID string) (io.ReadCloser, error)
}

// Error types of backups and restores (ErrTypeBackupCorrupt is beside their inputs).
const (
	// ErrTypeBackupFailed: the engine's dump command failed; its last output is in the message.
	ErrTypeBackupFailed = "BackupFailed"
	// ErrTypeRestoreFailed: the engine's restore command failed; its last output is in the
	// message. What the database holds then is the engine's affair: PostgreSQL restores in
	// one transaction and Redis swaps its whole dataset, so both keep their data; MariaDB
	// keeps the statements that ran.
	ErrTypeRestoreFailed = "RestoreFailed"
	// ErrTypeRestoreCountFailed: the restore finished, but the engine's count command failed
	// or printed something other than a number.
	ErrTypeRestoreCountFailed = "RestoreCountFailed"
	// ErrTypeBackupTransfer: the store received other bytes than the node sent. Retryable: a
	// transfer problem, and the dump is taken again.
	ErrTypeBackupTransfer = "BackupTransferMismatch"
	// ErrTypeBackupUnavailable: the store refused the node, or does not hold the backup.
	ErrTypeBackupUnavailable = "BackupUnavailable"
	// ErrTypeDatabaseMissing: the database has no container on this node.
	ErrTypeDatabaseMissing = "DatabaseMissing"
)

const (
	// backupBeatEvery: a backup or restore reports its bytes this often.
	backupBeatEvery = 2 * time.Second
	// backupOutputTail bytes of a command's output are kept for its error.
	backupOutputTail = 4 << 10
	// maxCountOutput bounds what a count command may print.
	maxCountOutput = 4 << 10
	// execExitWait: how long a command whose output ended may take to be reported exited.
	execExitWait = 10 * time.Second
	// execStopGrace: how long stopExec waits for a command to stop after SIGTERM.
	execStopGrace = 5 * time.Second
)

var sha256Pattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// BackupProgress is the heartbeat detail of a backup or restore: its phase ("dump",
// "download", "restore") and the bytes that have gone through in it so far.
type BackupProgress struct {
	Phase string
	Bytes int64
}

// BackupDatabase runs the engine's dump command in the database's container and streams its
// stdout to the backup store, hashing and counting it on the way. The upload is completed only
// when the dump exits 0 having written something (otherwise it is aborted, so the store never
// holds a whole object of it), and the store's answer must name the bytes the node sent.
func (a *Activities) BackupDatabase(ctx context.Context, in BackupDatabaseInput) (BackupDatabaseResult, error) {
	if err := a.checkBackupInput(in.DatabaseID, in.BackupID, "dump", in.Engine.DumpCommand); err != nil {
		return BackupDatabaseResult{}, err
	}
	info, err := a.databaseContainer(ctx, in.DatabaseID)
	if err != nil {
		return BackupDatabaseResult{}, err
	}
	name := DatabaseContainerName(in.DatabaseID)
	logger := slog.With("database_id", in.DatabaseID, "backup_id", in.BackupID, "container", name)
	started := time.Now()

	type uploaded struct {
		size int64
		sum  string
		err  error
	}
	pr, pw := io.Pipe()
	done := make(chan uploaded, 1)
	go func() {
		size, sum, err := a.Backups.Upload(ctx, in.DatabaseID, in.BackupID, pr)
		// Once the store stops reading, the dump's next write fails instead of blocking.
		pr.CloseWithError(err)
		done <- uploaded{size, sum, err}
	}()

	hash := sha256.New()
	var sent atomic.Int64
	stderr := newTailBuffer(backupOutputTail)
	stopBeat := progressHeartbeat(ctx, "dump", &sent)
	code, execErr := a.execInContainer(ctx, name, in.Engine.DumpCommand, nil,
		io.MultiWriter(pw, hash, byteCounter{&sent}), stderr)
	stopBeat()
	// Only a dump that ended well completes the upload: any other end aborts it.
	switch {
	case execErr != nil:
		pw.CloseWithError(execErr)
	case code != 0:
		pw.CloseWithError(fmt.Errorf("the dump command exited with code %d", code))
	case sent.Load() == 0:
		pw.CloseWithError(errors.New("the dump command wrote nothing"))
	default:
		pw.Close()
	}
	up := <-done

	switch {
	case execErr != nil && up.err != nil:
		return BackupDatabaseResult{}, transferError(up.err, "upload backup %s of database %s", in.BackupID, in.DatabaseID)
	case execErr != nil:
		return BackupDatabaseResult{}, execErr
	case code != 0:
		msg := fmt.Sprintf("the database's dump command exited with code %d", code)
		if last := lastOutputLines(stderr.String(), databaseTailLines, backupOutputTail); last != "" {
			msg += "; its last output: " + last
		}
		return BackupDatabaseResult{}, temporal.NewNonRetryableApplicationError(redactPasswords(msg, info, in.Engine), ErrTypeBackupFailed, nil)
	case sent.Load() == 0:
		// Every engine's dump has a header at least: the command wrote elsewhere.
		msg := "the database's dump command exited 0 but wrote nothing"
		if last := lastOutputLines(stderr.String(), databaseTailLines, backupOutputTail); last != "" {
			msg += "; its last output: " + last
		}
		return BackupDatabaseResult{}, temporal.NewNonRetryableApplicationError(redactPasswords(msg, info, in.Engine), ErrTypeBackupFailed, nil)
	case up.err != nil:
		return BackupDatabaseResult{}, transferError(up.err, "upload backup %s of database %s", in.BackupID, in.DatabaseID)
	}

	res := BackupDatabaseResult{SizeBytes: sent.Load(), SHA256: hex.EncodeToString(hash.Sum(nil))}
	if up.size != res.SizeBytes || !strings.EqualFold(up.sum, res.SHA256) {
		return BackupDatabaseResult{}, temporal.NewApplicationError(fmt.Sprintf(
			"the backup store received other bytes than this node sent: %d bytes with sha256 %s stored, %d bytes with sha256 %s sent",
			up.size, up.sum, res.SizeBytes, res.SHA256), ErrTypeBackupTransfer)
	}
	logger.InfoContext(ctx, "backed up database", "size_bytes", res.SizeBytes, "sha256", res.SHA256,
		"took", time.Since(started).Round(time.Millisecond))
	return res, nil
}

// RestoreDatabase downloads the backup into a private file on the node, refuses it unless its
// size and SHA-256 are the recorded ones (before anything runs in the container), then runs
// the engine's restore command in the database's container with the file on its stdin, and
// its count command.
func (a *Activities) RestoreDatabase(ctx context.Context, in RestoreDatabaseInput) (RestoreDatabaseResult, error) {
	if err := a.checkBackupInput(in.DatabaseID, in.BackupID, "restore", in.Engine.RestoreCommand); err != nil {
		return RestoreDatabaseResult{}, err
	}
	if in.SizeBytes < 0 || !sha256Pattern.MatchString(in.SHA256) {
		return RestoreDatabaseResult{}, invalidInput("invalid recorded size %d or sha256 %q of backup %s: a size and 64 lowercase hex digits",
			in.SizeBytes, in.SHA256, in.BackupID)
	}
	info, err := a.databaseContainer(ctx, in.DatabaseID)
	if err != nil {
		return RestoreDatabaseResult{}, err
	}
	name := DatabaseContainerName(in.DatabaseID)
	logger := slog.With("database_id", in.DatabaseID, "backup_id", in.BackupID, "container", name)
	started := time.Now()

	file, err := a.backupFile()
	if err != nil {
		return RestoreDatabaseResult{}, err
	}
	defer func() {
		file.Close()
		if err := os.Remove(file.Name()); err != nil && !errors.Is(err, os.ErrNotExist) {
			logger.WarnContext(ctx, "remove the downloaded backup", "file", file.Name(), "err", err)
		}
	}()
	if err := a.downloadBackup(ctx, in, file); err != nil {
		return RestoreDatabaseResult{}, err
	}
	downloaded := time.Since(started)
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return RestoreDatabaseResult{}, fmt.Errorf("rewind the downloaded backup: %w", err)
	}

	var fed atomic.Int64
	output := newTailBuffer(backupOutputTail)
	stopBeat := progressHeartbeat(ctx, "restore", &fed)
	code, err := a.execInContainer(ctx, name, in.Engine.RestoreCommand, countingReader{file, &fed}, output, output)
	stopBeat()
	if err != nil {
		return RestoreDatabaseResult{}, err
	}
	if code != 0 {
		msg := fmt.Sprintf("the database's restore command exited with code %d", code)
		if last := lastOutputLines(output.String(), databaseTailLines, backupOutputTail); last != "" {
			msg += "; its last output: " + last
		}
		return RestoreDatabaseResult{}, temporal.NewNonRetryableApplicationError(redactPasswords(msg, info, in.Engine), ErrTypeRestoreFailed, nil)
	}

	var res RestoreDatabaseResult
	if len(in.Engine.CountCommand) > 0 {
		if res.Restored, err = a.countDatabase(ctx, name, info, in.Engine); err != nil {
			return res, err
		}
	}
	logger.InfoContext(ctx, "restored database", "size_bytes", in.SizeBytes, "restored", res.Restored,
		"download_took", downloaded.Round(time.Millisecond), "took", time.Since(started).Round(time.Millisecond))
	return res, nil
}

func (a *Activities) checkBackupInput(databaseID, backupID, what string, command []string) error {
	if err := a.ready(); err != nil {
		return err
	}
	if err := checkID("database id", databaseID); err != nil {
		return err
	}
	if err := checkID("backup id", backupID); err != nil {
		return err
	}
	if len(command) == 0 || command[0] == "" {
		return invalidInput("the engine has no %s command", what)
	}
	if a.Backups == nil {
		return temporal.NewNonRetryableApplicationError("this node has no way to reach the backup store", ErrTypeBackupUnavailable, nil)
	}
	return nil
}

// databaseContainer inspects the database's container, which must be the database's own.
func (a *Activities) databaseContainer(ctx context.Context, databaseID string) (container.InspectResponse, error) {
	name := DatabaseContainerName(databaseID)
	info, err := a.Client.ContainerInspect(ctx, name)
	if errdefs.IsNotFound(err) {
		return info, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("database %s has no container on this node (%s)", databaseID, name), ErrTypeDatabaseMissing, nil)
	}
	if err != nil {
		return info, fmt.Errorf("inspect container %s: %w", name, err)
	}
	if !ownedByDatabase(info.Config.Labels, databaseID) {
		return info, nameTaken("container", name, databaseID)
	}
	return info, nil
}

// backupFile creates a private file for a download in BackupDir (the system's temporary
// directory when unset).
func (a *Activities) backupFile() (*os.File, error) {
	dir := a.BackupDir
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, "restore-*.dump") // 0600
	if err != nil {
		return nil, fmt.Errorf("create a file for the backup: %w", err)
	}
	return f, nil
}

// downloadBackup copies the backup from the store into file, and refuses it when it is not
// the recorded one (ErrTypeBackupCorrupt). It reads at most one byte more than recorded.
func (a *Activities) downloadBackup(ctx context.Context, in RestoreDatabaseInput, file *os.File) error {
	rc, err := a.Backups.Download(ctx, in.DatabaseID, in.BackupID)
	if err != nil {
		return transferError(err, "download backup %s of database %s", in.BackupID, in.DatabaseID)
	}
	defer rc.Close()
	hash := sha256.New()
	var got atomic.Int64
	stopBeat := progressHeartbeat(ctx, "download", &got)
	_, err = io.Copy(io.MultiWriter(file, hash, byteCounter{&got}), contextReader{ctx, io.LimitReader(rc, in.SizeBytes+1)})
	stopBeat()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return transferError(err, "download backup %s of database %s", in.BackupID, in.DatabaseID)
	}
	sum := hex.EncodeToString(hash.Sum(nil))
	if got.Load() == in.SizeBytes && sum == in.SHA256 {
		return nil
	}
	stored := "sha256 " + sum
	switch {
	case got.Load() > in.SizeBytes:
		stored = fmt.Sprintf("more than the recorded %d bytes", in.SizeBytes)
	case got.Load() < in.SizeBytes:
		stored = fmt.Sprintf("%d bytes of the recorded %d with sha256 %s", got.Load(), in.SizeBytes, sum)
	}
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
		"the backup's stored bytes do not match its checksum (%s, recorded %s): refused before touching the database", stored, in.SHA256),
		ErrTypeBackupCorrupt, nil)
}

// countDatabase runs the engine's count command and reads the number it prints.
func (a *Activities) countDatabase(ctx context.Context, name string, info container.InspectResponse, e DatabaseEngine) (int64, error) {
	var printed strings.Builder
	stderr := newTailBuffer(backupOutputTail)
	code, err := a.execInContainer(ctx, name, e.CountCommand, nil, &limitWriter{w: &printed, n: maxCountOutput}, stderr)
	if errors.Is(err, errLimit) {
		return 0, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("the database was restored, but its count command printed more than %d bytes", maxCountOutput), ErrTypeRestoreCountFailed, nil)
	}
	if err != nil {
		return 0, err
	}
	out := strings.TrimSpace(printed.String())
	if code != 0 {
		msg := fmt.Sprintf("the database was restored, but its count command exited with code %d", code)
		if last := lastOutputLines(stderr.String(), databaseTailLines, backupOutputTail); last != "" {
			msg += "; its last output: " + last
		}
		return 0, temporal.NewNonRetryableApplicationError(redactPasswords(msg, info, e), ErrTypeRestoreCountFailed, nil)
	}
	n, err := strconv.ParseInt(out, 10, 64)
	if err != nil {
		return 0, temporal.NewNonRetryableApplicationError(redactPasswords(
			fmt.Sprintf("the database was restored, but its count command printed %q, not a number", out), info, e), ErrTypeRestoreCountFailed, nil)
	}
	return n, nil
}

// execInContainer runs cmd in the container as the container's user, without a TTY, feeding
// it stdin when not nil (then closing its input) and splitting its output into stdout and
// stderr, and answers its exit code once its output has ended. When ctx ends the stream is
// closed: the command fails at its next write.
func (a *Activities) execInContainer(ctx context.Context, containerName string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	created, err := a.Client.ContainerExecCreate(ctx, containerName, container.ExecOptions{
		Cmd: cmd, AttachStdin: stdin != nil, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return 0, fmt.Errorf("exec in container %s: %w", containerName, err)
	}
	resp, err := a.Client.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return 0, fmt.Errorf("attach to exec %s in container %s: %w", created.ID, containerName, err)
	}
	defer resp.Close()
	defer context.AfterFunc(ctx, resp.Close)()

	var fed chan error
	if stdin != nil {
		fed = make(chan error, 1)
		go func() { fed <- feed(resp, stdin) }()
	}
	_, copyErr := stdcopy.StdCopy(stdout, stderr, resp.Reader)
	resp.Close() // a feed the command stopped reading ends here
	var feedErr error
	if fed != nil {
		feedErr = <-fed
	}
	if ctx.Err() != nil || copyErr != nil || feedErr != nil {
		a.stopExec(created.ID, containerName)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if copyErr != nil {
		return 0, fmt.Errorf("read the output of the command in container %s: %w", containerName, copyErr)
	}
	if feedErr != nil {
		return 0, feedErr
	}
	return a.execExitCode(ctx, created.ID)
}

// feed copies stdin to the command, then closes the command's input. A write the command
// refuses (it exited, or stopped reading) is its exit code's to explain; a failed read of
// stdin is an error, since the command saw a cut input.
func feed(resp types.HijackedResponse, stdin io.Reader) error {
	src := &readRecorder{r: stdin}
	_, err := io.Copy(resp.Conn, src)
	if src.err != nil {
		resp.Close()
		return fmt.Errorf("read the command's input: %w", src.err)
	}
	if err == nil {
		resp.CloseWrite()
	}
	return nil
}

// execExitCode waits until the exec is reported exited (its output may end a moment before).
func (a *Activities) execExitCode(ctx context.Context, execID string) (int, error) {
	deadline := time.Now().Add(execExitWait)
	for {
		inspect, err := a.Client.ContainerExecInspect(ctx, execID)
		if err != nil {
			return 0, fmt.Errorf("inspect exec %s: %w", execID, err)
		}
		if !inspect.Running {
			return inspect.ExitCode, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("exec %s closed its output but still runs after %s", execID, execExitWait)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stopExec ends a command the activity gave up on (cancelled, or its output could not be
// passed on): the Engine keeps draining the output of an exec nobody reads, so it would run to
// its end, a dump holding its snapshot, a restore going on. Docker starts each exec in a session
// of its own, and its process group gets SIGTERM, never SIGKILL: every catalogue command stops
// on it, and the Redis restore must get to make the database a master again. The agent runs in
// the host's PID namespace (a systemd service); the group is signalled only while its leader
// is the exec's process, in the container's cgroup. It waits execStopGrace for the command.
func (a *Activities) stopExec(execID, containerName string) {
	ctx, cancel := context.WithTimeout(context.Background(), execStopGrace+5*time.Second)
	defer cancel()
	logger := slog.With("container", containerName, "exec_id", execID)
	inspect, err := a.Client.ContainerExecInspect(ctx, execID)
	if err != nil || !inspect.Running || inspect.Pid <= 0 {
		return
	}
	if !execLeader(inspect.Pid, inspect.ContainerID) {
		logger.WarnContext(ctx, "cannot stop a command this node no longer waits for: its process is not visible here", "pid", inspect.Pid)
		return
	}
	if err := syscall.Kill(-inspect.Pid, syscall.SIGTERM); err != nil {
		logger.WarnContext(ctx, "stop a command this node no longer waits for", "pid", inspect.Pid, "err", err)
		return
	}
	for deadline := time.Now().Add(execStopGrace); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if inspect, err := a.Client.ContainerExecInspect(ctx, execID); err != nil || !inspect.Running {
			logger.InfoContext(ctx, "stopped a command this node no longer waits for", "pid", inspect.Pid)
			return
		}
	}
	logger.WarnContext(ctx, "a command this node no longer waits for still runs", "pid", inspect.Pid, "waited", execStopGrace)
}

// execLeader says whether host process pid leads its process group, in the cgroup of the
// container containerID.
func execLeader(pid int, containerID string) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil || containerID == "" {
		return false
	}
	// pid (comm) state ppid pgrp …: comm may hold spaces and parentheses.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(fields) < 3 || fields[2] != strconv.Itoa(pid) {
		return false
	}
	cgroup, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	return err == nil && strings.Contains(string(cgroup), containerID)
}

// transferError names the backup in err's message, keeping the type and retry decision of a
// Temporal application error (the SDK reads only the outermost error's type).
func transferError(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		msg := what + ": " + appErr.Message()
		if appErr.NonRetryable() {
			return temporal.NewNonRetryableApplicationError(msg, appErr.Type(), nil)
		}
		return temporal.NewApplicationError(msg, appErr.Type())
	}
	return fmt.Errorf("%s: %w", what, err)
}

// redactPasswords replaces the container's password-bearing values in msg (see
// passwordValues): an engine's command may print its environment.
func redactPasswords(msg string, info container.InspectResponse, e DatabaseEngine) string {
	for _, secret := range passwordValues(info, e) {
		msg = strings.ReplaceAll(msg, secret, "[redacted]")
	}
	return msg
}

// progressHeartbeat records BackupProgress{phase, n} every backupBeatEvery until stopped.
func progressHeartbeat(ctx context.Context, phase string, n *atomic.Int64) (stop func()) {
	ticker := time.NewTicker(backupBeatEvery)
	quit := make(chan struct{})
	go func() {
		for {
			select {
			case <-ticker.C:
				activity.RecordHeartbeat(ctx, BackupProgress{Phase: phase, Bytes: n.Load()})
			case <-quit:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { ticker.Stop(); close(quit) }
}

type byteCounter struct{ n *atomic.Int64 }

func (w byteCounter) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	return len(p), nil
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n.Add(int64(n))
	return n, err
}

// readRecorder remembers a failed read (not io.EOF), to tell it from a failed write.
type readRecorder struct {
	r   io.Reader
	err error
}

func (r *readRecorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// contextReader stops reading once ctx ends, whatever its reader does.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (r contextReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > t.max {
		p = p[len(p)-t.max:]
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.buf = t.buf[:copy(t.buf, t.buf[over:])]
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// String is the tail as text, without a character cut at its start.
func (t *tailBuffer) String() string { return strings.ToValidUTF8(string(t.buf), "") }
