package db

import (
	"errors"
	"strings"
	"testing"
)

// A suspended app refuses every operation but delete, billing's own resume, a move and a domain
// change, whatever it has; an app being deleted refuses everything but the delete.
func TestSuspendedAppRefusesAllButDelete(t *testing.T) {
	kinds := []string{OpDeploy, OpStop, OpStart, OpRestart, OpDelete, OpRollback, OpScale, OpConfigure, OpSuspend, OpResume, OpMove, OpDomains}
	for _, kind := range kinds {
		err := checkOperationAllowed(kind, AppSuspended, true)
		var invalid *InvalidStateError
		switch kind {
		case OpDelete, OpResume, OpMove, OpDomains:
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

// A move only changes where the app lives: any app but one being deleted can move (a drained
// node must be emptied of stopped, suspended and never-deployed apps too).
func TestAMoveIsAllowedInAnyStatusButDeleting(t *testing.T) {
	for _, status := range []string{AppCreated, AppDeploying, AppRunning, AppStopped, AppFailed, AppSuspended} {
		for _, hasRelease := range []bool{false, true} {
			if err := checkOperationAllowed(OpMove, status, hasRelease); err != nil {
				t.Errorf("move of a %s app (release %v): %v", status, hasRelease, err)
			}
		}
	}
	if err := checkOperationAllowed(OpMove, AppDeleting, true); err == nil {
		t.Error("move of an app being deleted allowed")
	}
}
