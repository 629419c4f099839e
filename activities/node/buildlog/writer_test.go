package buildlog

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

type recordingSink struct {
	mu     sync.Mutex
	chunks []Chunk
}

func (s *recordingSink) Append(_ context.Context, c Chunk) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chunks = append(s.chunks, c)
	return nil
}

func (s *recordingSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.chunks)
}

func TestWriterBatchesSmallWritesAndNumbersChunks(t *testing.T) {
	ctx := context.Background()
	sink := &recordingSink{}
	w := NewWriter(sink, "dep-1", "build", 2)
	w.Write(ctx, "Step 1/3\n")
	w.Write(ctx, "Step 2/3\n")
	if n := sink.count(); n != 0 {
		t.Fatalf("small writes were sent at once: %d chunks", n)
	}
	w.Flush(ctx)
	w.Write(ctx, strings.Repeat("x", chunkBytes)) // big enough to go at once
	w.Flush(ctx)                                  // nothing pending: no empty chunk
	if len(sink.chunks) != 2 {
		t.Fatalf("%d chunks, want 2", len(sink.chunks))
	}
	first, second := sink.chunks[0], sink.chunks[1]
	if first.Text != "Step 1/3\nStep 2/3\n" || first.Seq != 1 || second.Seq != 2 {
		t.Errorf("chunks %+v %+v", first, second)
	}
	if first.DeploymentID != "dep-1" || first.Source != "build" || first.Attempt != 2 {
		t.Errorf("chunk identity %+v", first)
	}
}

func TestWriterWithoutSinkOrDeploymentDropsEverything(t *testing.T) {
	ctx := context.Background()
	sink := &recordingSink{}
	NewWriter(nil, "dep-1", "build", 1).Write(ctx, "x\n")
	w := NewWriter(sink, "", "build", 1)
	w.Write(ctx, "x\n")
	w.Flush(ctx)
	if len(sink.chunks) != 0 {
		t.Errorf("sent %d chunks", len(sink.chunks))
	}
}

func TestWriterSendsPendingLinesDuringASilentStep(t *testing.T) {
	sink := &recordingSink{}
	w := NewWriter(sink, "dep-1", "build", 1)
	w.Write(context.Background(), "Step 3/3 : RUN a long silent command\n")
	// No more writes and no Flush: the pending line must still reach the sink.
	deadline := time.Now().Add(10 * time.Second)
	for sink.count() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the pending line was never sent")
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.Flush(context.Background())
	if n := sink.count(); n != 1 {
		t.Errorf("%d chunks, want 1", n)
	}
}

// A step printing far more than the control plane keeps sends the cap's worth and no more.
func TestWriterStopsSendingPastTheCap(t *testing.T) {
	ctx := context.Background()
	sink := &recordingSink{}
	w := NewWriter(sink, "dep-1", "build", 1)
	line := strings.Repeat("y", 99) + "\n"
	for range (50 << 20) / len(line) { // 50 MiB
		w.Write(ctx, line)
	}
	w.Flush(ctx)
	sent := 0
	for _, c := range sink.chunks {
		sent += len(c.Text)
	}
	if sent > MaxBytes || sent < 10<<20 {
		t.Errorf("sent %d bytes of 50 MiB, want the cap's worth (10 MiB to %d)", sent, MaxBytes)
	}
}
