package docker

// Managed databases on a node: one hardened container per database, on its organization's
// network only (no published port), its files on a named volume of its own. The engine row of
// the catalogue (contract.DatabaseEngine) says what to run; the node fills in the database's
// names and its password, opened here just before the container is created.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/versions"
	"github.com/docker/docker/api/types/volume"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// LabelStorageMB records a database's planned storage on its volume and container: overlay2 on
// ext4 has no per-volume quota to enforce it with.
const LabelStorageMB = "skypanel.storage_mb"

// ErrTypeDatabaseNotHealthy: the database's container exited (or keeps restarting) before its
// health command passed. Its last output is in the message.
const ErrTypeDatabaseNotHealthy = "DatabaseNotHealthy"

// How a database container runs and is checked.
const (
	// DatabaseStopGrace is how long an engine may take to shut down cleanly (flush, checkpoint)
	// after SIGTERM (SIGINT for PostgreSQL, its image's stop signal) before it is killed.
	DatabaseStopGrace = 30 * time.Second
	// The health command runs every DatabaseHealthInterval; during the start period failures do
	// not count, and an Engine with API 1.44 or later runs it every DatabaseHealthStartInterval
	// then, so WaitDatabaseHealthy sees a started database within a second.
	DatabaseHealthInterval      = 5 * time.Second
	DatabaseHealthStartInterval = time.Second
	DatabaseHealthStartPeriod   = 60 * time.Second
	DatabaseHealthTimeout       = 5 * time.Second
	DatabaseHealthRetries       = 5
	// databaseRunMB is the size of the database's /run, where engines keep sockets and pid files.
	databaseRunMB = 16
	// databasePollEvery is how often WaitDatabaseHealthy looks at the container.
	databasePollEvery = 500 * time.Millisecond
	// databaseTailLines of the container's output go into a DatabaseNotHealthy error.
	databaseTailLines = 20
	// maxHostNameLen: the container name is the database's host name and DNS label.
	maxHostNameLen = 63
)

// DatabaseCapAdd is what an engine's entrypoint needs when the container starts as root, as
// the official images do: give the data and socket directories to the engine's user, walking
// the data directory (whose private subdirectories root may enter only with DAC_READ_SEARCH),
// then switch to that user. A container that starts as another user gets none.
var DatabaseCapAdd = []string{"CHOWN", "DAC_READ_SEARCH", "SETGID", "SETUID"}

var (
	// databaseNamePattern: the user and database names the engine creates.
	databaseNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,62}$`)
	// engineUserPattern: "user", "uid", "user:group" or "uid:gid".
	engineUserPattern  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?$`)
	dataDirChars       = regexp.MustCompile(`^[A-Za-z0-9._@+/-]+$`)
	placeholderPattern = regexp.MustCompile(`\{\{[^{}]*\}\}`)
)

// The placeholders an engine row's Env values and Command may use.
const (
	placeholderUser     = "{{user}}"
	placeholderPassword = "{{password}}"
	placeholderDatabase = "{{database}}"
	placeholderPort     = "{{port}}"
)

// StartDatabase creates (once) the database's volume and hardened container on its
// organization's network and starts it. A running container of the database is kept, a stopped
// one started, one of another image or network replaced; the volume always stays.
func (a *Activities) StartDatabase(ctx context.Context, in StartDatabaseInput) (StartDatabaseResult, error) {
	if err := a.ready(); err != nil {
		return StartDatabaseResult{}, err
	}
	if err := validateDatabase(in); err != nil {
		return StartDatabaseResult{}, err
	}
	name := DatabaseContainerName(in.DatabaseID)
	logger := slog.With("database_id", in.DatabaseID, "org_id", in.OrgID, "container", name)

	img, err := a.ensureDatabaseImage(ctx, in.Engine.Image)
	if err != nil {
		return StartDatabaseResult{}, err
	}
	if err := a.ensureDatabaseVolume(ctx, in, logger); err != nil {
		return StartDatabaseResult{}, err
	}
	id, err := a.reuseOrCreateDatabase(ctx, in, img, logger)
	if err != nil {
		// A network made for a database that could not be created is given back, unless
		// another container of the organization uses it.
		a.releaseOrgNetworks(ctx, []string{in.OrgID})
		return StartDatabaseResult{}, err
	}
	activity.RecordHeartbeat(ctx, "starting "+name)
	if err := a.Client.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return StartDatabaseResult{}, fmt.Errorf("start container %s: %w", name, err)
	}
	logger.InfoContext(ctx, "started database container", "container_id", id, "image", in.Engine.Image)
	return StartDatabaseResult{ContainerID: id, Host: name}, nil
}

