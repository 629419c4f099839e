package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/activities/node/buildpack"
)

// Hardening every app container gets; docs/node-agent.md explains each.
const (
	InstanceUser = "1000:1000"
	PidsLimit    = 512
	LogMaxSize   = "10m"
	LogMaxFiles  = "3"
	// RestartPolicy applies once the instance has proven it answers (WaitReady). Until then it
	// has none, so a crash on start stays visible with its exit code instead of looping.
	RestartPolicy = container.RestartPolicyUnlessStopped
)

var initProcess = true

// InstanceCapAdd is what a web process may need after dropping every capability: bind a low
// port and switch user/group (some runtimes' entrypoints do).
var InstanceCapAdd = []string{"NET_BIND_SERVICE", "CHOWN", "SETGID", "SETUID"}

// StartInstance runs one hardened container of a release. It is idempotent by InstanceName: a
// running container of that name is reused, a stopped one is started, and one left over from a
// different release or image is replaced.
func (a *Activities) StartInstance(ctx context.Context, in StartInstanceInput) (StartInstanceResult, error) {
	if err := a.ready(); err != nil {
		return StartInstanceResult{}, err
	}
	if err := validateInstance(in); err != nil {
		return StartInstanceResult{}, err
	}
	if in.Network == "" {
		in.Network = OrgNetworkName(in.OrgID)
	}
	logger := slog.With("app_id", in.AppID, "container", in.InstanceName)

	id, err := a.reuseOrCreateInstance(ctx, in, logger)
	if err != nil {
		// A network made for an instance that could not be created is given back, unless
		// another container of the organization uses it.
		a.releaseOrgNetworks(ctx, []string{in.OrgID})
		return StartInstanceResult{}, err
	}
	activity.RecordHeartbeat(ctx, "starting")
	if err := a.Client.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return StartInstanceResult{}, fmt.Errorf("start container %s: %w", in.InstanceName, err)
	}

	info, err := a.Client.ContainerInspect(ctx, id)
	if err != nil {
		return StartInstanceResult{}, fmt.Errorf("inspect container %s: %w", in.InstanceName, err)
	}
	if exited(info) {
		return StartInstanceResult{}, a.instanceExited(ctx, in.DeploymentID, info)
	}
	hostPort, err := publishedPort(info, in.Port)
	if err != nil {
		return StartInstanceResult{}, fmt.Errorf("container %s: %w", in.InstanceName, err)
	}
	logger.InfoContext(ctx, "started container", "container_id", info.ID, "host_port", hostPort)
	return StartInstanceResult{ContainerID: info.ID, InstanceName: in.InstanceName, HostPort: hostPort}, nil
}

// reuseOrCreateInstance returns the id of the container of in.InstanceName, creating it (and
// the organization's network) when needed. It holds the organization's network lock shared, so
// the network cannot be removed as unused before the container exists.
func (a *Activities) reuseOrCreateInstance(ctx context.Context, in StartInstanceInput, logger *slog.Logger) (string, error) {
	l := a.networks.lock(in.OrgID)
	l.RLock()
	defer l.RUnlock()
	if in.Network == OrgNetworkName(in.OrgID) {
		if _, err := a.ensureOrgNetwork(ctx, in.OrgID); err != nil {
			return "", err
		}
	}
	if hookBeforeCreate != nil {
		hookBeforeCreate(in.OrgID)
	}
	id, err := a.reuseInstance(ctx, in, logger)
	if err != nil || id != "" {
		return id, err
	}
	if !imageIDPattern.MatchString(in.Image) {
		if err := a.ensureImage(ctx, in.Image); err != nil {
			return "", err
		}
	}
	if id, err = a.createInstance(ctx, in); err != nil {
		return "", err
	}
	logger.InfoContext(ctx, "created container", "container_id", id, "image", in.Image, "network", in.Network)
	return id, nil
}

// reuseInstance returns the id of an existing container of in.InstanceName that can serve this
// start, "" when a new one must be created.
func (a *Activities) reuseInstance(ctx context.Context, in StartInstanceInput, logger *slog.Logger) (string, error) {
	info, err := a.Client.ContainerInspect(ctx, in.InstanceName)
	if errdefs.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("inspect container %s: %w", in.InstanceName, err)
	}
	labels := info.Config.Labels
	if labels[LabelManaged] != "true" || labels[LabelApp] != in.AppID {
		return "", temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("a container named %s exists on this node and does not belong to app %s", in.InstanceName, in.AppID),
			ErrTypeNameTaken, nil)
	}
	if labels[LabelRelease] == in.ReleaseID && info.Config.Image == in.Image && info.HostConfig.NetworkMode == container.NetworkMode(in.Network) {
		return info.ID, nil // running (start is a no-op) or stopped (start resumes it)
	}
	logger.InfoContext(ctx, "replacing container of another release", "container_id", info.ID, "release", labels[LabelRelease])
	if err := a.Client.ContainerRemove(ctx, info.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !errdefs.IsNotFound(err) {
		return "", fmt.Errorf("remove stale container %s: %w", in.InstanceName, err)
	}
	return "", nil
}

