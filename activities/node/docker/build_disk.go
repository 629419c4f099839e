package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"

	"github.com/skypanel/skypanel/activities/node/limitwatch"
)

// The disk one build may fill: its context plus the layers its steps write.
//
// The classic builder has no disk quota of its own, and overlay2 on ext4 (what a Debian node
// has) has no project quotas to give it one. So the agent measures: the bytes of the context it
// sends, the layers each stage has committed so far (the stage's latest image less its base
// image), and the writable layer of the RUN step running now. A build past its limit is stopped,
// and fails naming the limit. The check runs every diskCheckEvery, so a step can overshoot by
// what it writes in that time; a last check after the build catches a step that was faster.
const (
	// DefaultBuildDiskMB is a build's disk limit when neither its plan nor the node names one.
	DefaultBuildDiskMB = 10240
)

// diskCheckEvery is how often a running build's disk is measured; a variable for tests.

var diskCheckEvery = time.Second

var errBuildDiskLimit = errors.New("build disk limit reached")

// buildDisk follows what one build has written, from the lines of its output stream (observe)
// and from the Engine (measure).
type buildDisk struct {
	limit int64

	mu           sync.Mutex
	contextBytes int64
	stages       []*diskStage
	running      string // the container of the RUN step running now ("" between steps)
	inFrom       bool   // the last step started was a FROM: its next image id is a stage's base
	baseSizes    map[string]int64
	// nextLayerCheck spaces out the writable-layer measures: the Engine walks every file of the
	// layer, and a step that writes many small files (npm install) makes that walk costly. A
	// measure that took d waits 10 d before the next, so it never takes over a tenth of a core.
	nextLayerCheck time.Time
}

// diskStage is one FROM of a (multi-stage) Dockerfile: the image it starts from, its latest
// committed step, and the bytes that step added over the base, as last measured.
type diskStage struct {
	base, last string
	measured   string // the image bytes was measured for
	bytes      int64
	// runningBytes is the writable layer of the stage's RUN step runningID, as last measured.
	runningBytes int64
	runningID    string
}

func newBuildDisk(limitMB int) *buildDisk {
	return &buildDisk{limit: int64(limitMB) << 20, baseSizes: map[string]int64{}}
}

// The classic builder's progress lines this follows (Docker 20.10 to 28): "Step 2/5 : RUN …"
// starts a step, " ---> Running in <container>" names a RUN step's container, and
// " ---> <image>" (12 hex digits) the image a step committed, or for a FROM the base image.
var (
	stepLine    = regexp.MustCompile(`^Step \d+/\d+ : (\S+)`)
	runningLine = regexp.MustCompile(`^ ---> Running in ([0-9a-f]{12,64})\s*$`)
	imageLine   = regexp.MustCompile(`^ ---> ([0-9a-f]{12,64})\s*$`)
)

// observe reads one piece of the build's output stream. The Engine sends each progress line
// whole, in one message.
func (d *buildDisk) observe(stream string) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, line := range strings.Split(stream, "\n") {
		line = strings.TrimRight(line, "\r")
		if m := stepLine.FindStringSubmatch(line); m != nil {
			d.startStage("") // a FROM that named no image: scratch
			d.running = ""
			d.inFrom = strings.EqualFold(m[1], "FROM")
			continue
		}
		if m := runningLine.FindStringSubmatch(line); m != nil {
			d.running = m[1]
			continue
		}
		if m := imageLine.FindStringSubmatch(line); m != nil {
			d.running = ""
			switch {
			case d.inFrom:
				d.startStage(m[1])
			case len(d.stages) > 0:
				d.stages[len(d.stages)-1].last = m[1]
			}
		}
	}
}

// startStage begins a stage FROM base ("": scratch, nothing to subtract) after a FROM step.
func (d *buildDisk) startStage(base string) {
	if !d.inFrom {
		return
	}
	d.inFrom = false
	d.stages = append(d.stages, &diskStage{base: base, last: base, measured: base})
}

// addContext counts bytes of the build context sent to the Engine (which unpacks it on the
// node's disk); false once the context alone is over the limit.
func (d *buildDisk) addContext(n int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.contextBytes += int64(n)
	return d.contextBytes <= d.limit
}

func diskLimitMessage(limitMB int) string {
	return fmt.Sprintf("the build wrote more than its disk limit of %d MiB (the build context and the layers its steps write)", limitMB)
}

// diskInspector is the part of the Engine measure asks.
type diskInspector interface {
	ImageSize(ctx context.Context, id string) (int64, error)
	ContainerSizeRw(ctx context.Context, id string) (int64, error)
}

