package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
)

// A recorded history is named after what it proves, so that a re-record never overwrites a
// history of an older shape: it adds one.
//
//	<WorkflowType>[.<change-id>=<version>]....<outcome>.<shape>.json
//	DeleteApp.settle-on-delete=1.completed.ffed6f8c.json
//	DeployApp.failed.81380f9f.json
//
//   - the workflow type;
//   - every GetVersion marker in the history, as change id=version, sorted by change id (a
//     change id absent from the name was either not reached or took workflow.DefaultVersion);
//   - how the run closed: completed, failed, canceled, terminated, timed-out, continued-as-new,
//     or open (fetched before it closed);
//   - the first 8 hex digits of the SHA-256 of the history's shape, what a replay compares: the
//     ordered list of the workflow tasks that completed and what each one's commands recorded
//     (each activity scheduled by type, timer, marker with its change id and version, child
//     workflow by type, search attribute upsert by keys, signal, cancel request), and how the
//     run closed. Ids, inputs, results, times and retries do not count, so re-recording the
//     same code on the same path gives the same name; the same commands split differently
//     between workflow tasks (parallel activities that finished together or apart) are another
//     shape, since a replay can tell them apart.
//
// testsuite/replay_test.go holds a copy of this scheme for the histories the e2e tests record;
// TestReplayRecordedHistories checks every file's name against its content, so the two copies
// cannot drift apart unnoticed.

// historySummary is what the naming scheme and the replay test's coverage checks read from a
// history.
type historySummary struct {
	workflowType string
	outcome      string
	// versions maps each GetVersion change id with a marker in the history to its version.
	versions map[string]int
	// activities lists the activity types scheduled, in order.
	activities []string
	// shape is the ordered list the name's hash is made of.
	shape []string
	// parallelApart holds the activity types of which two, scheduled by the same workflow task,
	// completed in different workflow tasks.
	parallelApart map[string]bool
}

func summarizeHistory(h *historypb.History) (historySummary, error) {
	s := historySummary{versions: map[string]int{}, outcome: "open", parallelApart: map[string]bool{}}
	type scheduledActivity struct {
		activityType string
		task         int64 // the WorkflowTaskCompleted event of the task that scheduled it
	}
	scheduled := map[int64]scheduledActivity{}
	// completedIn: for each activity type and scheduling task, the workflow tasks (counted by
	// WorkflowTaskStarted events) that saw its activities complete.
	completedIn := map[scheduledActivity]map[int]bool{}
	tasksStarted := 0
	for _, e := range h.GetEvents() {
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
			tasksStarted++
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			s.shape = append(s.shape, "task")
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			a := scheduled[e.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()]
			if completedIn[a] == nil {
				completedIn[a] = map[int]bool{}
			}
			completedIn[a][tasksStarted] = true
			if len(completedIn[a]) > 1 {
				s.parallelApart[a.activityType] = true
			}
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			s.workflowType = e.GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName()
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			attrs := e.GetActivityTaskScheduledEventAttributes()
			name := attrs.GetActivityType().GetName()
			scheduled[e.GetEventId()] = scheduledActivity{name, attrs.GetWorkflowTaskCompletedEventId()}
			s.activities = append(s.activities, name)
			s.shape = append(s.shape, "activity "+name)
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED:
			s.shape = append(s.shape, "cancel activity")
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			s.shape = append(s.shape, "timer")
		case enumspb.EVENT_TYPE_TIMER_CANCELED:
			s.shape = append(s.shape, "cancel timer")
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			attrs := e.GetMarkerRecordedEventAttributes()
			if attrs.GetMarkerName() != "Version" {
				s.shape = append(s.shape, "marker "+attrs.GetMarkerName())
				continue
			}
			changeID, version, err := versionMarker(attrs)
			if err != nil {
				return s, fmt.Errorf("event %d: %w", e.GetEventId(), err)
			}
			s.versions[changeID] = version
			s.shape = append(s.shape, fmt.Sprintf("version %s=%d", changeID, version))
		case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
			s.shape = append(s.shape, "child "+e.GetStartChildWorkflowExecutionInitiatedEventAttributes().GetWorkflowType().GetName())
		case enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
			s.shape = append(s.shape, "signal "+e.GetSignalExternalWorkflowExecutionInitiatedEventAttributes().GetSignalName())
		case enumspb.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
			s.shape = append(s.shape, "cancel external")
		case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
			var keys []string
			for key := range e.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields() {
				keys = append(keys, key)
			}
			slices.Sort(keys)
			s.shape = append(s.shape, "upsert "+strings.Join(keys, ","))
		case enumspb.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED:
			s.shape = append(s.shape, "properties")
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
			s.outcome = "completed"
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
			s.outcome = "failed"
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
			s.outcome = "canceled"
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
			s.outcome = "terminated"
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
			s.outcome = "timed-out"
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
			s.outcome = "continued-as-new"
		}
	}
	if s.workflowType == "" {
		return s, fmt.Errorf("no WorkflowExecutionStarted event")
	}
	s.shape = append(s.shape, "close "+s.outcome)
	return s, nil
}

// versionMarker reads a GetVersion marker: its change id and version.
func versionMarker(attrs *historypb.MarkerRecordedEventAttributes) (string, int, error) {
	var changeID string
	var version int
	for key, dst := range map[string]any{"change-id": &changeID, "version": &version} {
		payloads := attrs.GetDetails()[key].GetPayloads()
		if len(payloads) != 1 {
			return "", 0, fmt.Errorf("version marker without one %q payload", key)
		}
		if err := json.Unmarshal(payloads[0].GetData(), dst); err != nil {
			return "", 0, fmt.Errorf("version marker %q: %w", key, err)
		}
	}
	return changeID, version, nil
}

// fileName is the history's name under the scheme above.
func (s historySummary) fileName() string {
	parts := []string{s.workflowType}
	changeIDs := make([]string, 0, len(s.versions))
	for id := range s.versions {
		changeIDs = append(changeIDs, id)
	}
	slices.Sort(changeIDs)
	for _, id := range changeIDs {
		parts = append(parts, id+"="+strconv.Itoa(s.versions[id]))
	}
	sum := sha256.Sum256([]byte(strings.Join(s.shape, "\n")))
	parts = append(parts, s.outcome, hex.EncodeToString(sum[:4]))
	return strings.Join(parts, ".") + ".json"
}

func (s historySummary) scheduled(activity string) bool {
	return slices.Contains(s.activities, activity)
}

// historyFileName names a history under the scheme above.
func historyFileName(h *historypb.History) (string, error) {
	s, err := summarizeHistory(h)
	if err != nil {
		return "", err
	}
	return s.fileName(), nil
}
