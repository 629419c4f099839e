package apiserver

// Database backups: customers ask for a backup or a restore (each an operation in the
// database's queue); the node that runs the database streams the dump here and reads it back
// for a restore, through plain HTTP handlers (a dump may be gigabytes: it is never held in
// memory), for its own databases only.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/skypanel/skypanel/activities/control/backups"
	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/temporal/operations"
)

// MaxBackupBytes is the largest dump the filesystem store takes (a runaway dump stops there).
const MaxBackupBytes = 512 << 30

type backupView struct {
	ID          string     `json:"id"`
	Kind        string     `json:"kind" enum:"manual,scheduled,final"`
	Status      string     `json:"status" enum:"queued,running,completed,failed" doc:"completed only once the stored object was read back and matched the checksum the node computed"`
	Store       string     `json:"store" enum:"file,s3" doc:"the store it was written to, and is read back from"`
	SizeBytes   *int64     `json:"size_bytes,omitempty"`
	SHA256      *string    `json:"sha256,omitempty"`
	Error       string     `json:"error,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
}

func backupViewOf(b db.Backup) backupView {
	return backupView{ID: b.ID, Kind: b.Kind, Status: b.Status, Store: b.Store, SizeBytes: b.SizeBytes, SHA256: b.SHA256, Error: b.Error,
		CreatedAt: b.CreatedAt, CompletedAt: b.CompletedAt}
}

type backupOutput struct {
	Status int
	Body   struct {
		BackupID    string `json:"backup_id,omitempty"`
		OperationID string `json:"operation_id"`
		WorkflowID  string `json:"workflow_id"`
		State       string `json:"status" doc:"queued or running, in the database's queue (GET .../operations)"`
	}
}

type restoreInput struct {
	ID   string `path:"id" maxLength:"64"`
	Body struct {
		BackupID string `json:"backup_id" minLength:"1" maxLength:"64" doc:"a completed backup of this database (GET .../backups)"`
	}
}

type backupDownloadInput struct {
	ID       string `path:"id" maxLength:"64"`
	BackupID string `path:"backupId" maxLength:"64"`
}

type databaseOperationView struct {
	ID         string     `json:"id"`
	Kind       string     `json:"kind" enum:"provision,delete,backup,restore"`
	Status     string     `json:"status" enum:"queued,running,succeeded,failed,cancelled"`
	Reason     string     `json:"reason,omitempty" doc:"why it failed, or what it did (a restore says the rows or keys the database holds)"`
	WorkflowID string     `json:"workflow_id"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

func (s *Server) registerDatabaseBackups() {
	huma.Register(s.api, s.op("backup-database", http.MethodPost, "/api/paas/databases/{id}/backup",
		"Back the database up: a consistent dump, streamed to the backup store and verified by checksum", "databases", http.StatusAccepted, false),
		func(ctx context.Context, in *idPath) (*backupOutput, error) {
			if s.cfg.Backups == nil {
				return nil, huma.Error503ServiceUnavailable("this platform has no backup store configured (--backup-dir)")
			}
			p := principal(ctx)
			backupID := uuid.NewString()
			op, err := s.ops.SubmitDatabase(ctx, operations.DatabaseRequest{OrgID: p.OrgID, DatabaseID: in.ID, Kind: db.DatabaseOpBackup, UserID: p.UserID, BackupID: backupID},
				func(op db.NewOperation) (db.DatabaseEnqueued, error) {
					return s.store.QueueBackup(ctx, p.OrgID, in.ID, backupID, "manual", op)
				})
			if err != nil {
				return nil, s.databaseProblem(ctx, err)
			}
			s.log.InfoContext(ctx, "database backup queued", "database_id", in.ID, "backup_id", backupID, "operation_id", op.ID)
			out := &backupOutput{Status: http.StatusAccepted}
			out.Body.BackupID, out.Body.OperationID, out.Body.WorkflowID, out.Body.State = backupID, op.ID, op.WorkflowID, op.Status
			return out, nil
		})
	huma.Register(s.api, s.op("list-database-backups", http.MethodGet, "/api/paas/databases/{id}/backups",
		"List the database's backups, newest first", "databases", 0, false),
		func(ctx context.Context, in *idPath) (*items[backupView], error) {
			list, err := s.store.ListBackups(ctx, principal(ctx).OrgID, in.ID)
			if err != nil {
				return nil, s.problem(ctx, "database", err)
			}
			views := make([]backupView, len(list))
			for i, b := range list {
				views[i] = backupViewOf(b)
			}
			return listOf(views), nil
		})
	huma.Register(s.api, s.op("restore-database", http.MethodPost, "/api/paas/databases/{id}/restore",
		"Restore a completed backup into this database (its checksum is verified before anything is touched)", "databases", http.StatusAccepted, false),
		func(ctx context.Context, in *restoreInput) (*backupOutput, error) {
			p := principal(ctx)
			if _, err := s.store.GetDatabase(ctx, p.OrgID, in.ID); err != nil {
				return nil, s.problem(ctx, "database", err)
			}
			op, err := s.ops.SubmitDatabase(ctx, operations.DatabaseRequest{OrgID: p.OrgID, DatabaseID: in.ID, Kind: db.DatabaseOpRestore, UserID: p.UserID, BackupID: in.Body.BackupID},
				func(op db.NewOperation) (db.DatabaseEnqueued, error) {
					return s.store.QueueRestore(ctx, p.OrgID, in.ID, in.Body.BackupID, op)
				})
			var unusable *db.BackupNotUsableError
			switch {
			case errors.Is(err, db.ErrNotFound):
				// Another database's backup, another organization's, or none: the same answer.
				return nil, huma.Error422UnprocessableEntity("no such backup of this database",
					&huma.ErrorDetail{Location: "body.backup_id", Message: "not a backup of this database", Value: in.Body.BackupID})
			case errors.As(err, &unusable):
				return nil, huma.Error409Conflict(unusable.Error(), &huma.ErrorDetail{Location: "body.backup_id", Value: in.Body.BackupID})
			case err != nil:
				return nil, s.databaseProblem(ctx, err)
			}
			s.log.InfoContext(ctx, "database restore queued", "database_id", in.ID, "backup_id", in.Body.BackupID, "operation_id", op.ID)
			out := &backupOutput{Status: http.StatusAccepted}
			out.Body.OperationID, out.Body.WorkflowID, out.Body.State = op.ID, op.WorkflowID, op.Status
			return out, nil
		})
	huma.Register(s.api, s.op("list-database-operations", http.MethodGet, "/api/paas/databases/{id}/operations",
		"The database's operations, newest first: provisioning, backups, restores, deletion", "databases", 0, false),
		func(ctx context.Context, in *idPath) (*items[databaseOperationView], error) {
			p := principal(ctx)
			if _, err := s.store.GetDatabase(ctx, p.OrgID, in.ID); err != nil {
				return nil, s.problem(ctx, "database", err)
			}
			ops, err := s.store.ListDatabaseOperations(ctx, p.OrgID, in.ID, 100)
			if err != nil {
				return nil, s.problem(ctx, "database", err)
			}
			views := make([]databaseOperationView, len(ops))
			for i, o := range ops {
				views[i] = databaseOperationView{ID: o.ID, Kind: o.Kind, Status: o.Status, Reason: o.Reason, WorkflowID: o.WorkflowID,
					CreatedAt: o.CreatedAt, FinishedAt: o.FinishedAt}
			}
			return listOf(views), nil
		})
	huma.Register(s.api, s.op("download-database-backup", http.MethodGet, "/api/paas/databases/{id}/backups/{backupId}/download",
		"Download a completed backup (a deleted database's final backup too, until it expires)", "databases", http.StatusOK, false),
		func(ctx context.Context, in *backupDownloadInput) (*huma.StreamResponse, error) {
			if s.cfg.Backups == nil {
				return nil, huma.Error503ServiceUnavailable("this platform has no backup store configured (--backup-dir)")
			}
			b, err := s.store.BackupOfOrg(ctx, principal(ctx).OrgID, in.ID, in.BackupID)
			if err != nil {
				return nil, s.problem(ctx, "backup", err)
			}
			if b.Status != db.BackupCompleted {
				return nil, huma.Error409Conflict("the backup is " + b.Status + ": only a completed backup can be downloaded")
			}
			store, err := s.cfg.Backups.Get(b.Store)
			if err != nil {
				return nil, huma.Error503ServiceUnavailable("the backup is kept in the " + b.Store + " store, which this API is not given")
			}
			f, size, err := store.Open(ctx, b.DatabaseID, b.ID)
			if errors.Is(err, backups.ErrNotStored) {
				return nil, huma.Error404NotFound("the backup's stored object is gone")
			}
			if err != nil {
				return nil, s.problem(ctx, "backup", err)
			}
			return &huma.StreamResponse{Body: func(hctx huma.Context) {
				defer f.Close()
				hctx.SetHeader("Content-Type", "application/octet-stream")
				hctx.SetHeader("Content-Length", strconv.FormatInt(size, 10))
				hctx.SetHeader("Content-Disposition", `attachment; filename="`+b.ID+`.dump"`)
				if b.SHA256 != nil {
					hctx.SetHeader("X-Checksum-Sha256", *b.SHA256)
				}
				if _, err := io.Copy(hctx.BodyWriter(), f); err != nil {
					s.log.WarnContext(ctx, "send a backup to its owner", "backup_id", b.ID, "error", err)
				}
			}}, nil
		})
	// The node's transfers: plain handlers, streamed.
	s.mux.HandleFunc("PUT /api/paas/agent/databases/{databaseID}/backups/{backupID}", s.receiveBackup)
	s.mux.HandleFunc("GET /api/paas/agent/databases/{databaseID}/backups/{backupID}", s.sendBackup)
	s.registerBackupLocation()
}

// backupForNode authenticates the node and finds the backup, answering the request itself
// when it is refused.
func (s *Server) backupForNode(w http.ResponseWriter, r *http.Request) (db.Backup, string, bool) {
	fail := func(status int, detail string) (db.Backup, string, bool) {
		writeProblem(w, status, detail)
		return db.Backup{}, "", false
	}
	if s.cfg.Backups == nil {
		return fail(http.StatusServiceUnavailable, "this platform has no backup store configured (--backup-dir)")
	}
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return fail(http.StatusUnauthorized, "missing node token")
	}
	nodeID, err := s.store.NodeIDByTokenHash(r.Context(), HashToken(strings.TrimSpace(token)))
	switch {
	case errors.Is(err, db.ErrNotFound):
		return fail(http.StatusUnauthorized, "invalid node token")
	case errors.Is(err, db.ErrNodeRevoked):
		return fail(http.StatusUnauthorized, "this node is revoked: an administrator cut it off the platform")
	case err != nil:
		s.log.ErrorContext(r.Context(), "authenticate node", "error", err)
		return fail(http.StatusInternalServerError, "internal error")
	}
	databaseID, backupID := r.PathValue("databaseID"), r.PathValue("backupID")
	b, err := s.store.BackupForNode(r.Context(), databaseID, backupID, nodeID)
	switch {
	case errors.Is(err, db.ErrNotFound):
		return fail(http.StatusNotFound, "no such backup of this database")
	case errors.Is(err, db.ErrBackupNotForNode):
		s.log.WarnContext(r.Context(), "node asked for a backup of a database it does not run", "node_id", nodeID, "database_id", databaseID, "backup_id", backupID)
		return fail(http.StatusForbidden, "database "+databaseID+" is not placed on this node: its backups are not this node's")
	case err != nil:
		s.log.ErrorContext(r.Context(), "find backup", "backup_id", backupID, "error", err)
		return fail(http.StatusInternalServerError, "internal error")
	}
	return b, nodeID, true
}