// reuseOrCreateDatabase returns the id of the database's container, creating it (and the
// organization's network) when needed, under the organization's network lock held shared: the
// network cannot be removed as unused before the container exists.
func (a *Activities) reuseOrCreateDatabase(ctx context.Context, in StartDatabaseInput, img image.InspectResponse, logger *slog.Logger) (string, error) {
	l := a.networks.lock(in.OrgID)
	l.RLock()
	defer l.RUnlock()
	if _, err := a.ensureOrgNetwork(ctx, in.OrgID); err != nil {
		return "", err
	}
	if hookBeforeCreate != nil {
		hookBeforeCreate(in.OrgID)
	}
	id, err := a.reuseDatabase(ctx, in, logger)
	if err != nil || id != "" {
		return id, err
	}
	if id, err = a.createDatabase(ctx, in, img); err != nil {
		return "", err
	}
	logger.InfoContext(ctx, "created database container", "container_id", id, "image", in.Engine.Image, "network", OrgNetworkName(in.OrgID))
	return id, nil
}

// reuseDatabase returns the id of the database's existing container when it can serve this
// start, "" when a new one must be created (none, or one of another image or network, which is
// stopped cleanly and removed; its volume stays).
func (a *Activities) reuseDatabase(ctx context.Context, in StartDatabaseInput, logger *slog.Logger) (string, error) {
	name := DatabaseContainerName(in.DatabaseID)
	info, err := a.Client.ContainerInspect(ctx, name)
	if errdefs.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("inspect container %s: %w", name, err)
	}
	if !ownedByDatabase(info.Config.Labels, in.DatabaseID) {
		return "", nameTaken("container", name, in.DatabaseID)
	}
	if info.Config.Image == in.Engine.Image && info.HostConfig.NetworkMode == container.NetworkMode(OrgNetworkName(in.OrgID)) {
		return info.ID, nil // running (start is a no-op) or stopped (start resumes it)
	}
	logger.InfoContext(ctx, "replacing the database's container of another image", "container_id", info.ID, "image", info.Config.Image)
	stopBeat := heartbeat(ctx, "replacing "+name)
	defer stopBeat()
	if err := a.removeContainer(ctx, info.ID, DatabaseStopGrace); err != nil {
		return "", fmt.Errorf("replace container %s: %w", name, err)
	}
	return "", nil
}

func (a *Activities) createDatabase(ctx context.Context, in StartDatabaseInput, img image.InspectResponse) (string, error) {
	name := DatabaseContainerName(in.DatabaseID)
	password, err := a.openDatabasePassword(ctx, in)
	if err != nil {
		return "", err
	}
	imageUser := ""
	if img.Config != nil {
		imageUser = img.Config.User
	}
	config, hostConfig, netConfig := databaseSpec(in, password, databaseSpecOptions{
		rootStart:     startsAsRoot(in.Engine.User, imageUser),
		startInterval: versions.GreaterThanOrEqualTo(a.Client.ClientVersion(), "1.44"),
		nodeID:        a.NodeID,
	})
	resp, err := a.Client.ContainerCreate(ctx, config, hostConfig, netConfig, nil, name)
	// The filled-in values are not kept around in this process.
	clear(config.Env)
	clear(config.Cmd)
	if err == nil {
		return resp.ID, nil
	}
	if errdefs.IsConflict(err) {
		// A concurrent attempt created it between our inspect and create: use that one.
		info, ierr := a.Client.ContainerInspect(ctx, name)
		if ierr == nil && ownedByDatabase(info.Config.Labels, in.DatabaseID) {
			return info.ID, nil
		}
	}
	return "", fmt.Errorf("create container %s: %w", name, redact(err, password))
}

