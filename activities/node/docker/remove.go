package docker

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"go.temporal.io/sdk/activity"
)

// DefaultStopGrace is how long an instance may take to finish its requests and exit after
// SIGTERM before it is killed.
const DefaultStopGrace = 10 * time.Second

// RemoveInstances stops (SIGTERM, then SIGKILL after the grace period) and removes the app's
// containers: all of them except those in Keep or, when Names is set, only those. Containers
// already gone are fine, so a retry finishes what an earlier attempt started.
func (a *Activities) RemoveInstances(ctx context.Context, in RemoveInstancesInput) (RemoveInstancesResult, error) {
	if err := a.ready(); err != nil {
		return RemoveInstancesResult{}, err
	}
	if err := checkID("app id", in.AppID); err != nil {
		return RemoveInstancesResult{}, err
	}
	grace := in.GracePeriod
	if grace <= 0 {
		grace = DefaultStopGrace
	}
	list, err := a.Client.ContainerList(ctx, container.ListOptions{All: true, Filters: a.ownFilter(
		filters.Arg("label", LabelApp+"="+in.AppID),
	)})
	if err != nil {
		return RemoveInstancesResult{}, fmt.Errorf("list containers of app %s: %w", in.AppID, err)
	}
	targets := selectInstances(list, in)

	stopBeat := heartbeat(ctx, "removing instances")
	defer stopBeat()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		removed []string
		errs    []string
	)
	for _, c := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.removeContainer(ctx, c.ID, grace); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("%s: %v", c.name, err))
				mu.Unlock()
				return
			}
			slog.InfoContext(ctx, "removed container", "app_id", in.AppID, "container", c.name, "container_id", c.ID)
			mu.Lock()
			removed = append(removed, c.name)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Strings(removed)
	// An organization whose last container on this node just left gives its network back.
	orgs := orgsOf(targets)
	if in.OrgID != "" && !slices.Contains(orgs, in.OrgID) {
		orgs = append(orgs, in.OrgID)
	}
	a.releaseOrgNetworks(ctx, orgs)
	if len(errs) > 0 {
		return RemoveInstancesResult{Removed: removed}, fmt.Errorf("remove containers of app %s: %s", in.AppID, strings.Join(errs, "; "))
	}
	return RemoveInstancesResult{Removed: removed}, nil
}

type namedContainer struct{ ID, name, orgID string }

func orgsOf(list []namedContainer) []string {
	var orgs []string
	for _, c := range list {
		if c.orgID != "" && !slices.Contains(orgs, c.orgID) {
			orgs = append(orgs, c.orgID)
		}
	}
	return orgs
}

func selectInstances(list []container.Summary, in RemoveInstancesInput) []namedContainer {
	set := func(names []string) map[string]bool {
		m := make(map[string]bool, len(names))
		for _, n := range names {
			m[strings.TrimPrefix(n, "/")] = true
		}
		return m
	}
	keep, only := set(in.Keep), set(in.Names)
	var out []namedContainer
	for _, c := range list {
		name := c.ID
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		matches := func(m map[string]bool) bool { return m[name] || m[c.ID] }
		if len(in.Names) > 0 {
			if matches(only) {
				out = append(out, namedContainer{c.ID, name, c.Labels[LabelOrg]})
			}
			continue
		}
		if !matches(keep) {
			out = append(out, namedContainer{c.ID, name, c.Labels[LabelOrg]})
		}
	}
	return out
}

func (a *Activities) removeContainer(ctx context.Context, id string, grace time.Duration) error {
	secs := int(grace.Round(time.Second) / time.Second)
	if err := a.Client.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("stop: %w", err)
	}
	activity.RecordHeartbeat(ctx, "removing instances")
	err := a.Client.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !errdefs.IsNotFound(err) && !strings.Contains(err.Error(), "already in progress") {
		return fmt.Errorf("remove: %w", err)
	}
	return nil
}

// RemoveAppImages removes every image labelled with the app (on delete). Run it after
// RemoveInstances: an image a container still uses cannot be removed.
func (a *Activities) RemoveAppImages(ctx context.Context, in RemoveAppImagesInput) error {
	if err := a.ready(); err != nil {
		return err
	}
	if err := checkID("app id", in.AppID); err != nil {
		return err
	}
	return a.removeAppImages(ctx, in.AppID, func() { activity.RecordHeartbeat(ctx, "removing images") })
}

