package testsuite

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/proxy"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	sptemporal "github.com/skypanel/skypanel/temporal"
	"github.com/skypanel/skypanel/workflows"
)

// replayHistory fetches a finished workflow's real history and replays it against the
// workflow code in this tree: a nondeterministic change fails here. With
// SKYPANEL_RECORD_HISTORIES=1 the history is also saved into workflows/testdata, where the
// workflows package's replay test keeps guarding it once the code changes shape.
func replayHistory(t *testing.T, workflowID, recordAs string) {
	t.Helper()
	ctx := context.Background()
	iter := platform.temporal.GetWorkflowHistory(ctx, workflowID, "", false, 0)
	history := &historypb.History{}
	for iter.HasNext() {
		event, err := iter.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", workflowID, err)
		}
		history.Events = append(history.Events, event)
	}
	// The stored payloads are encrypted; decode them with the platform's keyring first (what the
	// Temporal UI does through the codec endpoint), so the replay and a recorded history read
	// like any other.
	codec := sptemporal.NewPayloadCodec(platform.keyring)
	if err := proxy.VisitPayloads(ctx, history, proxy.VisitPayloadsOptions{
		SkipSearchAttributes: true,
		Visitor: func(_ *proxy.VisitPayloadsContext, payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
			return codec.Decode(payloads)
		},
	}); err != nil {
		t.Fatalf("decode the history of %s: %v", workflowID, err)
	}
	replayer := worker.NewWorkflowReplayer()
	for _, wf := range workflows.All {
		replayer.RegisterWorkflow(wf)
	}
	if err := replayer.ReplayWorkflowHistory(nil, history); err != nil {
		t.Fatalf("replay %s: %v", workflowID, err)
	}
	if os.Getenv("SKYPANEL_RECORD_HISTORIES") != "1" {
		return
	}
	raw, err := protojson.MarshalOptions{Indent: "  "}.Marshal(history)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "workflows", "testdata", recordAs+".json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s", path)
}