// openDatabasePassword opens the database's password through the node's own key, or answers ""
// when the engine row does not use it.
func (a *Activities) openDatabasePassword(ctx context.Context, in StartDatabaseInput) (string, error) {
	if !usesPlaceholder(in.Engine, placeholderPassword) {
		return "", nil
	}
	if a.Secrets == nil {
		return "", temporal.NewNonRetryableApplicationError(
			"this node has no way to open the database's password (no node keys)", ErrTypeSecretUnavailable, nil)
	}
	password, err := a.Secrets.OpenDatabasePassword(ctx, in.DatabaseID, in.PasswordSealed)
	if err != nil {
		return "", err
	}
	if password == "" || strings.ContainsFunc(password, isControl) {
		return "", invalidInput("the password of database %s is empty or contains a control character", in.DatabaseID)
	}
	return password, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// ensureDatabaseImage returns the engine's image, pulling it when the node lacks it: from the
// platform registry with the node's credential when the image names a registry, else
// anonymously (the official images; the node's credential is for the platform registry only).
func (a *Activities) ensureDatabaseImage(ctx context.Context, ref string) (image.InspectResponse, error) {
	img, err := a.Client.ImageInspect(ctx, ref)
	if err == nil {
		return img, nil
	}
	if !errdefs.IsNotFound(err) {
		return img, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	if fromRegistry(ref) {
		if err := a.ensureImage(ctx, ref); err != nil {
			return img, err
		}
	} else if err := a.pullAnonymously(ctx, ref); err != nil {
		return img, err
	}
	if img, err = a.Client.ImageInspect(ctx, ref); err != nil {
		return img, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return img, nil
}

func (a *Activities) pullAnonymously(ctx context.Context, ref string) error {
	started := time.Now()
	rc, err := a.Client.ImagePull(ctx, ref, image.PullOptions{RegistryAuth: noAuth})
	if err == nil {
		defer rc.Close()
		_, err = readStream(ctx, rc, "pull "+ref)
	}
	if errdefs.IsNotFound(err) || (err != nil && strings.Contains(err.Error(), "manifest unknown")) {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("image %s is not on this node and its registry does not hold it: %v", ref, err), ErrTypeImageNotInRegistry, nil)
	}
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	slog.InfoContext(ctx, "pulled image", "image", ref, "took", time.Since(started).Round(time.Millisecond))
	return nil
}

// ensureDatabaseVolume creates the database's named volume unless it exists.
func (a *Activities) ensureDatabaseVolume(ctx context.Context, in StartDatabaseInput, logger *slog.Logger) error {
	name := DatabaseVolumeName(in.DatabaseID)
	existing, err := a.Client.VolumeInspect(ctx, name)
	if err == nil {
		if !ownedByDatabase(existing.Labels, in.DatabaseID) {
			return nameTaken("volume", name, in.DatabaseID)
		}
		return nil
	}
	if !errdefs.IsNotFound(err) {
		return fmt.Errorf("inspect volume %s: %w", name, err)
	}
	if _, err := a.Client.VolumeCreate(ctx, volume.CreateOptions{Name: name, Driver: "local", Labels: databaseLabels(in, a.NodeID)}); err != nil {
		return fmt.Errorf("create volume %s: %w", name, err)
	}
	logger.InfoContext(ctx, "created database volume", "volume", name, "storage_mb", in.StorageMB)
	return nil
}

func databaseLabels(in StartDatabaseInput, nodeID string) map[string]string {
	return map[string]string{
		LabelManaged:   "true",
		LabelDatabase:  in.DatabaseID,
		LabelOrg:       in.OrgID,
		LabelNode:      nodeID,
		LabelStorageMB: strconv.Itoa(in.StorageMB),
	}
}

func ownedByDatabase(labels map[string]string, databaseID string) bool {
	return labels[LabelManaged] == "true" && labels[LabelDatabase] == databaseID
}

func nameTaken(what, name, databaseID string) error {
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("a %s named %s exists on this node and does not belong to database %s", what, name, databaseID),
		ErrTypeNameTaken, nil)
}

type databaseSpecOptions struct {
	rootStart     bool // the container starts as root: its entrypoint needs DatabaseCapAdd
	startInterval bool // the Engine takes a health check start interval (API 1.44+)
	nodeID        string
}

// databaseSpec is the one place a database container's configuration is decided; password is
// the opened password ("" when the engine row does not use it).
func databaseSpec(in StartDatabaseInput, password string, opts databaseSpecOptions) (*container.Config, *container.HostConfig, *network.NetworkingConfig) {
	name := DatabaseContainerName(in.DatabaseID)
	netName := OrgNetworkName(in.OrgID)
	fill := placeholderReplacer(in, password)
	memory := int64(in.MemoryMB) * 1024 * 1024
	pids := int64(PidsLimit)
	stopTimeout := int(DatabaseStopGrace / time.Second)
	health := &container.HealthConfig{
		Test:        append([]string{"CMD"}, in.Engine.HealthCommand...),
		Interval:    DatabaseHealthInterval,
		Timeout:     DatabaseHealthTimeout,
		StartPeriod: DatabaseHealthStartPeriod,
		Retries:     DatabaseHealthRetries,
	}
	if opts.startInterval {
		health.StartInterval = DatabaseHealthStartInterval
	}
	config := &container.Config{
		Image:       in.Engine.Image,
		Hostname:    name,
		User:        in.Engine.User,
		Env:         databaseEnv(in.Engine.Env, fill),
		Labels:      databaseLabels(in, opts.nodeID),
		Healthcheck: health,
		StopTimeout: &stopTimeout,
	}
	if len(in.Engine.Command) > 0 {
		config.Cmd = make([]string, len(in.Engine.Command))
		for i, arg := range in.Engine.Command {
			config.Cmd[i] = fill.Replace(arg)
		}
	}
	var capAdd []string
	if opts.rootStart {
		capAdd = append(capAdd, DatabaseCapAdd...)
	}
	tmpfs := func(sizeMB int) string { return fmt.Sprintf("rw,nosuid,nodev,size=%dm", sizeMB) }
	hostConfig := &container.HostConfig{
		NetworkMode: container.NetworkMode(netName),
		// No published port: only the organization's containers reach the database.
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		Init:          &initProcess,
		LogConfig: container.LogConfig{
			Type:   "json-file",
			Config: map[string]string{"max-size": LogMaxSize, "max-file": LogMaxFiles},
		},
		CapDrop:     []string{"ALL"},
		CapAdd:      capAdd,
		SecurityOpt: []string{"no-new-privileges"},
		Resources: container.Resources{
			Memory:     memory,
			MemorySwap: memory,
			NanoCPUs:   int64(in.CPUMillis) * 1_000_000,
			PidsLimit:  &pids,
			Ulimits:    []*container.Ulimit{{Name: "nofile", Soft: instanceOpenFiles(), Hard: instanceOpenFiles()}},
		},
		Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: DatabaseVolumeName(in.DatabaseID), Target: in.Engine.DataDir}},
		// Memory file systems, charged to the database's memory. A tmpfs takes the mode of the
		// image's directory (runc), so /run stays root's: an entrypoint that starts as root
		// makes its socket directory there for the engine's user.
		Tmpfs: map[string]string{"/tmp": tmpfs(tmpSizeMB(in.MemoryMB)), "/run": tmpfs(databaseRunMB)},
	}
	netConfig := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		netName: {Aliases: []string{name}},
	}}
	return config, hostConfig, netConfig
}

