package workflows

import (
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
)

// forbidActivities makes any call of the given activities fail the test. AssertNotCalled
// cannot say "not called" on its own: it only sees calls of mocked activities, and the test
// environment runs the real registered activity (or fails it) for one nobody mocked, so a
// forbidden call goes unnoticed unless a mock objects to it.
//
// Call it after the test's expected calls of the same activities: testify serves a call from
// the first expectation whose arguments match and that has calls left, so those expected
// calls are served first and every other call lands here.
func forbidActivities(t *testing.T, env *testsuite.TestWorkflowEnvironment, activities ...any) {
	t.Helper()
	for _, activity := range activities {
		fnType := reflect.TypeOf(activity)
		name := activityName(activity)
		forbidden := reflect.MakeFunc(fnType, func(args []reflect.Value) []reflect.Value {
			t.Errorf("%s was called with %+v: the workflow must not call it here", name, args[len(args)-1].Interface())
			results := make([]reflect.Value, fnType.NumOut())
			for i := range results {
				results[i] = reflect.Zero(fnType.Out(i))
			}
			// Non-retryable, so the one forbidden call is reported once, not once per attempt.
			err := error(temporal.NewNonRetryableApplicationError(name+" is forbidden in this test", "Forbidden", nil))
			results[len(results)-1] = reflect.ValueOf(&err).Elem()
			return results
		})
		anyArgs := make([]any, fnType.NumIn())
		for i := range anyArgs {
			anyArgs[i] = mock.Anything
		}
		// Maybe: AssertExpectations must not ask for a call of what is forbidden.
		env.OnActivity(activity, anyArgs...).Return(forbidden.Interface()).Maybe()
	}
}

// activityName is an activity method's name, e.g. "PublishRoute".
func activityName(activity any) string {
	full := runtime.FuncForPC(reflect.ValueOf(activity).Pointer()).Name()
	full = strings.TrimSuffix(full, "-fm")
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		return full[i+1:]
	}
	return full
}
