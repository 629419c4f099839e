package docker

import (
	"github.com/skypanel/skypanel/activities/node/buildlog"
	"github.com/skypanel/skypanel/activities/node/buildpack"
	"github.com/skypanel/skypanel/activities/node/dockerfilepolicy"

	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// Labels of images built by a buildpack (the others are in types.go).
const (
	LabelBuildpack = "skypanel.buildpack" // the buildpack's kind: node, python or php
	// LabelBase marks the runtime images apps are built FROM (scripts/base-images.sh), which
	// cleanup never removes; an app's image says "false" over the value it inherits.
	LabelBase = "skypanel.base"
)

// heartbeatEvery keeps long, silent steps (a RUN that prints nothing) from looking dead.
const heartbeatEvery = 5 * time.Second

// BuildImage builds in.ContextDir into in.ImageTag with the Engine's classic builder, streaming
// the build output to the deployment's log (source "build").
//
// The runtime decides the Dockerfile: the repository's own at its root for the dockerfile
// runtime (and for auto when the repository has one); otherwise the buildpack of the runtime's
// kind (or the detected one, for auto) generates one FROM the runtime's images, sent inside the
// build context next to the repository (see package buildpack), never written into it.
//
// A failing build (bad Dockerfile, failing RUN, missing file, a repository the buildpack cannot
// build) is the user's to fix: it returns a non-retryable BuildFailed error with a short reason.
func (a *Activities) BuildImage(ctx context.Context, in BuildImageInput) (BuildImageResult, error) {
	if err := a.ready(); err != nil {
		return BuildImageResult{}, err
	}
	if err := validateBuild(in); err != nil {
		return BuildImageResult{}, err
	}
	release := in.ReleaseID
	if release == "" {
		release = in.DeploymentID
	}
	logger := slog.With("app_id", in.AppID, "deployment_id", in.DeploymentID)
	logs := buildlog.NewWriter(a.Logs, in.DeploymentID, "build", activity.GetInfo(ctx).Attempt)
	defer logs.Flush(context.WithoutCancel(ctx))
	buildFailed := func(msg string) error {
		logs.Write(ctx, "ERROR: "+msg+"\n")
		return temporal.NewNonRetryableApplicationError(msg, ErrTypeBuildFailed, nil)
	}

	nodeSlots := a.BuildSlots
	if nodeSlots <= 0 {
		nodeSlots = defaultNodeBuildSlots()
	}
	stopWaitBeat := heartbeat(ctx, "waiting for a build slot")
	releaseSlot, err := a.builds.acquire(ctx, in.OrgID, nodeSlots, func(reason string) {
		msg := fmt.Sprintf("Waiting for a build slot: the node runs %d builds at once", nodeSlots)
		if reason == "organization" {
			msg = fmt.Sprintf("Waiting for a build slot: %d builds of this organization are running on the node", OrgBuildSlots)
		}
		logs.Write(ctx, msg+"\n")
		logger.InfoContext(ctx, "build waits for a slot", "org_id", in.OrgID, "reason", reason)
	})
	stopWaitBeat()
	if err != nil {
		return BuildImageResult{}, err
	}
	defer releaseSlot()

	byKind := make(map[buildpack.Kind][2]string, len(in.StackImages))
	for kind, images := range in.StackImages {
		byKind[buildpack.Kind(kind)] = [2]string{images.Build, images.Run}
	}
	buildEnv, err := a.openEnv(ctx, in.AppID, in.Env, true)
	if err != nil {
		return BuildImageResult{}, err
	}
	buildArgs := make(map[string]*string, len(buildEnv))
	argNames := make([]string, 0, len(buildEnv))
	for k, v := range buildEnv {
		buildArgs[k] = &v
		argNames = append(argNames, k)
	}
	sort.Strings(argNames)
	plan, err := buildpack.Prepare(in.ContextDir, buildpack.Options{
		Runtime: in.Runtime, BuildImage: in.BuildImage, RunImage: in.RunImage, ByKind: byKind, BuildArgs: argNames,
	})
	if err != nil {
		return BuildImageResult{}, buildFailed(err.Error())
	}
	labels := map[string]string{
		LabelManaged: "true",
		LabelApp:     in.AppID,
		LabelOrg:     in.OrgID,
		LabelRelease: release,
		// The node that built it, so a node (and the e2e suite's leftover check) finds what it made.
		LabelNode: a.NodeID,
		// An app image inherits the labels of the image it is built FROM; one built FROM a
		// runtime image (labelled as a base image, never removed) must not pass for one, or
		// cleanup would keep it forever.
		LabelBase: "false",
	}
	dockerfile := "Dockerfile"
	var layout contextLayout
	if plan == nil {
		// Built from the repository's own Dockerfile: no buildpack, whatever a FROM image of
		// the organization's says. The label decides the instance's root filesystem setting.
		labels[LabelBuildpack] = ""
		if err := checkDockerfile(in.ContextDir); err != nil {
			return BuildImageResult{}, buildFailed(err.Error())
		}
		if err := a.checkDockerfilePolicy(ctx, in, buildEnv); err != nil {
			var violation *dockerfilepolicy.Violation
			if errors.As(err, &violation) {
				return BuildImageResult{}, buildFailed(violation.Error())
			}
			return BuildImageResult{}, err
		}
	} else {
		for _, line := range plan.Log {
			logs.Write(ctx, line+"\n")
		}
		stopBeat := heartbeat(ctx, "pulling")
		err := a.ensureBaseImages(ctx, plan, logs)
		stopBeat()
		if err != nil {
			var missing *buildError
			if errors.As(err, &missing) {
				return BuildImageResult{}, buildFailed(missing.msg)
			}
			return BuildImageResult{}, err
		}
		dockerfile = buildpack.ContextDockerfile
		layout = contextLayout{
			prefix:   buildpack.ContextAppDir,
			extra:    map[string][]byte{buildpack.ContextDockerfile: []byte(plan.Dockerfile)},
			exclude:  plan.Exclude,
			readable: true,
		}
		labels[LabelBuildpack] = string(plan.Kind)
	}

	stopBeat := heartbeat(ctx, "building")
	defer stopBeat()

	// RUN steps run on the organization's own network, where the node's egress rules apply
	// (worker-node/firewall) and Docker keeps other organizations out; never on the default
	// bridge. The network stays for the whole build: its removal waits for the lock.
	orgLock := a.networks.lock(in.OrgID)
	orgLock.RLock()
	defer orgLock.RUnlock()
	buildNetwork, err := a.ensureOrgNetwork(ctx, in.OrgID)
	if err != nil {
		return BuildImageResult{}, err
	}

	// The build's limits: memory and CPU per RUN container, processes for the whole build
	// (its cgroup), and time. A limit that stops the build is named in its failure.
	limits := a.buildLimits(in)
	buildCtx, stopBuild := context.WithCancelCause(ctx)
	defer stopBuild(nil)
	buildCtx, cancelTimeout := context.WithTimeoutCause(buildCtx, limits.timeout, errBuildTimeLimit)
	defer cancelTimeout()
	cgroupParent := ""
	cg, err := a.newBuildCgroup(ctx, in.DeploymentID, limits.pids)
	if err != nil {
		return BuildImageResult{}, err
	}
	if cg != nil {
		cgroupParent = cg.parent
		defer cg.remove(context.WithoutCancel(ctx))
		defer cg.watch(buildCtx, stopBuild)()
	}
	disk := newBuildDisk(limits.diskMB)
	defer disk.watch(buildCtx, engineDisk{a}, stopBuild)()
	limitFailure := func() error {
		switch cause := context.Cause(buildCtx); {
		case ctx.Err() != nil:
			return nil // the activity itself ends: not a limit
		case errors.Is(cause, errBuildPidsLimit):
			return buildFailed(fmt.Sprintf("the build reached its process limit of %d processes (a fork bomb, or a step that starts too many processes)", limits.pids))
		case errors.Is(cause, errBuildTimeLimit):
			return buildFailed(fmt.Sprintf("the build ran longer than its time limit of %s", limits.timeout))
		case errors.Is(cause, errBuildDiskLimit):
			return buildFailed(diskLimitMessage(limits.diskMB))
		}
		return nil
	}

	pr := tarContext(buildCtx, in.ContextDir, layout, disk, func() { stopBuild(errBuildDiskLimit) })
	defer pr.Close()
	logger.InfoContext(ctx, "build image", "image", in.ImageTag, "buildpack", labels[LabelBuildpack],
		"memory_mb", limits.memoryMB, "cpu_millis", limits.cpuMillis, "pids", limits.pids, "timeout", limits.timeout, "disk_mb", limits.diskMB)
	logs.Write(ctx, fmt.Sprintf("Building image %s (limits: %d MiB memory, %.2g CPU, %d processes, %s, %d MiB disk)\n",
		in.ImageTag, limits.memoryMB, float64(limits.cpuMillis)/1000, limits.pids, limits.timeout, limits.diskMB))
	resp, err := a.Client.ImageBuild(buildCtx, pr, build.ImageBuildOptions{
		Tags:        []string{in.ImageTag},
		Dockerfile:  dockerfile,
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
		Labels:      labels,
		BuildArgs:   buildArgs,
		NetworkMode: buildNetwork,
		// No swap: past its memory a step is killed, not slowed for every tenant.
		Memory:       int64(limits.memoryMB) << 20,
		MemorySwap:   int64(limits.memoryMB) << 20,
		CPUPeriod:    100000,
		CPUQuota:     int64(limits.cpuMillis) * 100,
		CgroupParent: cgroupParent,
	})
	clear(buildArgs)
	if err != nil {
		if err := limitFailure(); err != nil {
			return BuildImageResult{}, err
		}
		if ctx.Err() != nil {
			return BuildImageResult{}, ctx.Err()
		}
		if client.IsErrConnectionFailed(err) {
			return BuildImageResult{}, fmt.Errorf("build image %s: %w", in.ImageTag, err)
		}
		// The Engine refused the build before running it (for example a Dockerfile it cannot
		// parse): the user's to fix.
		msg := engineMessage(err)
		logs.Write(ctx, "ERROR: "+msg+"\n")
		return BuildImageResult{}, temporal.NewNonRetryableApplicationError("docker build failed: "+msg, ErrTypeBuildFailed, nil)
	}
	defer resp.Body.Close()

	var output stepOutput
	imageID, err := readBuildStream(buildCtx, resp.Body, logs, &output, disk)
	if err != nil {
		if err := limitFailure(); err != nil {
			return BuildImageResult{}, err
		}
		var buildErr *buildError
		if errors.As(err, &buildErr) && strings.Contains(buildErr.msg, "non-zero code: 137") {
			// SIGKILL: with no swap, what kills a step is the memory limit.
			return BuildImageResult{}, buildFailed(fmt.Sprintf("a build step was killed (exit code 137): it used more than the build's memory limit of %d MiB", limits.memoryMB))
		}
		if errors.As(err, &buildErr) {
			logger.InfoContext(ctx, "build failed", "image", in.ImageTag, "err", buildErr.msg)
			reason := "docker build failed: " + buildErr.msg
			if plan != nil {
				reason = plan.Explain(buildErr.msg, output.Lines())
				logs.Write(ctx, "Build failed: "+reason+"\n")
			}
			return BuildImageResult{}, temporal.NewNonRetryableApplicationError(reason, ErrTypeBuildFailed, nil)
		}
		if ctx.Err() != nil {
			return BuildImageResult{}, ctx.Err()
		}
		return BuildImageResult{}, fmt.Errorf("build image %s: read build output: %w", in.ImageTag, err)
	}
	// A step quicker than the disk watcher's check is caught here; the image is not kept.
	if disk.over(ctx, engineDisk{a}) {
		if _, err := a.Client.ImageRemove(context.WithoutCancel(ctx), in.ImageTag, image.RemoveOptions{PruneChildren: true}); err != nil && !errdefs.IsNotFound(err) {
			logger.WarnContext(ctx, "remove an image over the build disk limit", "image", in.ImageTag, "err", err)
		}
		return BuildImageResult{}, buildFailed(diskLimitMessage(limits.diskMB))
	}
	if imageID == "" {
		inspect, err := a.Client.ImageInspect(ctx, in.ImageTag)
		if err != nil {
			return BuildImageResult{}, fmt.Errorf("inspect built image %s: %w", in.ImageTag, err)
		}
		imageID = inspect.ID
	}
	logs.Write(ctx, fmt.Sprintf("Built image %s (%s)\n", in.ImageTag, imageID))
	logger.InfoContext(ctx, "built image", "image", in.ImageTag, "image_id", imageID)
	if !in.Push {
		return BuildImageResult{ImageID: imageID}, nil
	}
	started := time.Now()
	logs.Write(ctx, "Pushing the image to the platform registry\n")
	ref, err := a.pushImage(ctx, in.ImageTag)
	if err != nil {
		if ctx.Err() != nil {
			return BuildImageResult{}, ctx.Err()
		}
		logs.Write(ctx, "ERROR: "+err.Error()+"\n")
		return BuildImageResult{}, err
	}
	took := time.Since(started)
	logs.Write(ctx, fmt.Sprintf("Pushed %s in %s\n", ref, took.Round(time.Millisecond)))
	logger.InfoContext(ctx, "pushed image", "image", ref, "took", took.Round(time.Millisecond))
	return BuildImageResult{ImageID: imageID, ImageRef: ref, PushMillis: took.Milliseconds()}, nil
}

// ensureBaseImages makes sure the images a buildpack builds FROM are on the node, pulling a
// missing one (production nodes reach a registry). Where none is reachable, the images are
// built locally (scripts/base-images.sh) and a missing one is reported as such (a *buildError),
// not as the Engine's pull error deep in the build.
func (a *Activities) ensureBaseImages(ctx context.Context, plan *buildpack.Plan, logs *buildlog.Writer) error {
	for _, img := range plan.Images() {
		_, err := a.Client.ImageInspect(ctx, img)
		switch {
		case err == nil:
			continue
		case !errdefs.IsNotFound(err):
			return fmt.Errorf("inspect image %s: %w", img, err)
		}
		logs.Write(ctx, fmt.Sprintf("Pulling %s (not on this node yet)\n", img))
		if err := a.pullImage(ctx, img); err != nil {
			var pullErr *buildError
			if !errors.As(err, &pullErr) {
				return err
			}
			return &buildError{msg: fmt.Sprintf("the %s runtime's image %s is not on this node and could not be pulled (%s): build it with scripts/base-images.sh (make base-images)",
				plan.Kind.Title(), img, shorten(pullErr.msg, 200))}
		}
	}
	return nil
}

// pullImage pulls ref. What the Engine or the registry refuses is a *buildError; a failure to
// reach the Engine is returned as is (retryable).
func (a *Activities) pullImage(ctx context.Context, ref string) error {
	rc, err := a.Client.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if client.IsErrConnectionFailed(err) {
			return fmt.Errorf("pull %s: %w", ref, err)
		}
		return &buildError{msg: engineMessage(err)}
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var m buildMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("pull %s: %w", ref, err)
		}
		activity.RecordHeartbeat(ctx, "pulling "+ref)
		if m.Error != "" || m.ErrorDetail != nil {
			msg := m.Error
			if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
				msg = m.ErrorDetail.Message
			}
			return &buildError{msg: strings.TrimSpace(msg)}
		}
	}
}