// databaseEnv is the engine row's environment with the placeholders filled, in a stable order.
func databaseEnv(vars map[string]string, fill *strings.Replacer) []string {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	env := make([]string, 0, len(keys))
	for _, k := range keys {
		env = append(env, k+"="+fill.Replace(vars[k]))
	}
	return env
}

func placeholderReplacer(in StartDatabaseInput, password string) *strings.Replacer {
	return strings.NewReplacer(
		placeholderUser, in.User,
		placeholderPassword, password,
		placeholderDatabase, in.Database,
		placeholderPort, strconv.Itoa(in.Engine.Port),
	)
}

func usesPlaceholder(e DatabaseEngine, placeholder string) bool {
	for _, v := range e.Env {
		if strings.Contains(v, placeholder) {
			return true
		}
	}
	for _, arg := range e.Command {
		if strings.Contains(arg, placeholder) {
			return true
		}
	}
	return false
}

// startsAsRoot says whether the container's first process runs as root: the engine row's user,
// or the image's when the row names none.
func startsAsRoot(engineUser, imageUser string) bool {
	user := engineUser
	if user == "" {
		user = imageUser
	}
	name, _, _ := strings.Cut(user, ":")
	return name == "" || name == "0" || name == "root"
}

// redact replaces secret in err's message; the error's type is lost when it had to.
func redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "[redacted]"))
}

