package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"testing"
	"time"

	devregistry "github.com/skypanel/skypanel/cmd/skypanel/devharness/registry"
)

// putImage stores a minimal image (a config blob and a schema 2 manifest) under repo:tag
// through the registry's API, as a push would, and returns the manifest's digest.
func putImage(t *testing.T, r Registry, repo, tag string) string {
	t.Helper()
	config := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","tag":%q}`, tag))
	sum := sha256.Sum256(config)
	configDigest := "sha256:" + hex.EncodeToString(sum[:])
	resp, err := http.Post(r.base()+repo+"/blobs/uploads/", "", nil)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start upload: %v %v", resp, err)
	}
	resp.Body.Close()
	location := resp.Header.Get("Location")
	req, _ := http.NewRequest(http.MethodPut, location+"&digest="+configDigest, bytes.NewReader(config))
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload blob: %v %v", resp, err)
	}
	resp.Body.Close()
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",`+
		`"config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":%d,"digest":%q},"layers":[]}`, len(config), configDigest)
	req, _ = http.NewRequest(http.MethodPut, r.base()+repo+"/manifests/"+tag, bytes.NewReader([]byte(manifest)))
	req.Header.Set("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("put manifest: %v %v", resp, err)
	}
	resp.Body.Close()
	return resp.Header.Get("Docker-Content-Digest")
}

func exists(t *testing.T, r Registry, repo, reference string) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodHead, r.base()+repo+"/manifests/"+reference, nil)
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// A pruned release's image leaves the registry by its digest; a deleted app's images all go;
// an image of another registry is never asked for.
func TestDeleteImageAndApp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg, err := devregistry.Start(ctx, devregistry.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Stop(context.Background())
	r := Registry{Addr: reg.Addr()}

	repo := repoPath("app-1")
	if r.Repository("app-1") != reg.Addr()+"/skypanel/app-app-1" {
		t.Errorf("repository %q", r.Repository("app-1"))
	}
	v1, v2 := putImage(t, r, repo, "r1"), putImage(t, r, repo, "r2")
	if err := r.DeleteImage(ctx, r.Repository("app-1")+"@"+v1); err != nil {
		t.Fatal(err)
	}
	if exists(t, r, repo, v1) || !exists(t, r, repo, v2) {
		t.Errorf("after deleting v1: v1 there %v, v2 there %v; want only v2", exists(t, r, repo, v1), exists(t, r, repo, v2))
	}
	if err := r.DeleteImage(ctx, r.Repository("app-1")+"@"+v1); err != nil {
		t.Errorf("deleting it again: %v, want no error", err)
	}
	// Refs the registry does not own are left alone (no request: the address does not exist).
	for _, ref := range []string{"skypanel/app-1:r1", "other.example:5000/skypanel/app-1@" + v2, r.Repository("app-1") + ":r2"} {
		if err := r.DeleteImage(ctx, ref); err != nil {
			t.Errorf("DeleteImage(%q): %v", ref, err)
		}
	}
	if !exists(t, r, repo, v2) {
		t.Error("v2 went with a ref that was not its digest")
	}

	other := putImage(t, r, repoPath("app-2"), "r1")
	if err := r.DeleteApp(ctx, "app-1"); err != nil {
		t.Fatal(err)
	}
	if exists(t, r, repo, v2) || !exists(t, r, repoPath("app-2"), other) {
		t.Errorf("after deleting app-1: its v2 there %v, app-2's image there %v", exists(t, r, repo, v2), exists(t, r, repoPath("app-2"), other))
	}
	if err := r.DeleteApp(ctx, "never-pushed"); err != nil {
		t.Errorf("an app with no images: %v", err)
	}
	if err := (Registry{}).DeleteApp(ctx, "app-2"); err != nil {
		t.Errorf("no registry: %v", err)
	}
}
