// Package registry is the control plane's side of the platform registry (the distribution
// registry's HTTP API v2): where an app's images go, and their removal when releases fall out
// of the retention count or the app is deleted. Nodes push and pull through their Docker
// Engine (activities/node/docker); only the control plane deletes.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Registry is the platform registry at Addr (host:port). The zero value is no registry: images
// then stay on the node that built them.
type Registry struct {
	Addr string
	// Scheme is http on loopback (`skypanel dev`), https elsewhere (docker-compose.yml).
	Scheme string
	// API, when set, is where the control plane talks to the registry itself
	// (http(s)://host:port): behind the gate nodes use (Addr), which only nodes pass.
	API  string
	HTTP *http.Client
}

// Enabled says whether the platform has a registry.
func (r Registry) Enabled() bool { return r.Addr != "" }

// Repository is where the app's images live: host:port/skypanel/app-<app id>.
func (r Registry) Repository(appID string) string {
	return r.Addr + "/" + repoPath(appID)
}

func repoPath(appID string) string { return "skypanel/app-" + appID }

func (r Registry) client() *http.Client {
	if r.HTTP != nil {
		return r.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second}
}

func (r Registry) base() string {
	if r.API != "" {
		return strings.TrimSuffix(r.API, "/") + "/v2/"
	}
	scheme := r.Scheme
	if scheme == "" {
		scheme = "http"
	}
	return scheme + "://" + r.Addr + "/v2/"
}

// manifestTypes are the manifests a Docker Engine pushes; asking for them gets the digest the
// push answered.
var manifestTypes = []string{
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.oci.image.index.v1+json",
}

// DeleteImage removes one image (host:port/repository@sha256:…) from the registry. An image of
// another registry, or of no registry (built before the platform had one), is left alone; one
// the registry does not hold is fine.
func (r Registry) DeleteImage(ctx context.Context, ref string) error {
	repo, digest, ok := r.split(ref)
	if !ok {
		return nil
	}
	return r.deleteManifest(ctx, repo, digest)
}

// split parses a digest reference of this registry into repository and digest.
func (r Registry) split(ref string) (repo, digest string, ok bool) {
	if !r.Enabled() || !strings.HasPrefix(ref, r.Addr+"/") {
		return "", "", false
	}
	rest := strings.TrimPrefix(ref, r.Addr+"/")
	repo, digest, found := strings.Cut(rest, "@")
	if !found || !strings.HasPrefix(digest, "sha256:") || len(digest) != len("sha256:")+64 {
		return "", "", false
	}
	return repo, digest, true
}

func (r Registry) deleteManifest(ctx context.Context, repo, digest string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, r.base()+repo+"/manifests/"+url.PathEscape(digest), nil)
	if err != nil {
		return err
	}
	resp, err := r.client().Do(req)
	if err != nil {
		return fmt.Errorf("delete %s@%s from the registry: %w", repo, digest, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusAccepted, http.StatusOK, http.StatusNotFound:
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Errorf("delete %s@%s from the registry: %s %s", repo, digest, resp.Status, strings.TrimSpace(string(body)))
}

// DeleteApp removes every image of the app from the registry (its deletion).
func (r Registry) DeleteApp(ctx context.Context, appID string) error {
	if !r.Enabled() {
		return nil
	}
	repo := repoPath(appID)
	tags, err := r.tags(ctx, repo)
	if err != nil {
		return err
	}
	var errs []error
	for _, tag := range tags {
		digest, err := r.digestOf(ctx, repo, tag)
		if err == nil && digest != "" {
			err = r.deleteManifest(ctx, repo, digest)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r Registry) tags(ctx context.Context, repo string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base()+repo+"/tags/list", nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("list the tags of %s: %w", repo, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("list the tags of %s: %s", repo, resp.Status)
	}
	var list struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&list); err != nil {
		return nil, fmt.Errorf("list the tags of %s: %w", repo, err)
	}
	return list.Tags, nil
}

func (r Registry) digestOf(ctx context.Context, repo, tag string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, r.base()+repo+"/manifests/"+url.PathEscape(tag), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", strings.Join(manifestTypes, ", "))
	resp, err := r.client().Do(req)
	if err != nil {
		return "", fmt.Errorf("read %s:%s: %w", repo, tag, err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return "", nil
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("read %s:%s: %s", repo, tag, resp.Status)
	}
	return resp.Header.Get("Docker-Content-Digest"), nil
}