func validateDatabase(in StartDatabaseInput) error {
	if err := checkID("database id", in.DatabaseID); err != nil {
		return err
	}
	if err := checkID("organization id", in.OrgID); err != nil {
		return err
	}
	if name := DatabaseContainerName(in.DatabaseID); len(name) > maxHostNameLen {
		return invalidInput("invalid database id %q: its host name %s is longer than %d characters", in.DatabaseID, name, maxHostNameLen)
	}
	if err := checkEngine(in.Engine); err != nil {
		return err
	}
	for _, f := range []struct{ what, placeholder, value string }{
		{"user", placeholderUser, in.User}, {"database", placeholderDatabase, in.Database},
	} {
		if (f.value != "" || usesPlaceholder(in.Engine, f.placeholder)) && !databaseNamePattern.MatchString(f.value) {
			return invalidInput("invalid %s name %q: a letter or '_' first, then letters, digits, '_' or '-', at most 63", f.what, f.value)
		}
	}
	if usesPlaceholder(in.Engine, placeholderPassword) && in.PasswordSealed == "" {
		return invalidInput("database %s has no password, and its engine's settings use one", in.DatabaseID)
	}
	if in.MemoryMB < 32 {
		return invalidInput("invalid memory limit %d MiB: at least 32", in.MemoryMB)
	}
	if in.CPUMillis < 1 {
		return invalidInput("invalid CPU limit %d millicores", in.CPUMillis)
	}
	if in.StorageMB < 0 {
		return invalidInput("invalid storage %d MiB", in.StorageMB)
	}
	return nil
}

// checkEngine tells what is wrong with the catalogue's engine row, or nil. It never quotes an
// Env value or a Command argument: they are the catalogue's, but they become the password's
// place once filled in.
func checkEngine(e DatabaseEngine) error {
	if !validImageRef(e.Image, false) {
		return invalidInput("invalid engine image %q", e.Image)
	}
	if e.Port < 1 || e.Port > 65535 {
		return invalidInput("invalid engine port %d: 1-65535", e.Port)
	}
	if err := checkDataDir(e.DataDir); err != nil {
		return err
	}
	if len(e.HealthCommand) == 0 || e.HealthCommand[0] == "" {
		return invalidInput("the engine has no health command")
	}
	for _, arg := range e.HealthCommand {
		if placeholderPattern.MatchString(arg) || strings.ContainsRune(arg, 0) {
			return invalidInput("the engine's health command has a placeholder or a NUL character: it reads the container's environment instead")
		}
	}
	for key, value := range e.Env {
		if !envKeyPattern.MatchString(key) {
			return invalidInput("invalid engine environment variable name %q: use A-Z, 0-9 and '_', not starting with a digit", key)
		}
		if err := checkPlaceholders("environment variable "+key, value); err != nil {
			return err
		}
	}
	for i, arg := range e.Command {
		if err := checkPlaceholders(fmt.Sprintf("command argument %d", i), arg); err != nil {
			return err
		}
	}
	// The Engine quotes the program's name when it cannot run it: it is never filled in.
	if len(e.Command) > 0 && (e.Command[0] == "" || placeholderPattern.MatchString(e.Command[0])) {
		return invalidInput("the engine's command must start with a program's name, without placeholders")
	}
	if e.User != "" && !engineUserPattern.MatchString(e.User) {
		return invalidInput("invalid engine user %q: a name or id, optionally :group", e.User)
	}
	return nil
}

func checkPlaceholders(what, value string) error {
	if strings.ContainsRune(value, 0) {
		return invalidInput("the engine's %s contains a NUL character", what)
	}
	for _, p := range placeholderPattern.FindAllString(value, -1) {
		switch p {
		case placeholderUser, placeholderPassword, placeholderDatabase, placeholderPort:
		default:
			return invalidInput("the engine's %s names %s: the placeholders are {{user}}, {{password}}, {{database}} and {{port}}", what, p)
		}
	}
	return nil
}

