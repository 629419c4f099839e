package testsuite

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
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