func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func validateBuild(in BuildImageInput) error {
	if err := checkID("app id", in.AppID); err != nil {
		return err
	}
	if err := checkID("deployment id", in.DeploymentID); err != nil {
		return err
	}
	if err := checkID("organization id", in.OrgID); err != nil {
		return err
	}
	if in.ReleaseID != "" {
		if err := checkID("release id", in.ReleaseID); err != nil {
			return err
		}
	}
	if !validImageRef(in.ImageTag, false) || strings.Contains(in.ImageTag, "@") {
		return invalidInput("invalid image tag %q", in.ImageTag)
	}
	if !filepath.IsAbs(in.ContextDir) {
		return invalidInput("the build context %q is not an absolute path", in.ContextDir)
	}
	return validateSealedVars(in.Env)
}

// maxDockerfileBytes bounds the Dockerfile the policy reads.
const maxDockerfileBytes = 1 << 20

// checkDockerfilePolicy applies the platform's Dockerfile rules (package dockerfilepolicy) to
// the repository's Dockerfile: ADD fetches no URL (the classic builder would fetch it from
// dockerd's own network namespace, the host's loopback), and FROM or COPY --from names no
// other organization's app image.
func (a *Activities) checkDockerfilePolicy(ctx context.Context, in BuildImageInput, buildArgs map[string]string) error {
	f, err := os.Open(filepath.Join(in.ContextDir, "Dockerfile"))
	if err != nil {
		return fmt.Errorf("read Dockerfile: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxDockerfileBytes+1))
	if err != nil {
		return fmt.Errorf("read Dockerfile: %w", err)
	}
	if len(raw) > maxDockerfileBytes {
		return &dockerfilepolicy.Violation{Reason: "the Dockerfile is larger than 1 MiB"}
	}
	return dockerfilepolicy.Check(ctx, dockerfilepolicy.Input{
		Dockerfile: raw, OrgID: in.OrgID, AppID: in.AppID, BuildArgs: buildArgs,
		Lookup: func(ctx context.Context, ref string) (dockerfilepolicy.Image, bool, error) {
			info, err := a.Client.ImageInspect(ctx, ref)
			if errdefs.IsNotFound(err) {
				return dockerfilepolicy.Image{}, false, nil
			}
			if err != nil {
				return dockerfilepolicy.Image{}, false, fmt.Errorf("inspect image %s: %w", ref, err)
			}
			img := dockerfilepolicy.Image{}
			if info.Config != nil {
				img.Labels, img.OnBuild = info.Config.Labels, info.Config.OnBuild
			}
			return img, true, nil
		},
	})
}

// checkDockerfile explains a missing Dockerfile in the user's words before Docker does in its own.
func checkDockerfile(dir string) error {
	fi, err := os.Lstat(filepath.Join(dir, "Dockerfile"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errors.New("the repository has no Dockerfile at its root")
	case err != nil:
		return fmt.Errorf("read Dockerfile: %w", err)
	case !fi.Mode().IsRegular():
		return errors.New("the repository's Dockerfile is not a regular file")
	}
	return nil
}

// buildError is an error the build itself reported (a failing step), as opposed to a failure to
// talk to the Engine.
type buildError struct{ msg string }

func (e *buildError) Error() string { return e.msg }

// buildMessage is one JSON object of the Engine's build output stream.
type buildMessage struct {
	Stream      string `json:"stream"`
	Status      string `json:"status"`
	Progress    string `json:"progress"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
	Aux json.RawMessage `json:"aux"`
}

// readBuildStream copies the build's output to the log (and to out, which keeps the current
// step's output; out may be nil) and returns the image id the Engine reports at the end, or a
// *buildError when the build failed.
//
// disk (may be nil) follows the steps' containers and images for the build's disk limit.
func readBuildStream(ctx context.Context, r io.Reader, logs *buildlog.Writer, out *stepOutput, disk *buildDisk) (string, error) {
	dec := json.NewDecoder(r)
	var imageID string
	for {
		var m buildMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return imageID, nil
			}
			return "", err
		}
		activity.RecordHeartbeat(ctx, "building")
		switch {
		case m.Error != "" || m.ErrorDetail != nil:
			msg := m.Error
			if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
				msg = m.ErrorDetail.Message
			}
			msg = strings.TrimSpace(msg)
			logs.Write(ctx, "ERROR: "+msg+"\n")
			return "", &buildError{msg: msg}
		case m.Stream != "":
			logs.Write(ctx, m.Stream)
			out.write(m.Stream)
			disk.observe(m.Stream)
		case m.Status != "" && m.Progress == "":
			logs.Write(ctx, m.Status+"\n")
		case len(m.Aux) > 0:
			var aux struct{ ID string }
			if json.Unmarshal(m.Aux, &aux) == nil && aux.ID != "" {
				imageID = aux.ID
			}
		}
	}
}

// engineMessage is the Engine's own words for a refused request, without the client's prefix.
func engineMessage(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "Error response from daemon: "); i >= 0 {
		msg = msg[i+len("Error response from daemon: "):]
	}
	return strings.TrimSpace(msg)
}

// heartbeat records a heartbeat every heartbeatEvery until stop is called.
func heartbeat(ctx context.Context, details string) (stop func()) {
	ticker := time.NewTicker(heartbeatEvery)
	quit := make(chan struct{})
	go func() {
		for {
			select {
			case <-ticker.C:
				activity.RecordHeartbeat(ctx, details)
			case <-quit:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { ticker.Stop(); close(quit) }
}

// stepOutput keeps the last lines of the output of the build's current step (the classic
// builder starts each with "Step N/M : "), which a buildpack reads to explain a failure.
type stepOutput struct {
	lines   []string
	partial string
}

const (
	maxStepLines   = 200
	maxPartialLine = 4 << 10
)

func (s *stepOutput) write(text string) {
	if s == nil {
		return
	}
	parts := strings.Split(s.partial+text, "\n")
	s.partial = parts[len(parts)-1]
	if len(s.partial) > maxPartialLine {
		s.partial = s.partial[len(s.partial)-maxPartialLine:]
	}
	for _, line := range parts[:len(parts)-1] {
		line = strings.TrimRight(line, "\r")
		if strings.HasPrefix(line, "Step ") && strings.Contains(line, " : ") {
			s.lines = s.lines[:0]
			continue
		}
		s.lines = append(s.lines, line)
		if len(s.lines) > 2*maxStepLines {
			s.lines = append(s.lines[:0], s.lines[len(s.lines)-maxStepLines:]...)
		}
	}
}

// Lines are the current step's last lines of output.
func (s *stepOutput) Lines() []string {
	lines := s.lines
	if len(lines) > maxStepLines {
		lines = lines[len(lines)-maxStepLines:]
	}
	out := append([]string(nil), lines...)
	if strings.TrimSpace(s.partial) != "" {
		out = append(out, s.partial)
	}
	return out
}

// contextLayout shapes the build context of a buildpack build; the zero value is the
// repository as it is, at the root of the context (a Dockerfile build).
type contextLayout struct {
	// prefix puts the repository under this directory of the context.
	prefix string
	// extra are generated files (path in the context → content), written before the repository.
	extra map[string][]byte
	// exclude are repository paths (slash-separated) left out, besides .git.
	exclude []string
	// readable makes every file readable, and every directory searchable, by all: the app runs
	// as uid 1000 while COPY gives the files to root.
	readable bool
}

// tarContext streams dir as a tar archive laid out as l says. The repository's .git directory
// is left out (it is not part of the app and can be large); symbolic links are archived as
// links, never followed, so a link in a repository cannot pull a file of the node into the image.
//
// The bytes sent count towards the build's disk (nil: no limit); past it, over is called and
// the archive ends with an error.
func tarContext(ctx context.Context, dir string, l contextLayout, disk *buildDisk, over func()) *io.PipeReader {
	pr, pw := io.Pipe()
	exclude := map[string]bool{".git": true}
	for _, e := range l.exclude {
		exclude[strings.Trim(e, "/")] = true
	}
	go func() {
		tw := tar.NewWriter(&countingWriter{w: pw, disk: disk, over: over})
		err := writeExtra(tw, l.extra)
		if err == nil && l.prefix != "" {
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: l.prefix + "/", Mode: 0o755, ModTime: time.Unix(0, 0)})
		}
		if err == nil {
			err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				rel, err := filepath.Rel(dir, path)
				if err != nil {
					return err
				}
				if rel == "." {
					return nil
				}
				rel = filepath.ToSlash(rel)
				if exclude[rel] {
					if d.IsDir() {
						return filepath.SkipDir
					}
					return nil
				}
				name := rel
				if l.prefix != "" {
					name = l.prefix + "/" + rel
				}
				return addToTar(tw, path, name, d, l.readable)
			})
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// writeExtra writes the generated files, sorted, each after its parent directories.
func writeExtra(tw *tar.Writer, files map[string][]byte) error {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	dirs := map[string]bool{}
	for _, name := range names {
		parts := strings.Split(name, "/")
		for i := 1; i < len(parts); i++ {
			d := strings.Join(parts[:i], "/") + "/"
			if !dirs[d] {
				dirs[d] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
					return err
				}
			}
		}
		content := files[name]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		if _, err := tw.Write(content); err != nil {
			return err
		}
	}
	return nil
}

func addToTar(tw *tar.Writer, path, name string, d fs.DirEntry, readable bool) error {
	info, err := d.Info()
	if err != nil {
		return err
	}
	var link string
	switch {
	case info.Mode()&fs.ModeSymlink != 0:
		if link, err = os.Readlink(path); err != nil {
			return err
		}
	case info.IsDir(), info.Mode().IsRegular():
	default:
		return nil // sockets, devices and pipes have no place in a build context
	}
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return err
	}
	hdr.Name = name
	if info.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	if readable {
		hdr.Mode = readableMode(hdr.Mode, info.IsDir())
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyN(tw, f, info.Size())
	return err
}

// readableMode gives group and others read access (and search on directories, and execute
// where the owner has it), never write.
func readableMode(mode int64, dir bool) int64 {
	switch {
	case dir:
		return mode | 0o555
	case mode&0o100 != 0:
		return mode | 0o555
	}
	return mode | 0o444
}