// receiveBackup stores a running backup's dump as the node streams it, and answers what the
// store received.
func (s *Server) receiveBackup(w http.ResponseWriter, r *http.Request) {
	b, nodeID, store, ok := s.fileBackupForNode(w, r, db.BackupRunning, "only a running backup takes an upload")
	if !ok {
		return
	}
	size, sum, err := store.Put(r.Context(), b.DatabaseID, b.ID, r.Body, MaxBackupBytes)
	if errors.Is(err, backups.ErrTooLarge) {
		writeProblem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("a backup may hold at most %d bytes", int64(MaxBackupBytes)))
		return
	}
	if err != nil {
		s.log.ErrorContext(r.Context(), "store backup", "database_id", b.DatabaseID, "backup_id", b.ID, "node_id", nodeID, "error", err)
		writeProblem(w, http.StatusInternalServerError, "the backup could not be stored")
		return
	}
	s.log.InfoContext(r.Context(), "backup stored", "database_id", b.DatabaseID, "backup_id", b.ID, "node_id", nodeID, "size_bytes", size)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"size_bytes": size, "sha256": sum}) //nolint:errcheck
}

// sendBackup streams a completed backup to the node that restores it.
func (s *Server) sendBackup(w http.ResponseWriter, r *http.Request) {
	b, _, store, ok := s.fileBackupForNode(w, r, db.BackupCompleted, "only a completed backup can be read")
	if !ok {
		return
	}
	f, size, err := store.Open(r.Context(), b.DatabaseID, b.ID)
	if errors.Is(err, backups.ErrNotStored) {
		writeProblem(w, http.StatusNotFound, "the backup store holds no object for this backup")
		return
	}
	if err != nil {
		s.log.ErrorContext(r.Context(), "open backup", "backup_id", b.ID, "error", err)
		writeProblem(w, http.StatusInternalServerError, "the backup could not be read")
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	if _, err := io.Copy(w, f); err != nil {
		s.log.WarnContext(r.Context(), "send backup", "backup_id", b.ID, "error", err)
	}
}

// fileBackupForNode is what both transfer routes check first: the backup is the calling node's
// (backupForNode), in status want (409 with refusal otherwise), and kept by the file store.
func (s *Server) fileBackupForNode(w http.ResponseWriter, r *http.Request, want, refusal string) (db.Backup, string, backups.Store, bool) {
	b, nodeID, ok := s.backupForNode(w, r)
	if !ok {
		return db.Backup{}, "", nil, false
	}
	if b.Status != want {
		writeProblem(w, http.StatusConflict, "the backup is "+b.Status+": "+refusal)
		return db.Backup{}, "", nil, false
	}
	store, ok := s.fileStoreFor(w, b)
	if !ok {
		return db.Backup{}, "", nil, false
	}
	return b, nodeID, store, true
}

// fileStoreFor is the file store for a node's transfer through the API: a backup kept in
// another store (S3) is refused with 409, the node reaches that store itself.
func (s *Server) fileStoreFor(w http.ResponseWriter, b db.Backup) (backups.Store, bool) {
	if b.Store != db.BackupStoreFile {
		writeProblem(w, http.StatusConflict, "the backup is kept in the "+b.Store+" store: the node transfers it there itself (GET .../location)")
		return nil, false
	}
	store, err := s.cfg.Backups.Get(b.Store)
	if err != nil {
		writeProblem(w, http.StatusServiceUnavailable, "this platform has no file backup store configured (--backup-dir)")
		return nil, false
	}
	return store, true
}

// writeProblem answers an RFC 9457 problem from a plain handler.
func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"title": http.StatusText(status), "status": status, "detail": detail}) //nolint:errcheck
}
