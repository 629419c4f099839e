-- Scheduled backups: each database is backed up on its interval by a Temporal Schedule
-- (database-backups/<id>), daily unless its owner says otherwise (0: no schedule), and keeps its
-- newest backup_retention scheduled backups.
ALTER TABLE databases ADD COLUMN backup_interval_seconds integer NOT NULL DEFAULT 86400 CHECK (backup_interval_seconds >= 0);
ALTER TABLE databases ADD COLUMN backup_retention integer NOT NULL DEFAULT 7 CHECK (backup_retention BETWEEN 1 AND 100);
