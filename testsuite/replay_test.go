package testsuite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skypanel/skypanel/temporal/codec"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/proxy"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/skypanel/skypanel/workflows"
)

// replayHistory waits for a workflow to close, fetches its real history and replays it against
// the workflow code in this tree: a nondeterministic change fails here. With
// SKYPANEL_RECORD_HISTORIES=1 the history is also saved into workflows/testdata, where the
// workflows package's replay test keeps guarding it once the code changes shape. The file is
// named after its content (historyFileName); a file of that name is never overwritten, so a
// history of an older shape stays and a new shape adds a file. scenario only labels the log.
func replayHistory(t *testing.T, workflowID, scenario string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The API may report an operation done (a deployment failed, say) before its workflow has
	// released the app's lock and closed: record the whole run, not a prefix of it.
	if err := platform.temporal.GetWorkflow(ctx, workflowID, "").Get(ctx, nil); ctx.Err() != nil {
		t.Fatalf("%s did not close: %v", workflowID, err)
	}
	iter := platform.temporal.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
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
	codec := codec.NewPayloadCodecWithOptions(platform.keyring, codec.Options{AllowPlaintext: true})
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
	name, err := historyFileName(history)
	if err != nil {
		t.Fatalf("name the history of %s: %v", workflowID, err)
	}
	raw, err := protojson.MarshalOptions{Indent: "  "}.Marshal(history)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "workflows", "testdata", name)
	// O_EXCL: an existing history, of this code or of an older one, is never overwritten.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		t.Logf("%s: %s exists already (a history of the same shape): kept", scenario, path)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(raw); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: recorded %s", scenario, path)
}

// historyFileName names a recorded history
//
//	<WorkflowType>[.<change-id>=<version>]....<outcome>.<shape>.json
//
// This is a copy of the scheme of workflows/history_names_test.go (docs/testing.md, "Replay
// histories"), which a test package cannot import; the workflows package's replay test checks
// every file's name against its content, so a difference between the copies fails there.
func historyFileName(h *historypb.History) (string, error) {
	var workflowType string
	outcome := "open"
	versions := map[string]int{}
	var shape []string
	for _, e := range h.GetEvents() {
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			shape = append(shape, "task")
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			workflowType = e.GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName()
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			shape = append(shape, "activity "+e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName())
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED:
			shape = append(shape, "cancel activity")
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			shape = append(shape, "timer")
		case enumspb.EVENT_TYPE_TIMER_CANCELED:
			shape = append(shape, "cancel timer")
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			attrs := e.GetMarkerRecordedEventAttributes()
			if attrs.GetMarkerName() != "Version" {
				shape = append(shape, "marker "+attrs.GetMarkerName())
				continue
			}
			var changeID string
			var version int
			for key, dst := range map[string]any{"change-id": &changeID, "version": &version} {
				payloads := attrs.GetDetails()[key].GetPayloads()
				if len(payloads) != 1 {
					return "", fmt.Errorf("event %d: version marker without one %q payload", e.GetEventId(), key)
				}
				if err := json.Unmarshal(payloads[0].GetData(), dst); err != nil {
					return "", fmt.Errorf("event %d: version marker %q: %w", e.GetEventId(), key, err)
				}
			}
			versions[changeID] = version
			shape = append(shape, fmt.Sprintf("version %s=%d", changeID, version))
		case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
			shape = append(shape, "child "+e.GetStartChildWorkflowExecutionInitiatedEventAttributes().GetWorkflowType().GetName())
		case enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
			shape = append(shape, "signal "+e.GetSignalExternalWorkflowExecutionInitiatedEventAttributes().GetSignalName())
		case enumspb.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
			shape = append(shape, "cancel external")
		case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
			var keys []string
			for key := range e.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields() {
				keys = append(keys, key)
			}
			slices.Sort(keys)
			shape = append(shape, "upsert "+strings.Join(keys, ","))
		case enumspb.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED:
			shape = append(shape, "properties")
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
			outcome = "completed"
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
			outcome = "failed"
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
			outcome = "canceled"
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
			outcome = "terminated"
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
			outcome = "timed-out"
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
			outcome = "continued-as-new"
		}
	}
	if workflowType == "" {
		return "", fmt.Errorf("no WorkflowExecutionStarted event")
	}
	shape = append(shape, "close "+outcome)
	parts := []string{workflowType}
	changeIDs := make([]string, 0, len(versions))
	for id := range versions {
		changeIDs = append(changeIDs, id)
	}
	slices.Sort(changeIDs)
	for _, id := range changeIDs {
		parts = append(parts, id+"="+strconv.Itoa(versions[id]))
	}
	sum := sha256.Sum256([]byte(strings.Join(shape, "\n")))
	parts = append(parts, outcome, hex.EncodeToString(sum[:4]))
	return strings.Join(parts, ".") + ".json", nil
}
