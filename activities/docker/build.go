package docker

import (
	"github.com/skypanel/skypanel/activities/buildlog"

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
	"strings"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// heartbeatEvery keeps long, silent steps (a RUN that prints nothing) from looking dead.
const heartbeatEvery = 5 * time.Second

// BuildImage builds the Dockerfile at the root of in.ContextDir into in.ImageTag with the
// Engine's classic builder, streaming the build output to the deployment's log (source "build").
// A failing build (bad Dockerfile, failing RUN, missing file) is the user's to fix: it returns a
// non-retryable BuildFailed error carrying Docker's message.
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

	if err := checkDockerfile(in.ContextDir); err != nil {
		logs.Write(ctx, "ERROR: "+err.Error()+"\n")
		return BuildImageResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBuildFailed, nil)
	}

	stopBeat := heartbeat(ctx, "building")
	defer stopBeat()

	pr := tarContext(ctx, in.ContextDir)
	defer pr.Close()
	logger.InfoContext(ctx, "build image", "image", in.ImageTag)
	logs.Write(ctx, fmt.Sprintf("Building image %s\n", in.ImageTag))
	resp, err := a.Client.ImageBuild(ctx, pr, build.ImageBuildOptions{
		Tags:        []string{in.ImageTag},
		Dockerfile:  "Dockerfile",
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
		Labels: map[string]string{
			LabelManaged: "true",
			LabelApp:     in.AppID,
			LabelRelease: release,
		},
	})
	if err != nil {
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

	imageID, err := readBuildStream(ctx, resp.Body, logs)
	if err != nil {
		var buildErr *buildError
		if errors.As(err, &buildErr) {
			logger.InfoContext(ctx, "build failed", "image", in.ImageTag, "err", buildErr.msg)
			return BuildImageResult{}, temporal.NewNonRetryableApplicationError("docker build failed: "+buildErr.msg, ErrTypeBuildFailed, nil)
		}
		if ctx.Err() != nil {
			return BuildImageResult{}, ctx.Err()
		}
		return BuildImageResult{}, fmt.Errorf("build image %s: read build output: %w", in.ImageTag, err)
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
	return BuildImageResult{ImageID: imageID}, nil
}

func validateBuild(in BuildImageInput) error {
	if err := checkID("app id", in.AppID); err != nil {
		return err
	}
	if err := checkID("deployment id", in.DeploymentID); err != nil {
		return err
	}
	if in.ReleaseID != "" {
		if err := checkID("release id", in.ReleaseID); err != nil {
			return err
		}
	}
	if !imageRefPattern.MatchString(in.ImageTag) {
		return invalidInput("invalid image tag %q", in.ImageTag)
	}
	if !filepath.IsAbs(in.ContextDir) {
		return invalidInput("the build context %q is not an absolute path", in.ContextDir)
	}
	return nil
}

// checkDockerfile explains a missing Dockerfile in the user's words before Docker does in its own.
func checkDockerfile(dir string) error {
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return fmt.Errorf("the build context %s does not exist on this node", dir)
	}
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

// readBuildStream copies the build's output to the log and returns the image id the Engine
// reports at the end, or a *buildError when the build failed.
func readBuildStream(ctx context.Context, r io.Reader, logs *buildlog.Writer) (string, error) {
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

// tarContext streams dir as a tar archive. The repository's .git directory is left out (it is
// not part of the app and can be large); symbolic links are archived as links, never followed,
// so a link in a repository cannot pull a file of the node into the image.
func tarContext(ctx context.Context, dir string) *io.PipeReader {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
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
			if rel == ".git" && d.IsDir() {
				return filepath.SkipDir
			}
			return addToTar(tw, path, filepath.ToSlash(rel), d)
		})
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

func addToTar(tw *tar.Writer, path, name string, d fs.DirEntry) error {
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
