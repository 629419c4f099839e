package testsuite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A node reaches the backups and the password of the databases placed on it only: another
// registered node gets 403 on the backup transfer routes (reading and overwriting) and on the
// password, and the stored backup is unchanged by its attempt.
func TestAnotherNodeCannotReachADatabasesBackupsOrPassword(t *testing.T) {
	t.Parallel()
	owner := newCustomer(t, uniqueName("nodeowner")+"@example.com")
	pg := owner.createDatabase(t, uniqueName("held"), "postgresql")
	backupID, op := owner.backupDatabase(t, pg.ID)
	if op.Status != "succeeded" {
		t.Fatalf("backup: %+v", op)
	}
	_, strangerToken := registerBareNode(t, uniqueName("stranger"), uniqueName("elsewhere"))
	route := platform.apiURL + "/api/paas/agent/databases/" + pg.ID + "/backups/" + backupID

	transfer := func(method, token, body string) (int, string) {
		req, err := http.NewRequest(method, route, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp.StatusCode, string(raw)
	}
	if status, body := transfer(http.MethodGet, strangerToken, ""); status != http.StatusForbidden {
		t.Errorf("another node reads the backup: %d %s, want 403", status, body)
	}
	if status, body := transfer(http.MethodPut, strangerToken, "not a dump"); status != http.StatusForbidden {
		t.Errorf("another node overwrites the backup: %d %s, want 403", status, body)
	}
	if status, _ := transfer(http.MethodGet, "sp_not-a-node-token", ""); status != http.StatusUnauthorized {
		t.Errorf("a made-up token reads the backup: %d, want 401", status)
	}

	var backup databaseBackup
	for _, b := range owner.backups(t, pg.ID) {
		if b.ID == backupID {
			backup = b
		}
	}
	status, dump := platform.call(http.MethodGet, "/api/paas/databases/"+pg.ID+"/backups/"+backupID+"/download", owner.token, nil, nil)
	sum := sha256.Sum256(dump)
	if status != http.StatusOK || backup.Status != "completed" || hex.EncodeToString(sum[:]) != backup.SHA256 {
		t.Errorf("after the other node's attempts the backup is %+v and downloads as %d with sha256 %x", backup, status, sum)
	}

	if status, raw := platform.call(http.MethodPost, "/api/paas/agent/databases/open", strangerToken,
		map[string]string{"database_id": pg.ID, "sealed": "v1:not-opened"}, nil); status != http.StatusForbidden {
		t.Errorf("another node opens the database's password: %d %s, want 403", status, raw)
	}
	owner.deleteDatabase(t, pg.ID)
}

// A database's backup schedule changes after its creation: the Temporal Schedule follows; "0"
// removes it; a too-short interval or another customer changes nothing.
func TestADatabasesBackupScheduleChangesAfterItsCreation(t *testing.T) {
	t.Parallel()
	owner := newCustomer(t, uniqueName("reschedule")+"@example.com")
	rd := owner.createDatabase(t, uniqueName("resched"), "redis")
	schedule := func() (time.Duration, bool) {
		desc, err := platform.temporal.ScheduleClient().GetHandle(context.Background(), "database-backups/"+rd.ID).Describe(context.Background())
		if err != nil {
			return 0, false
		}
		if desc.Schedule.Spec == nil || len(desc.Schedule.Spec.Intervals) != 1 {
			t.Fatalf("the schedule's spec: %+v", desc.Schedule.Spec)
		}
		return desc.Schedule.Spec.Intervals[0].Every, true
	}
	// The provisioning makes the schedule just after the database becomes available.
	eventually(t, time.Minute, "the new database's daily schedule", func() (bool, string) {
		every, ok := schedule()
		return ok && every == 24*time.Hour, fmt.Sprintf("every %s (exists %v)", every, ok)
	})
	put := func(token string, body map[string]any) (int, managedDatabase, string) {
		var out managedDatabase
		status, raw := platform.call(http.MethodPut, "/api/paas/databases/"+rd.ID+"/backup-schedule", token, body, &out)
		return status, out, string(raw)
	}
	status, view, raw := put(owner.token, map[string]any{"backup_interval": "6h", "backup_retention": 3})
	if status != http.StatusOK || view.BackupInterval != "6h0m0s" || view.BackupRetention != 3 {
		t.Fatalf("change to 6 h, keep 3: %d %s", status, raw)
	}
	if every, ok := schedule(); !ok || every != 6*time.Hour {
		t.Errorf("after the change the schedule runs every %s (exists %v), want 6h", every, ok)
	}

	if status, _, raw := put(owner.token, map[string]any{"backup_interval": "1s", "backup_retention": 3}); status != http.StatusUnprocessableEntity || !strings.Contains(raw, "body.backup_interval") {
		t.Errorf("a 1 s schedule: %d %s, want 422 at body.backup_interval", status, raw)
	}
	stranger := newCustomer(t, uniqueName("restranger")+"@example.com")
	if status, _, _ := put(stranger.token, map[string]any{"backup_interval": "0", "backup_retention": 1}); status != http.StatusNotFound {
		t.Errorf("another customer changes the schedule: %d, want 404", status)
	}
	if got := owner.getDatabase(t, rd.ID); got.BackupInterval != "6h0m0s" || got.BackupRetention != 3 {
		t.Errorf("refused changes changed the database: %+v", got)
	}
	if every, ok := schedule(); !ok || every != 6*time.Hour {
		t.Errorf("refused changes changed the schedule: every %s (exists %v)", every, ok)
	}

	if status, view, raw := put(owner.token, map[string]any{"backup_interval": "0", "backup_retention": 1}); status != http.StatusOK || view.BackupInterval != "0s" {
		t.Fatalf("no scheduled backups: %d %s", status, raw)
	}
	if _, ok := schedule(); ok {
		t.Error("the schedule is still there after backup_interval 0")
	}
	owner.deleteDatabase(t, rd.ID)
}

// A delete whose final backup fails stops: the database stays, available, saying why, and its
// failed final backup is listed as failed; the owner can then delete it without one.
func TestAFailedFinalBackupStopsTheDelete(t *testing.T) {
	t.Parallel()
	owner := newCustomer(t, uniqueName("finalfail")+"@example.com")
	rd := owner.createDatabase(t, uniqueName("kept"), "redis")
	// The dump goes through a private file in /data: a /data the engine's user cannot write to
	// makes it fail, while the server keeps serving.
	inContainer := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("docker", append([]string{"exec", rd.Host}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("docker exec %v: %v\n%s", args, err, out)
		}
	}
	inContainer("chmod", "500", "/data")

	status, raw := platform.call(http.MethodDelete, "/api/paas/databases/"+rd.ID, owner.token, nil, nil)
	if status != http.StatusAccepted {
		t.Fatalf("delete: %d %s", status, raw)
	}
	var deleteOp databaseOperation
	eventually(t, 3*time.Minute, "the delete has ended", func() (bool, string) {
		for _, op := range owner.databaseOperations(t, rd.ID) {
			if op.Kind == "delete" && op.Status != "queued" && op.Status != "running" {
				deleteOp = op
				return true, op.Status
			}
		}
		return false, "the delete still runs"
	})
	if deleteOp.Status != "failed" || !strings.Contains(deleteOp.Reason, "final backup failed") {
		t.Errorf("the delete: %+v, want failed because its final backup failed", deleteOp)
	}
	got := owner.getDatabase(t, rd.ID)
	if got.Status != "available" || !strings.Contains(got.StatusReason, "final_backup=false") {
		t.Errorf("after the failed delete the database is %q (%q), want available, saying how to delete it anyway", got.Status, got.StatusReason)
	}
	var final *databaseBackup
	for _, b := range owner.backups(t, rd.ID) {
		if b.Kind == "final" {
			final = &b
		}
	}
	if final == nil || final.Status != "failed" || final.Error == "" {
		t.Errorf("the final backup: %+v, want listed as failed with its error", final)
	}

	inContainer("chmod", "700", "/data")
	if status, raw := platform.call(http.MethodDelete, "/api/paas/databases/"+rd.ID+"?final_backup=false", owner.token, nil, nil); status != http.StatusAccepted {
		t.Fatalf("delete without a final backup: %d %s", status, raw)
	}
	eventually(t, 2*time.Minute, "the database is gone", func() (bool, string) {
		status, _ := platform.call(http.MethodGet, "/api/paas/databases/"+rd.ID, owner.token, nil, nil)
		return status == http.StatusNotFound, fmt.Sprint(status)
	})
}