func (a *Activities) createInstance(ctx context.Context, in StartInstanceInput) (string, error) {
	img, err := a.Client.ImageInspect(ctx, in.Image)
	if errdefs.IsNotFound(err) {
		return "", temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("create container %s: %s", in.InstanceName, engineMessage(err)), ErrTypeInvalidInput, nil)
	}
	if err != nil {
		return "", fmt.Errorf("inspect image %s: %w", in.Image, err)
	}
	var labels map[string]string
	var imageEnv []string
	if img.Config != nil {
		labels, imageEnv = img.Config.Labels, img.Config.Env
	}
	rootFS := rootFSOf(in, labels[LabelBuildpack])
	env, err := a.openEnv(ctx, in.AppID, in.Env, false)
	if err != nil {
		return "", err
	}
	if rootFS.ReadOnly {
		homeInTmp(env, imageEnv)
	}
	config, hostConfig, netConfig := instanceSpec(in, rootFS, env, a.NodeID)
	resp, err := a.Client.ContainerCreate(ctx, config, hostConfig, netConfig, nil, in.InstanceName)
	clear(env) // the opened values are not kept around in this process
	if err == nil {
		return resp.ID, nil
	}
	if errdefs.IsConflict(err) {
		// A concurrent attempt created it between our inspect and create: use that one.
		info, ierr := a.Client.ContainerInspect(ctx, in.InstanceName)
		if ierr == nil && info.Config.Labels[LabelApp] == in.AppID && info.Config.Labels[LabelRelease] == in.ReleaseID {
			return info.ID, nil
		}
	}
	if errdefs.IsNotFound(err) {
		return "", temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("create container %s: %s", in.InstanceName, engineMessage(err)), ErrTypeInvalidInput, nil)
	}
	return "", fmt.Errorf("create container %s: %w", in.InstanceName, err)
}

// rootFSOf is the root filesystem setting of the runtime that built the instance's image:
// builtBy is the image's skypanel.buildpack label, the stack whose buildpack built it, or ""
// for a repository's own Dockerfile. That is the app's runtime when its kind built it; for the
// auto runtime, a detected stack's runtime (StackRootFS). An image another runtime built (the
// app's runtime changed and it was not deployed since) runs writable until its next deploy:
// the platform knows nothing of what it writes.
func rootFSOf(in StartInstanceInput, builtBy string) RootFS {
	switch {
	case builtBy == "" && (in.RuntimeKind == buildpack.RuntimeDockerfile || in.RuntimeKind == buildpack.RuntimeAuto):
		return in.RootFS
	case builtBy != "" && builtBy == in.RuntimeKind:
		return in.RootFS
	case builtBy != "" && in.RuntimeKind == buildpack.RuntimeAuto:
		return in.StackRootFS[builtBy]
	}
	return RootFS{}
}

// homeInTmp points HOME at /tmp unless the app or its image sets it. Tools write under HOME on
// their own (npm and npx their cache and logs, pip and many Python libraries ~/.cache, composer
// ~/.composer): in a read-only root the user's home cannot take it, and the image's user may
// have none at all (HOME=/). /tmp is the one directory every read-only instance can write.
func homeInTmp(env map[string]string, imageEnv []string) {
	if _, set := env["HOME"]; set {
		return
	}
	for _, kv := range imageEnv {
		if strings.HasPrefix(kv, "HOME=") {
			return
		}
	}
	env["HOME"] = "/tmp"
}

// instanceSpec is the one place an app container's configuration is decided; env is the app's
// opened environment, rootFS the setting of the runtime that built the image.
func instanceSpec(in StartInstanceInput, rootFS RootFS, env map[string]string, nodeID string) (*container.Config, *container.HostConfig, *network.NetworkingConfig) {
	port := nat.Port(strconv.Itoa(in.Port) + "/tcp")
	memory := int64(in.MemoryMB) * 1024 * 1024
	pids := int64(PidsLimit)
	config := &container.Config{
		Image:        in.Image,
		User:         InstanceUser,
		Env:          instanceEnv(in.Port, env),
		ExposedPorts: nat.PortSet{port: struct{}{}},
		Labels: map[string]string{
			LabelManaged: "true",
			LabelApp:     in.AppID,
			LabelOrg:     in.OrgID,
			LabelRelease: in.ReleaseID,
			LabelNode:    nodeID,
		},
	}
	hostConfig := &container.HostConfig{
		NetworkMode:   container.NetworkMode(in.Network),
		PortBindings:  nat.PortMap{port: []nat.PortBinding{{HostIP: "127.0.0.1", HostPort: ""}}},
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		// A tiny init as PID 1 forwards SIGTERM to the app and reaps its children: an app that
		// installs no signal handler still stops at once instead of after the grace period.
		Init: &initProcess,
		LogConfig: container.LogConfig{
			Type:   "json-file",
			Config: map[string]string{"max-size": LogMaxSize, "max-file": LogMaxFiles},
		},
		CapDrop:     []string{"ALL"},
		CapAdd:      append([]string(nil), InstanceCapAdd...),
		SecurityOpt: []string{"no-new-privileges"},
		Resources: container.Resources{
			Memory:     memory,
			MemorySwap: memory,
			NanoCPUs:   int64(in.CPUMillis) * 1_000_000,
			PidsLimit:  &pids,
			// dockerd's own limit (often a million) would let one app hold the node's file
			// table; this is plenty for any web process.
			Ulimits: []*container.Ulimit{{Name: "nofile", Soft: instanceOpenFiles(), Hard: instanceOpenFiles()}},
		},
		Tmpfs: instanceTmpfs(rootFS, in.MemoryMB),
		// A read-only root keeps the app from changing its own image's files (a compromised app
		// cannot plant anything that outlives a restart) and from filling the node's disk
		// through the writable layer, which has no size limit on overlay2 without project
		// quotas (docs/architecture.md).
		ReadonlyRootfs: rootFS.ReadOnly,
	}
	netConfig := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		in.Network: {},
	}}
	return config, hostConfig, netConfig
}