// removeAppImages removes this node's images of the app, calling beat before each (a heartbeat
// inside an activity; nil outside one, as in housekeeping).
func (a *Activities) removeAppImages(ctx context.Context, appID string, beat func()) error {
	images, err := a.Client.ImageList(ctx, image.ListOptions{Filters: a.ownFilter(
		filters.Arg("label", LabelApp+"="+appID),
	)})
	if err != nil {
		return fmt.Errorf("list images of app %s: %w", appID, err)
	}
	for _, img := range images {
		if beat != nil {
			beat()
		}
		_, err := a.Client.ImageRemove(ctx, img.ID, image.RemoveOptions{Force: true, PruneChildren: true})
		if err != nil && strings.Contains(err.Error(), "dependent child images") {
			// Another app of the organization was built FROM this image: its layers stay for
			// that image, but this app's names go. The untagged image goes with its last child.
			if err := a.untagImage(ctx, img); err != nil {
				return fmt.Errorf("untag image %s of app %s: %w", img.ID, appID, err)
			}
			slog.InfoContext(ctx, "untagged image another image is built on", "app_id", appID, "image_id", img.ID, "tags", img.RepoTags)
			continue
		}
		if err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("remove image %s of app %s: %w", img.ID, appID, err)
		}
		slog.InfoContext(ctx, "removed image", "app_id", appID, "image_id", img.ID, "tags", img.RepoTags)
	}
	return nil
}

// untagImage removes every name of img (tags and digests), leaving its layers.
func (a *Activities) untagImage(ctx context.Context, img image.Summary) error {
	for _, ref := range append(append([]string(nil), img.RepoTags...), img.RepoDigests...) {
		if ref == "<none>:<none>" || ref == "<none>@<none>" {
			continue
		}
		if _, err := a.Client.ImageRemove(ctx, ref, image.RemoveOptions{}); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// RemoveImages removes the named images of an app (old releases past the retention count).
// An image that is not the app's, or is still used by a container, is left alone; a missing one
// is fine.
func (a *Activities) RemoveImages(ctx context.Context, in RemoveImagesInput) error {
	if err := a.ready(); err != nil {
		return err
	}
	if err := checkID("app id", in.AppID); err != nil {
		return err
	}
	for _, ref := range in.Images {
		activity.RecordHeartbeat(ctx, "removing "+ref)
		info, err := a.Client.ImageInspect(ctx, ref)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("inspect image %s: %w", ref, err)
		}
		if info.Config == nil || info.Config.Labels[LabelApp] != in.AppID {
			slog.WarnContext(ctx, "not removing an image that is not the app's", "app_id", in.AppID, "image", ref)
			continue
		}
		if _, err := a.Client.ImageRemove(ctx, ref, image.RemoveOptions{PruneChildren: true}); err != nil {
			if errdefs.IsNotFound(err) || errdefs.IsConflict(err) {
				slog.WarnContext(ctx, "image not removed", "app_id", in.AppID, "image", ref, "err", err)
				continue
			}
			return fmt.Errorf("remove image %s of app %s: %w", ref, in.AppID, err)
		}
		slog.InfoContext(ctx, "removed old release image", "app_id", in.AppID, "image", ref)
	}
	return nil
}

// ImagePresent says whether the node still holds the app's image ref: a heal starts the kept
// image, or rebuilds it from its commit when someone removed it (a prune, a wiped engine). An
// image by that name that is not the app's counts as absent, so it is never started for it.
func (a *Activities) ImagePresent(ctx context.Context, in ImagePresentInput) (bool, error) {
	if err := a.ready(); err != nil {
		return false, err
	}
	if err := checkID("app id", in.AppID); err != nil {
		return false, err
	}
	info, err := a.Client.ImageInspect(ctx, in.Image)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("inspect image %s: %w", in.Image, err)
	}
	return info.Config != nil && info.Config.Labels[LabelApp] == in.AppID, nil
}