// checkDataDir: an absolute, clean path of plain characters that is neither the root, a memory
// file system of the container (/tmp, /run) nor the kernel's (/proc, /sys, /dev).
func checkDataDir(dir string) error {
	if dir == "" || len(dir) > 200 || !dataDirChars.MatchString(dir) || !strings.HasPrefix(dir, "/") || path.Clean(dir) != dir || dir == "/" {
		return invalidInput("invalid engine data directory %q: an absolute, clean path of letters, digits and . _ @ + - /", dir)
	}
	for _, tree := range []string{"/tmp", "/run", "/proc", "/sys", "/dev"} {
		if dir == tree || strings.HasPrefix(dir, tree+"/") {
			return invalidInput("invalid engine data directory %q: %s is not the disk's", dir, tree)
		}
	}
	return nil
}

// WaitDatabaseHealthy waits until the database container's health command passes. A container
// that exits, or keeps restarting, fails at once (non-retryable DatabaseNotHealthy, with its
// last output); otherwise it waits as long as the activity may run (its StartToClose timeout).
func (a *Activities) WaitDatabaseHealthy(ctx context.Context, in WaitDatabaseHealthyInput) error {
	if err := a.ready(); err != nil {
		return err
	}
	if err := checkID("database id", in.DatabaseID); err != nil {
		return err
	}
	name := DatabaseContainerName(in.DatabaseID)
	restartsBefore := -1
	for {
		info, err := a.Client.ContainerInspect(ctx, name)
		if errdefs.IsNotFound(err) {
			return temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("the database did not become healthy: its container %s does not exist", name), ErrTypeDatabaseNotHealthy, nil)
		}
		if err != nil {
			return fmt.Errorf("inspect container %s: %w", name, err)
		}
		if !ownedByDatabase(info.Config.Labels, in.DatabaseID) {
			return nameTaken("container", name, in.DatabaseID)
		}
		if restartsBefore < 0 {
			restartsBefore = info.RestartCount
		}
		if databaseDown(info, restartsBefore) {
			return a.databaseNotHealthy(ctx, in, info)
		}
		health := info.State.Health
		if health == nil {
			return temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("the database did not become healthy: its container %s has no health check", name), ErrTypeDatabaseNotHealthy, nil)
		}
		if health.Status == container.Healthy {
			slog.InfoContext(ctx, "database healthy", "database_id", in.DatabaseID, "container", name, "container_id", info.ID)
			return nil
		}
		activity.RecordHeartbeat(ctx, "waiting for "+name+" ("+health.Status+")")
		select {
		case <-ctx.Done():
			return fmt.Errorf("database %s is not healthy yet (%s): %w", name, health.Status, ctx.Err())
		case <-time.After(databasePollEvery):
		}
	}
}

// databaseDown says whether the container stopped, or restarted since the wait began (its
// restart policy starts it again after a crash, so a crash may show only as a restart).
func databaseDown(info container.InspectResponse, restartsBefore int) bool {
	s := info.State
	return s == nil || !s.Running || s.Restarting || s.Dead || info.RestartCount > restartsBefore
}

func (a *Activities) databaseNotHealthy(ctx context.Context, in WaitDatabaseHealthyInput, info container.InspectResponse) error {
	name := strings.TrimPrefix(info.Name, "/")
	code := 0
	if info.State != nil {
		code = info.State.ExitCode
	}
	reason := fmt.Sprintf("its container %s exited with code %d", name, code)
	switch {
	case info.State != nil && info.State.OOMKilled:
		reason = fmt.Sprintf("its container %s was killed for using more memory than its plan allows", name)
	case info.State != nil && info.State.Error != "":
		reason = fmt.Sprintf("its container %s could not start: %s", name, info.State.Error)
	case info.State != nil && info.State.Running:
		// Restarted by its policy since the wait began: the exit code of its last run is gone.
		reason = fmt.Sprintf("its container %s keeps exiting and being restarted", name)
	}
	msg := "the database did not become healthy: " + reason
	tail, err := a.containerTail(ctx, info.ID)
	if err != nil {
		slog.WarnContext(ctx, "read container logs", "database_id", in.DatabaseID, "container_id", info.ID, "err", err)
	}
	if last := lastOutputLines(tail, databaseTailLines, 4000); last != "" {
		msg += "; its last output: " + last
	}
	for _, secret := range passwordValues(info, in.Engine) {
		msg = strings.ReplaceAll(msg, secret, "[redacted]")
	}
	slog.InfoContext(ctx, "database container exited before it was healthy", "database_id", in.DatabaseID,
		"container", name, "container_id", info.ID, "exit_code", code, "restarts", info.RestartCount)
	return temporal.NewNonRetryableApplicationError(msg, ErrTypeDatabaseNotHealthy, nil)
}