// instanceEnv is PORT plus the app's variables in a stable order; the platform's PORT wins over
// a user variable of the same name.
func instanceEnv(port int, vars map[string]string) []string {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		if k != "PORT" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	env := []string{"PORT=" + strconv.Itoa(port)}
	for _, k := range keys {
		env = append(env, k+"="+vars[k])
	}
	return env
}

func validateInstance(in StartInstanceInput) error {
	for _, f := range []struct{ what, value string }{
		{"app id", in.AppID}, {"organization id", in.OrgID}, {"release id", in.ReleaseID},
	} {
		if err := checkID(f.what, f.value); err != nil {
			return err
		}
	}
	if in.DeploymentID != "" {
		if err := checkID("deployment id", in.DeploymentID); err != nil {
			return err
		}
	}
	if !containerNamePat.MatchString(in.InstanceName) {
		return invalidInput("invalid instance name %q", in.InstanceName)
	}
	if !validImageRef(in.Image, true) {
		return invalidInput("invalid image %q", in.Image)
	}
	if in.Network != "" && !containerNamePat.MatchString(in.Network) {
		return invalidInput("invalid network name %q", in.Network)
	}
	if in.Port < 1 || in.Port > 65535 {
		return invalidInput("invalid port %d: 1-65535", in.Port)
	}
	if in.MemoryMB < 6 {
		return invalidInput("invalid memory limit %d MiB: at least 6", in.MemoryMB)
	}
	if in.CPUMillis < 1 {
		return invalidInput("invalid CPU limit %d millicores", in.CPUMillis)
	}
	if err := in.RootFS.Check(); err != nil {
		return invalidInput("invalid root filesystem setting: %v", err)
	}
	for stack, rootFS := range in.StackRootFS {
		if err := rootFS.Check(); err != nil {
			return invalidInput("invalid root filesystem setting of stack %q: %v", stack, err)
		}
	}
	return validateSealedVars(in.Env)
}

// publishedPort reads the loopback port Docker chose for the container's port.
func publishedPort(info container.InspectResponse, port int) (int, error) {
	if info.NetworkSettings == nil {
		return 0, errors.New("no network settings")
	}
	for _, b := range info.NetworkSettings.Ports[nat.Port(strconv.Itoa(port)+"/tcp")] {
		if b.HostIP != "127.0.0.1" {
			continue
		}
		if p, err := strconv.Atoi(b.HostPort); err == nil && p > 0 {
			return p, nil
		}
	}
	return 0, fmt.Errorf("port %d/tcp is not published on 127.0.0.1", port)
}

// InstanceOpenFiles is every instance's open-files limit (nofile, soft and hard), lowered to
// the host's own hard limit where that is less: a container without CAP_SYS_RESOURCE cannot be
// given more than its engine has.
const InstanceOpenFiles = 65536

var openFilesOnce = sync.OnceValue(func() int64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Max > 0 && lim.Max < InstanceOpenFiles {
		return int64(lim.Max)
	}
	return InstanceOpenFiles
})

func instanceOpenFiles() int64 { return openFilesOnce() }

// instanceTmpfs are an instance's memory file systems: /tmp and, on a read-only root, each of
// its runtime's writable paths. They are memory, bounded (and charged to the app's memory
// limit, which bounds them all together): a runaway temp file fills the app's own allowance,
// not the node's disk. Mode 1777 lets the app's user write whatever uid it runs as.
func instanceTmpfs(rootFS RootFS, memoryMB int) map[string]string {
	opts := fmt.Sprintf("rw,nosuid,nodev,size=%dm,mode=1777", tmpSizeMB(memoryMB))
	mounts := map[string]string{"/tmp": opts}
	if rootFS.ReadOnly {
		for _, p := range rootFS.Writable {
			mounts[p] = opts
		}
	}
	return mounts
}

// tmpSizeMB is the size of an instance's /tmp: half its memory, at least 16 MiB, at most 1 GiB.
func tmpSizeMB(memoryMB int) int { return min(max(memoryMB/2, 16), 1024) }
