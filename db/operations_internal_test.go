package db

import (
	"errors"
	"strings"
	"testing"
)

// A suspended app refuses every operation but delete and billing's own resume, whatever it
// has; an app being deleted refuses everything but the delete.
func TestSuspendedAppRefusesAllButDelete(t *testing.T) {
	kinds := []string{OpDeploy, OpStop, OpStart, OpRestart, OpDelete, OpRollback, OpScale, OpConfigure, OpSuspend, OpResume}
	for _, kind := range kinds {
		err := checkOperationAllowed(kind, AppSuspended, true)
		var invalid *InvalidStateError
		switch kind {
		case OpDelete, OpResume:
			if err != nil {
				t.Errorf("%s of a suspended app refused: %v", kind, err)
			}
		default:
			if !errors.As(err, &invalid) || !strings.Contains(invalid.Reason, "suspended") {
				t.Errorf("%s of a suspended app: %v, want a refusal that says it is suspended", kind, err)
			}
		}
		err = checkOperationAllowed(kind, AppDeleting, true)
		if (kind == OpDelete) != (err == nil) {
			t.Errorf("%s of an app being deleted: %v", kind, err)
		}
	}
}
