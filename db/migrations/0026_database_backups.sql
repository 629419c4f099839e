-- Backups of managed databases (docs/databases.md): one row per backup, whatever its store.
-- A backup is completed only once the control plane has read the stored object back and found
-- the size and SHA-256 the node computed while it streamed the dump.

-- What a restore reports: the rows (or keys) the database holds afterwards.
ALTER TABLE database_engines ADD COLUMN count_command jsonb NOT NULL DEFAULT '[]';

-- Verified against the local images by the docker tests (activities/node/docker/backup_test.go):
-- the counts are exact (ONLY: a partition or an inheriting table is not counted twice; base
-- tables only), the Redis restore loads the RDB into a private server on 127.0.0.1:6380 and has
-- the database replicate it (which replaces all its data while it runs), then promotes it back.
UPDATE database_engines SET count_command =
    '["sh", "-c", "exec psql -v ON_ERROR_STOP=1 -Atq -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" -c \"SELECT coalesce(sum((xpath(''/row/n/text()'', query_to_xml(format(''SELECT count(*) AS n FROM ONLY %I.%I'', schemaname, tablename), false, true, '''')))[1]::text::bigint), 0) FROM pg_tables WHERE schemaname !~ ''^pg_'' AND schemaname <> ''information_schema''\""]'
WHERE engine = 'postgresql' AND version = '15';
UPDATE database_engines SET count_command =
    '["sh", "-c", "MYSQL_PWD=\"$MARIADB_PASSWORD\" exec mariadb -u \"$MARIADB_USER\" -N -B -e \"SET SESSION group_concat_max_len = 4294967295; SET @b = CHAR(96 USING utf8mb4); SET @q = (SELECT CONCAT(''SELECT '', COALESCE(GROUP_CONCAT(CONCAT(''(SELECT COUNT(*) FROM '', @b, REPLACE(table_name, @b, CONCAT(@b, @b)), @b, '')'') SEPARATOR '' + ''), ''0'')) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = ''BASE TABLE''); PREPARE c FROM @q; EXECUTE c\" \"$MARIADB_DATABASE\""]'
WHERE engine = 'mysql' AND version = '10.11';
UPDATE database_engines SET count_command =
    '["sh", "-c", "REDISCLI_AUTH=\"$REDIS_PASSWORD\" exec redis-cli -h 127.0.0.1 -p 6379 DBSIZE"]',
    restore_command =
    '["sh", "-c", "set -eu\numask 077\nmain() { REDISCLI_AUTH=\"$REDIS_PASSWORD\" redis-cli -h 127.0.0.1 -p 6379 \"$@\"; }\nd=$(mktemp -d /data/.restore.XXXXXX)\np=\nlinked=\nfinish() {\n\ts=$?\n\ttrap \"\" HUP INT TERM\n\tif [ -n \"$p\" ]; then kill \"$p\" 2>/dev/null || :; wait \"$p\" 2>/dev/null || :; fi\n\tif [ -n \"$linked\" ]; then\n\t\tn=0\n\t\tuntil r=$(main replicaof no one 2>&1) && case $r in OK*) true ;; *) false ;; esac; do\n\t\t\tn=$((n + 1))\n\t\t\tif [ \"$n\" -gt 6000 ]; then echo \"the database is still a replica of the restore: restart its container\" >&2; break; fi\n\t\t\tsleep 0.1\n\t\tdone\n\t\ts=1\n\tfi\n\tif [ \"$s\" -ne 0 ] && [ -f \"$d/log\" ]; then tail -n 3 \"$d/log\" >&2; fi\n\trm -rf \"$d\"\n\texit \"$s\"\n}\ntrap finish EXIT\ntrap \"exit 1\" HUP INT TERM\ndeadline=$(($(date +%s) + 3600))\nin_time() { [ \"$(date +%s)\" -lt \"$deadline\" ] || { echo \"the restore took more than an hour\" >&2; exit 1; }; }\nserving() { kill -0 \"$p\" 2>/dev/null || { echo \"the backup did not load into the private server\" >&2; exit 1; }; in_time; }\ncat >\"$d/dump.rdb\"\nredis-server --port 6380 --bind 127.0.0.1 --dir \"$d\" --dbfilename dump.rdb --appendonly no --save \"\" --repl-diskless-sync-delay 0 --logfile \"$d/log\" &\np=$!\nuntil [ \"$(redis-cli -h 127.0.0.1 -p 6380 ping 2>/dev/null)\" = PONG ]; do serving; sleep 0.1; done\nr=$(main replicaof 127.0.0.1 6380)\ncase $r in OK*) linked=1 ;; *) echo \"replicaof: $r\" >&2; exit 1 ;; esac\nuntil main info replication | tr -d \"\\r\" | grep -qx \"master_link_status:up\"; do serving; sleep 0.1; done\nr=$(main replicaof no one)\ncase $r in OK*) linked= ;; *) echo \"replicaof no one: $r\" >&2; exit 1 ;; esac\nkill \"$p\"\nwait \"$p\" || :\np=\nwhile info=$(main info persistence | tr -d \"\\r\") && case $info in *aof_rewrite_in_progress:1*|*aof_rewrite_scheduled:1*) true ;; *) false ;; esac; do in_time; sleep 0.1; done\ncase $info in *aof_last_bgrewrite_status:err*) echo \"the restored data could not be written to the append-only file\" >&2; exit 1 ;; esac"]',
    -- Without the default 5-second delay, a dump (a replication sync) starts at once.
    command = '["sh", "-c", "umask 077 && printf ''requirepass \"%s\"\\n'' \"$(printf %s \"$REDIS_PASSWORD\" | sed ''s/[\\\\\"]/\\\\&/g'')\" >/tmp/redis.conf && exec redis-server /tmp/redis.conf --appendonly yes --dir /data --repl-diskless-sync-delay 0"]'
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
