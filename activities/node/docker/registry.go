package docker

// The platform registry, seen from a node: a build pushes its image there and answers the
// image's digest reference; an instance whose image the node does not hold is pulled from
// there by that digest first. Any node can then run any release (a rollback, a heal, a move).

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/errdefs"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// ErrTypeImageNotInRegistry: the registry does not hold the image asked for.
const ErrTypeImageNotInRegistry = "ImageNotInRegistry"

// noAuth is the X-Registry-Auth header of an anonymous push or pull.
var noAuth = base64.URLEncoding.EncodeToString([]byte("{}"))

// RegistryCredential is the X-Registry-Auth value of a node's credential at the registry gate
// (apiserver/registrygate): its node id and node token. The Engine sends it only to the
// registry that asks for it.
func RegistryCredential(nodeID, nodeToken string) string {
	raw, _ := json.Marshal(registry.AuthConfig{Username: nodeID, Password: nodeToken})
	return base64.URLEncoding.EncodeToString(raw)
}

func (a *Activities) registryAuth() string {
	if a.RegistryAuth == "" {
		return noAuth
	}
	return a.RegistryAuth
}

// validImageRef accepts a Docker image reference (name, tag, digest, registry host and port)
// or an image id, and nothing else: no value reaches the Engine that it would read otherwise.
func validImageRef(ref string, allowID bool) bool {
	if allowID && imageIDPattern.MatchString(ref) {
		return true
	}
	if len(ref) > 512 || strings.HasPrefix(ref, "-") {
		return false
	}
	_, err := reference.ParseNormalizedNamed(ref)
	return err == nil
}

// fromRegistry says whether ref names a registry of its own (host or host:port), as the
// platform's images do; official short names ("node:20") do not.
func fromRegistry(ref string) bool {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return false
	}
	domain := reference.Domain(named)
	return domain != "docker.io" && strings.HasPrefix(ref, domain+"/")
}

// jsonMessage is one line of the Engine's push and pull progress streams.
type jsonMessage struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Aux    *struct {
		Digest string `json:"Digest"`
		Size   int64  `json:"Size"`
	} `json:"aux"`
}

// readStream drains a push or pull stream, heartbeating, and returns its aux digest (a push's)
// or the error it ended with.
func readStream(ctx context.Context, rc io.Reader, what string) (string, error) {
	dec := json.NewDecoder(rc)
	var digest string
	for {
		var m jsonMessage
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return digest, nil
		} else if err != nil {
			return digest, fmt.Errorf("%s: read progress: %w", what, err)
		}
		activity.RecordHeartbeat(ctx, what)
		if m.Error != "" {
			return digest, fmt.Errorf("%s: %s", what, m.Error)
		}
		if m.Aux != nil && m.Aux.Digest != "" {
			digest = m.Aux.Digest
		}
	}
}

// pushImage pushes tag to its registry and returns the image's digest reference
// (host/repository@sha256:…), the exact content any node pulls later.
func (a *Activities) pushImage(ctx context.Context, tag string) (string, error) {
	named, err := reference.ParseNormalizedNamed(tag)
	if err != nil || !fromRegistry(tag) {
		return "", invalidInput("cannot push %q: not an image of a registry", tag)
	}
	rc, err := a.Client.ImagePush(ctx, tag, image.PushOptions{RegistryAuth: a.registryAuth()})
	if err != nil {
		return "", fmt.Errorf("push %s: %w", tag, err)
	}
	defer rc.Close()
	digest, err := readStream(ctx, rc, "push "+tag)
	if err != nil {
		return "", err
	}
	if digest == "" {
		return "", fmt.Errorf("push %s: the registry answered no digest", tag)
	}
	return reference.TrimNamed(named).String() + "@" + digest, nil
}

// ensureImage makes sure the node holds ref, pulling it from its registry when it does not.
// An image of no registry (built here before the platform had one) must be here already.
func (a *Activities) ensureImage(ctx context.Context, ref string) error {
	if _, err := a.Client.ImageInspect(ctx, ref); err == nil {
		return nil
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("inspect image %s: %w", ref, err)
	}
	if !fromRegistry(ref) {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("image %s is not on this node and comes from no registry", ref), ErrTypeImageNotInRegistry, nil)
	}
	started := time.Now()
	rc, err := a.Client.ImagePull(ctx, ref, image.PullOptions{RegistryAuth: a.registryAuth()})
	if err == nil {
		defer rc.Close()
		_, err = readStream(ctx, rc, "pull "+ref)
	}
	if err != nil {
		if errdefs.IsNotFound(err) || strings.Contains(err.Error(), "manifest unknown") || strings.Contains(err.Error(), "not found") {
			return temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("image %s is not on this node and the registry does not hold it: %v", ref, err), ErrTypeImageNotInRegistry, nil)
		}
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	slog.InfoContext(ctx, "pulled image", "image", ref, "took", time.Since(started).Round(time.Millisecond))
	return nil
}

// PullImageInput names an app's release image a heal wants from the registry.
type PullImageInput struct {
	AppID string
	Image string
}

// PullImage fetches the app's image from the platform registry by its digest reference. It
// answers false, without error, when the registry does not hold it (or the image is of no
// registry): the heal then rebuilds it.
func (a *Activities) PullImage(ctx context.Context, in PullImageInput) (bool, error) {
	if err := a.ready(); err != nil {
		return false, err
	}
	if err := checkID("app id", in.AppID); err != nil {
		return false, err
	}
	if !validImageRef(in.Image, false) {
		return false, invalidInput("invalid image %q", in.Image)
	}
	err := a.ensureImage(ctx, in.Image)
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == ErrTypeImageNotInRegistry {
		slog.InfoContext(ctx, "image not in the registry", "app_id", in.AppID, "image", in.Image, "err", err)
		return false, nil
	}
	return err == nil, err
}
