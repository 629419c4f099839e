-- Backup stores (docs/databases.md, Backup stores): a database's backups go to the filesystem
-- store of the control plane ('file') or to the platform's S3 bucket ('s3'), chosen when the
-- database is created. Each backup records the store and the object key it was written to, so
-- a restore, a download or an expiry reads from where the backup is, whatever the defaults say
-- later. Idempotent: the db tests run the migrations twice.
ALTER TABLE databases ADD COLUMN IF NOT EXISTS backup_store text NOT NULL DEFAULT 'file';
ALTER TABLE databases DROP CONSTRAINT IF EXISTS databases_backup_store_check;
ALTER TABLE databases ADD CONSTRAINT databases_backup_store_check CHECK (backup_store IN ('file', 's3'));

-- 0026 named the filesystem store 'filesystem'; the API and the flags call it 'file'.
UPDATE database_backups SET store = 'file' WHERE store = 'filesystem';
ALTER TABLE database_backups ALTER COLUMN store SET DEFAULT 'file';
ALTER TABLE database_backups DROP CONSTRAINT IF EXISTS database_backups_store_check;
ALTER TABLE database_backups ADD CONSTRAINT database_backups_store_check CHECK (store IN ('file', 's3'));
ALTER TABLE database_backups ADD COLUMN IF NOT EXISTS object_key text NOT NULL DEFAULT '';
UPDATE database_backups SET object_key = database_id::text || '/' || id::text || '.dump' WHERE object_key = '';
