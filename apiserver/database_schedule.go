package apiserver

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/db"
	sptemporal "github.com/skypanel/skypanel/temporal"
)

type backupScheduleInput struct {
	ID   string `path:"id" maxLength:"64"`
	Body struct {
		BackupInterval  string `json:"backup_interval" minLength:"1" maxLength:"32" doc:"how often to back it up, a duration such as 24h or 6h; 0 for no scheduled backups"`
		BackupRetention int    `json:"backup_retention" minimum:"1" maximum:"100" doc:"how many scheduled backups to keep (the oldest go after the next scheduled backup)"`
	}
}

// registerDatabaseSchedule: a database's backup schedule changes after its creation. The row and
// the Temporal Schedule change together: if the Schedule cannot follow, the row is put back and
// the answer is a 503 that changed nothing.
func (s *Server) registerDatabaseSchedule() {
	huma.Register(s.api, s.op("set-database-backup-schedule", http.MethodPut, "/api/paas/databases/{id}/backup-schedule",
		"Change how often the database is backed up on its schedule, and how many scheduled backups are kept", "databases", 0, false),
		func(ctx context.Context, in *backupScheduleInput) (*body[databaseView], error) {
			interval, none, err := s.backupInterval(in.Body.BackupInterval)
			if err != nil {
				return nil, err
			}
			if none {
				interval = 0
			}
			p := principal(ctx)
			to := db.BackupSchedule{IntervalSeconds: int(interval / time.Second), Retention: in.Body.BackupRetention}
			before, d, err := s.store.SetDatabaseBackupSchedule(ctx, p.OrgID, in.ID, to)
			if err != nil {
				return nil, s.databaseProblem(ctx, err)
			}
			// A database still provisioning gets its Schedule from the row when it becomes
			// available.
			if d.Status != db.DatabaseProvisioning {
				if err := sptemporal.EnsureDatabaseBackupSchedule(ctx, s.temporal, d.ID, p.OrgID, interval); err != nil {
					s.log.ErrorContext(ctx, "change a database's backup schedule", "database_id", d.ID, "error", err)
					if _, _, undoErr := s.store.SetDatabaseBackupSchedule(context.WithoutCancel(ctx), p.OrgID, d.ID, before); undoErr != nil {
						s.log.ErrorContext(ctx, "put a database's backup schedule back", "database_id", d.ID, "error", undoErr)
					}
					return nil, huma.Error503ServiceUnavailable("the workflow service did not take the new schedule; nothing was changed, try again")
				}
			}
			s.log.InfoContext(ctx, "database backup schedule changed", "database_id", d.ID, "org_id", p.OrgID,
				"interval", interval.String(), "retention", to.Retention)
			return bodyOf(databaseViewOf(d)), nil
		})
}
