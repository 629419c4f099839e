package docker

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
)

// fakeDisk answers image and container sizes from maps.
type fakeDisk struct {
	images     map[string]int64
	containers map[string]int64
}

func (f fakeDisk) ImageSize(_ context.Context, id string) (int64, error) {
	if size, ok := f.images[id]; ok {
		return size, nil
	}
	return 0, errors.New("no such image")
}

func (f fakeDisk) ContainerSizeRw(_ context.Context, id string) (int64, error) {
	return f.containers[id], nil
}

// The build's disk is its context, what each stage's latest image adds over the stage's base,
// and the running step's writable layer, followed from the classic builder's progress lines.
func TestBuildDiskFollowsStagesAndTheRunningStep(t *testing.T) {
	const mb = 1 << 20
	engine := fakeDisk{
		images: map[string]int64{
			"aaaaaaaaaaaa": 100 * mb, // stage 1's base
			"bbbbbbbbbbbb": 130 * mb, // stage 1 after a RUN: +30
			"cccccccccccc": 50 * mb,  // stage 2's base
			"dddddddddddd": 55 * mb,  // stage 2 after a COPY --from: +5
		},
		containers: map[string]int64{"0123456789ab": 7 * mb},
	}
	ctx := context.Background()
	d := newBuildDisk(64)
	if !d.addContext(2 * mb) {
		t.Fatal("a 2 MiB context is within 64 MiB")
	}
	d.observe("Step 1/4 : FROM base AS build\n")
	d.observe(" ---> aaaaaaaaaaaa\n")
	if got := d.measure(ctx, engine); got != 2*mb {
		t.Errorf("after FROM: %d MiB, want the context's 2", got/mb)
	}
	d.observe("Step 2/4 : RUN make\n")
	d.observe(" ---> Running in 0123456789ab\n")
	d.observe("compiling...\n")
	if got := d.measure(ctx, engine); got != 9*mb {
		t.Errorf("while the RUN step runs: %d MiB, want 2+7", got/mb)
	}
	d.observe(" ---> Removed intermediate container 0123456789ab\n ---> bbbbbbbbbbbb\n")
	if got := d.measure(ctx, engine); got != 32*mb {
		t.Errorf("after the RUN step: %d MiB, want 2+30", got/mb)
	}
	d.observe("Step 3/4 : FROM other\n ---> cccccccccccc\nStep 4/4 : COPY --from=build /out /out\n ---> dddddddddddd\n")
	if got := d.measure(ctx, engine); got != 37*mb {
		t.Errorf("after the second stage: %d MiB, want 2+30+5", got/mb)
	}
	if d.over(ctx, engine) {
		t.Error("37 MiB is within 64 MiB")
	}
	engine.images["dddddddddddd"] = 90 * mb // the same step measured again is not re-read
	d.observe("Successfully built dddddddddddd\n")
	if got := d.measure(ctx, engine); got != 37*mb {
		t.Errorf("an image measured once: %d MiB, want 37", got/mb)
	}
	if d.addContext(63 * mb) {
		t.Error("a context of 65 MiB is over 64 MiB")
	}
	if !d.over(ctx, engine) {
		t.Error("over the limit, not told")
	}
	// FROM scratch names no image: the whole stage counts.
	scratch := newBuildDisk(64)
	scratch.observe("Step 1/3 : FROM scratch\n ---> \nStep 2/3 : COPY x /x\n ---> cccccccccccc\n")
	if got := scratch.measure(ctx, engine); got != 50*mb {
		t.Errorf("a stage FROM scratch: %d MiB, want 50", got/mb)
	}
	var nilDisk *buildDisk
	nilDisk.observe("Step 1/1 : FROM x\n") // a build read without a disk limit
}