// passwordValues are the container's values that hold the password: the environment variables
// and command arguments its engine row fills with {{password}}, whole, and the password itself
// where it can be cut out of them. An engine that prints its environment on a failed start
// must not put the password into an error.
func passwordValues(info container.InspectResponse, e DatabaseEngine) []string {
	if info.Config == nil {
		return nil
	}
	env := make(map[string]string, len(info.Config.Env))
	for _, kv := range info.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	var values []string
	add := func(template, filled string) {
		if !strings.Contains(template, placeholderPassword) || filled == "" {
			return
		}
		values = append(values, filled)
		before, after, _ := strings.Cut(template, placeholderPassword)
		if !placeholderPattern.MatchString(before+after) && strings.HasPrefix(filled, before) && strings.HasSuffix(filled, after) &&
			len(filled) > len(before)+len(after) {
			values = append(values, filled[len(before):len(filled)-len(after)])
		}
	}
	for k, template := range e.Env {
		add(template, env[k])
	}
	for i, template := range e.Command {
		if i < len(info.Config.Cmd) {
			add(template, info.Config.Cmd[i])
		}
	}
	// The longest first, so a value that holds the password is replaced whole.
	sort.Slice(values, func(i, j int) bool { return len(values[i]) > len(values[j]) })
	return values
}

// checkDatabaseRef is what every database activity checks first: the Engine is there, and the
// ids are ids (they name containers and volumes).
func (a *Activities) checkDatabaseRef(databaseID, orgID string) error {
	if err := a.ready(); err != nil {
		return err
	}
	if err := checkID("database id", databaseID); err != nil {
		return err
	}
	return checkID("organization id", orgID)
}

// RemoveDatabase stops (DatabaseStopGrace) and removes the database's container, with
// DropVolume its volume too, then gives back its organization's network when no container of
// the organization is left. What is already gone is fine, so a retry finishes the work.
func (a *Activities) RemoveDatabase(ctx context.Context, in RemoveDatabaseInput) error {
	if err := a.checkDatabaseRef(in.DatabaseID, in.OrgID); err != nil {
		return err
	}
	name := DatabaseContainerName(in.DatabaseID)
	logger := slog.With("database_id", in.DatabaseID, "org_id", in.OrgID, "container", name)
	stopBeat := heartbeat(ctx, "removing "+name)
	defer stopBeat()

	orgs := []string{in.OrgID}
	info, err := a.Client.ContainerInspect(ctx, name)
	switch {
	case errdefs.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("inspect container %s: %w", name, err)
	case !ownedByDatabase(info.Config.Labels, in.DatabaseID):
		return nameTaken("container", name, in.DatabaseID)
	default:
		if org := info.Config.Labels[LabelOrg]; org != in.OrgID {
			orgs = append(orgs, org)
		}
		if err := a.removeContainer(ctx, info.ID, DatabaseStopGrace); err != nil {
			return fmt.Errorf("remove container %s: %w", name, err)
		}
		logger.InfoContext(ctx, "removed database container", "container_id", info.ID)
	}
	if in.DropVolume {
		if err := a.removeDatabaseVolume(ctx, in.DatabaseID, logger); err != nil {
			return err
		}
	}
	a.releaseOrgNetworks(ctx, orgs)
	return nil
}

func (a *Activities) removeDatabaseVolume(ctx context.Context, databaseID string, logger *slog.Logger) error {
	name := DatabaseVolumeName(databaseID)
	existing, err := a.Client.VolumeInspect(ctx, name)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect volume %s: %w", name, err)
	}
	if !ownedByDatabase(existing.Labels, databaseID) {
		return nameTaken("volume", name, databaseID)
	}
	if err := a.Client.VolumeRemove(ctx, name, false); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	logger.InfoContext(ctx, "removed database volume: its data is gone", "volume", name)
	return nil
}
