package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/activities/contract"
	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
)

type backupLocationInput struct {
	DatabaseID string `path:"databaseID" maxLength:"64"`
	BackupID   string `path:"backupID" maxLength:"64"`
}

type backupLocationOutput struct {
	Body contract.BackupLocation
}

// registerBackupLocation tells the node that runs a database where one of its backups goes or
// is read from. For the S3 store that is the bucket, the object key and the credentials, the
// secret key sealed under the node's own newest key: only the node the database is placed on
// gets them (403 otherwise), and they never pass through Temporal.
func (s *Server) registerBackupLocation() {
	op := s.nodeOp("agent-backup-location", http.MethodGet, "/api/paas/agent/databases/{databaseID}/backups/{backupID}/location",
		"Where a backup of a database placed on the node is stored, with the S3 credentials sealed for the node", http.StatusOK)
	huma.Register(s.api, op, func(ctx context.Context, in *backupLocationInput) (*backupLocationOutput, error) {
		nodeID, _ := ctx.Value(nodeKey).(string)
		databaseID, backupID := strings.ToLower(in.DatabaseID), strings.ToLower(in.BackupID)
		b, err := s.store.BackupForNode(ctx, databaseID, backupID, nodeID)
		switch {
		case errors.Is(err, db.ErrNotFound):
			return nil, huma.Error404NotFound("no such backup of this database")
		case errors.Is(err, db.ErrBackupNotForNode):
			s.log.WarnContext(ctx, "node asked where a backup of a database it does not run is", "node_id", nodeID, "database_id", databaseID, "backup_id", backupID)
			return nil, huma.Error403Forbidden("database " + databaseID + " is not placed on this node: its backups are not this node's")
		case err != nil:
			return nil, s.problem(ctx, "backup", err)
		}
		out := &backupLocationOutput{}
		out.Body.Store = b.Store
		if b.Store != db.BackupStoreS3 {
			return out, nil
		}
		if s.cfg.Backups == nil || s.cfg.Backups.S3 == nil {
			return nil, huma.Error503ServiceUnavailable("the backup is kept in the S3 store, which this API is not given")
		}
		ring, err := s.nodeKeyring(ctx, nodeID, false)
		if err != nil {
			return nil, s.problem(ctx, "node", err)
		}
		cfg := s.cfg.Backups.S3.Config
		sealed, err := ring.Encrypt([]byte(cfg.SecretKey), secrets.S3SecretKey())
		if err != nil {
			return nil, fmt.Errorf("seal the S3 secret key for node %s: %w", nodeID, err)
		}
		out.Body.S3 = &contract.S3Location{Endpoint: cfg.Endpoint, Region: cfg.Region, Bucket: cfg.Bucket, Key: b.ObjectKey,
			AccessKeyID: cfg.AccessKey, SecretKeySealed: sealed}
		return out, nil
	})
}
