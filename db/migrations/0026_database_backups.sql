-- Backups of managed databases (docs/databases.md): one row per backup, whatever its store.
-- A backup is completed only once the control plane has read the stored object back and found
-- the size and SHA-256 the node computed while it streamed the dump.

-- What a restore reports: the rows (or keys) the database holds afterwards.
ALTER TABLE database_engines ADD COLUMN count_command jsonb NOT NULL DEFAULT '[]';

UPDATE database_engines SET count_command =
    '["sh", "-c", "exec psql -Atq -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" -c \"SELECT coalesce(sum((xpath(''/row/c/text()'', query_to_xml(format(''SELECT count(*) AS c FROM %I.%I'', schemaname, tablename), false, true, '''')))[1]::text::bigint), 0) FROM pg_tables WHERE schemaname NOT IN (''pg_catalog'', ''information_schema'')\""]'
WHERE engine = 'postgresql' AND version = '15';
UPDATE database_engines SET count_command =
    '["sh", "-c", "REDISCLI_AUTH=\"$REDIS_PASSWORD\" exec redis-cli -h 127.0.0.1 -p 6379 DBSIZE"]'
WHERE engine = 'redis' AND version = '7';

CREATE TABLE database_backups (
    id           uuid PRIMARY KEY,
    database_id  uuid NOT NULL REFERENCES databases (id) ON DELETE CASCADE,
    kind         text NOT NULL DEFAULT 'manual' CHECK (kind IN ('manual', 'scheduled', 'final')),
    status       text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    store        text NOT NULL DEFAULT 'filesystem',
    size_bytes   bigint,
    sha256       text CHECK (sha256 IS NULL OR sha256 ~ '^[0-9a-f]{64}$'),
    error        text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    completed_at timestamptz
);
CREATE INDEX database_backups_database ON database_backups (database_id, created_at DESC);