// A build that writes more than its disk limit is stopped and fails, naming the limit: while a
// step is still writing (its writable layer), after a step too quick for the watcher (its
// image), and when the build context alone is over it. A build within its limit is built.
func TestABuildPastItsDiskLimitFailsNamingIt(t *testing.T) {
	if l := (&Activities{BuildDiskMB: 4096}).buildLimits(BuildImageInput{DiskMB: 100}); l.diskMB != 100 {
		t.Errorf("the plan's 100 MiB against the node's 4096: %d", l.diskMB)
	}
	if l := (&Activities{}).buildLimits(BuildImageInput{}); l.diskMB != DefaultBuildDiskMB {
		t.Errorf("no limit named: %d, want %d", l.diskMB, DefaultBuildDiskMB)
	}
	f := newFixture(t)
	// The steps that hold on would otherwise run into this limit, which the test tells apart.
	f.a.BuildTimeout = time.Minute
	build := func(name, run string, extra int64) error {
		dir := contextDir(t, "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \""+run+"\"]\n")
		copyFile(t, "/bin/busybox", filepath.Join(dir, "busybox"))
		if extra > 0 {
			if err := os.WriteFile(filepath.Join(dir, "blob"), make([]byte, extra), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		f.sink = &memSink{}
		f.a.Logs = f.sink
		return f.run(t, f.a.BuildImage, BuildImageInput{AppID: f.appID, OrgID: f.orgID, DeploymentID: "dep-" + name, ContextDir: dir,
			ImageTag: "skypanel-test/" + f.appID + ":" + name, DiskMB: 64}, nil)
	}
	const want = "wrote more than its disk limit of 64 MiB"

	if err := build("within", "/bin/busybox dd if=/dev/zero of=/data bs=1M count=16", 0); err != nil {
		t.Fatalf("16 MiB within 64 MiB: %v\nlog:\n%s", err, f.sink.text("build"))
	}
	if log := f.sink.text("build"); !strings.Contains(log, "64 MiB disk") {
		t.Errorf("the build log does not show the disk limit:\n%s", log)
	}

	// The step writes 128 MiB, then holds on for ten minutes: only the watcher, which measures
	// the running step's layer, stops it before the time limit.
	err := build("writing", "/bin/busybox dd if=/dev/zero of=/data bs=1M count=128 && /bin/busybox sleep 600", 0)
	wantAppError(t, err, ErrTypeBuildFailed, want)

	// A step that ends before the watcher looks: the check after the build finds its layer, and
	// no image is kept.
	every := diskCheckEvery
	diskCheckEvery = time.Hour
	err = build("quick", "/bin/busybox dd if=/dev/zero of=/data bs=1M count=128", 0)
	diskCheckEvery = every
	wantAppError(t, err, ErrTypeBuildFailed, want)
	if _, err := f.a.Client.ImageInspect(context.Background(), "skypanel-test/"+f.appID+":quick"); !errdefs.IsNotFound(err) {
		t.Errorf("the image over the limit was kept: %v", err)
	}

	// A context of 80 MiB: the upload stops at the limit.
	err = build("context", "true", 80<<20)
	wantAppError(t, err, ErrTypeBuildFailed, want)
}

// An app image built FROM a runtime image (labelled as a base image, which cleanup never
// removes) is no base image itself.
func TestAnAppImageBuiltFromABaseImageIsNoBaseImage(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	dir := t.TempDir()
	copyFile(t, "/bin/busybox", filepath.Join(dir, "busybox"))
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY busybox /bin/busybox\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := "skypanel-test/" + f.appID + ":base"
	resp, err := f.a.Client.ImageBuild(ctx, tarContext(ctx, dir, contextLayout{}, nil, nil), build.ImageBuildOptions{
		Tags: []string{base}, Remove: true, Version: build.BuilderV1,
		Labels: map[string]string{LabelBase: "true", LabelApp: f.appID, LabelOrg: f.orgID},
	})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	tag := "skypanel-test/" + f.appID + ":app"
	if err := f.run(t, f.a.BuildImage, BuildImageInput{AppID: f.appID, OrgID: f.orgID, DeploymentID: "dep-app",
		ContextDir: contextDir(t, "FROM "+base+"\nCMD [\"/bin/busybox\", \"true\"]\n"), ImageTag: tag}, nil); err != nil {
		t.Fatalf("build FROM the base: %v\n%s", err, f.sink.text("build"))
	}
	info, err := f.a.Client.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Config.Labels[LabelBase]; got != "false" {
		t.Errorf("the app image's %s label is %q, want false", LabelBase, got)
	}
}