// measure returns the bytes the build has written so far: its context, what each stage's
// latest image adds over its base, and the running step's writable layer. An image or container
// the Engine no longer has counts as its last measure (or nothing).
func (d *buildDisk) measure(ctx context.Context, engine diskInspector) int64 {
	d.mu.Lock()
	type todo struct {
		stage          *diskStage
		base, last     string
		running        string
		measureRunning bool
	}
	var work []todo
	for i, st := range d.stages {
		t := todo{stage: st, base: st.base, last: st.last}
		if i == len(d.stages)-1 && d.running != "" && !time.Now().Before(d.nextLayerCheck) {
			t.running, t.measureRunning = d.running, true
		}
		if t.last != st.measured || t.measureRunning || st.runningBytes != 0 {
			work = append(work, t)
		}
	}
	d.mu.Unlock()

	for _, t := range work {
		var added int64 = -1
		if t.last != t.stage.measured {
			base, ok := d.baseSize(ctx, engine, t.base)
			size, err := engine.ImageSize(ctx, t.last)
			if ok && err == nil {
				added = max(size-base, 0)
			}
		}
		rw, measuredRW := t.stage.runningBytes, false
		if t.measureRunning {
			started := time.Now()
			rw, _ = engine.ContainerSizeRw(ctx, t.running)
			measuredRW = true
			d.mu.Lock()
			d.nextLayerCheck = time.Now().Add(10 * time.Since(started))
			d.mu.Unlock()
		}
		d.mu.Lock()
		if added >= 0 {
			t.stage.bytes, t.stage.measured = added, t.last
		}
		switch {
		case measuredRW:
			t.stage.runningBytes, t.stage.runningID = rw, t.running
		case t.stage.runningID != d.running:
			// The measured step has ended (its layer is in the image now); the next is not
			// measured yet.
			t.stage.runningBytes, t.stage.runningID = 0, ""
		}
		d.mu.Unlock()
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	total := d.contextBytes
	for _, st := range d.stages {
		total += st.bytes + st.runningBytes
	}
	return total
}

func (d *buildDisk) baseSize(ctx context.Context, engine diskInspector, id string) (int64, bool) {
	if id == "" {
		return 0, true
	}
	d.mu.Lock()
	size, ok := d.baseSizes[id]
	d.mu.Unlock()
	if ok {
		return size, true
	}
	size, err := engine.ImageSize(ctx, id)
	if err != nil {
		return 0, false
	}
	d.mu.Lock()
	d.baseSizes[id] = size
	d.mu.Unlock()
	return size, true
}

// over tells whether the build has written more than its limit.
func (d *buildDisk) over(ctx context.Context, engine diskInspector) bool {
	used := d.measure(ctx, engine)
	if used > d.limit {
		slog.InfoContext(ctx, "build over its disk limit", "used_bytes", used, "limit_bytes", d.limit)
		return true
	}
	return false
}

// watch stops the build (cause errBuildDiskLimit) once it has written more than its limit.
func (d *buildDisk) watch(ctx context.Context, engine diskInspector, stop context.CancelCauseFunc) (done func()) {
	return limitwatch.Start(ctx, diskCheckEvery, func() bool { return d.over(ctx, engine) }, stop, errBuildDiskLimit)
}

// engineDisk answers diskInspector with the Engine's client.
type engineDisk struct{ a *Activities }

func (e engineDisk) ImageSize(ctx context.Context, id string) (int64, error) {
	info, err := e.a.Client.ImageInspect(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("inspect image %s: %w", id, err)
	}
	return info.Size, nil
}

// ContainerSizeRw is the size of the container's writable layer. The Engine computes it by
// walking the layer, so it is asked once per check, for the one running step.
func (e engineDisk) ContainerSizeRw(ctx context.Context, id string) (int64, error) {
	info, _, err := e.a.Client.ContainerInspectWithRaw(ctx, id, true)
	if errdefs.IsNotFound(err) {
		return 0, nil // the step has ended; its layer is an image now
	}
	if err != nil {
		return 0, fmt.Errorf("inspect container %s: %w", id, err)
	}
	if info.SizeRw == nil {
		return 0, nil
	}
	return *info.SizeRw, nil
}

// countingWriter passes writes on to w while the build's disk allows them; past the limit it
// calls over once and fails the write, which ends the context's upload.
type countingWriter struct {
	w    io.Writer
	disk *buildDisk
	over func()
	done bool
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.disk != nil && !c.disk.addContext(len(p)) {
		if !c.done {
			c.done = true
			c.over()
		}
		return 0, errBuildDiskLimit
	}
	return c.w.Write(p)
}
