-- Managed databases (docs/databases.md): an admin-managed catalogue of engine versions, the
-- database plans, the databases themselves with their own operation queue, and the links that
-- give an app a database's connection variables.

-- One engine version as a node runs it. env and command may name {{user}}, {{password}},
-- {{database}} and {{port}}, filled in on the node; connection_vars are the variables a linked
-- app gets, templates over {{host}}, {{port}}, {{user}}, {{password}} and {{database}}, filled in
-- by the control plane and sealed for the app at once. dump_command and restore_command run
-- inside the database's container (backups).
CREATE TABLE database_engines (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    engine          text NOT NULL CHECK (engine IN ('postgresql', 'mysql', 'mongodb', 'redis')),
    version         text NOT NULL CHECK (version ~ '^[0-9A-Za-z][0-9A-Za-z._-]{0,31}$'),
    image           text NOT NULL CHECK (image <> ''),
    port            integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    data_dir        text NOT NULL CHECK (data_dir LIKE '/%'),
    run_user        text NOT NULL DEFAULT '',
    env             jsonb NOT NULL DEFAULT '{}',
    command         jsonb NOT NULL DEFAULT '[]',
    health_command  jsonb NOT NULL,
    dump_command    jsonb NOT NULL DEFAULT '[]',
    restore_command jsonb NOT NULL DEFAULT '[]',
    connection_vars jsonb NOT NULL DEFAULT '{}',
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (engine, version)
);

-- Database plans are a table of their own, not a kind of the app plans: they carry storage and
-- no build limits, and a foreign key keeps an app plan from ever being given to a database.
-- Prices are integer minor units per hour, as the app plans'.
CREATE TABLE database_plans (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug                 text NOT NULL UNIQUE,
    name                 text NOT NULL,
    cpu_millis           integer NOT NULL CHECK (cpu_millis > 0),
    memory_mb            integer NOT NULL CHECK (memory_mb >= 64),
    storage_mb           integer NOT NULL CHECK (storage_mb >= 64),
    price_per_hour_minor bigint NOT NULL CHECK (price_per_hour_minor >= 0),
    currency             text NOT NULL DEFAULT 'USD',
    active               boolean NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

INSERT INTO database_plans (slug, name, cpu_millis, memory_mb, storage_mb, price_per_hour_minor) VALUES
    ('db-small',  'Database Small',  500,  256,  1024, 1),
    ('db-medium', 'Database Medium', 1000, 1024, 10240, 3);

CREATE TABLE databases (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id             uuid NOT NULL REFERENCES organizations (id),
    name               text NOT NULL CHECK (name ~ '^[a-z][a-z0-9-]{0,38}[a-z0-9]$'),
    engine_id          uuid NOT NULL REFERENCES database_engines (id),
    plan_id            uuid NOT NULL REFERENCES database_plans (id),
    region_id          uuid NOT NULL REFERENCES regions (id),
    node_id            uuid REFERENCES nodes (id),
    -- The names the engine creates at its first start, made by the platform from [a-z0-9_].
    db_user            text NOT NULL CHECK (db_user ~ '^[a-z][a-z0-9_]{0,31}$'),
    db_name            text NOT NULL CHECK (db_name ~ '^[a-z][a-z0-9_]{0,62}$'),
    -- Sealed by the secrets package, bound to database_password:<id>: never plaintext.
    password_sealed    text NOT NULL CHECK (password_sealed LIKE 'v1:%'),
    status             text NOT NULL DEFAULT 'provisioning'
                       CHECK (status IN ('provisioning', 'available', 'failed', 'deleting', 'deleted')),
    status_reason      text NOT NULL DEFAULT '',
    -- The workflow that holds the database's turn; NULL when it is idle.
    active_workflow_id text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz
);
-- A name is the organization's while the database lives.
CREATE UNIQUE INDEX databases_org_name ON databases (org_id, name) WHERE status <> 'deleted';
CREATE INDEX databases_node ON databases (node_id) WHERE status <> 'deleted';

-- A database's queue: the same rules as an app's (app_operations), one operation at a time.
CREATE TABLE database_operations (
    id            uuid PRIMARY KEY,
    seq           bigserial NOT NULL UNIQUE,
    database_id   uuid NOT NULL REFERENCES databases (id) ON DELETE CASCADE,
    kind          text NOT NULL,
    workflow_type text NOT NULL,
    workflow_id   text NOT NULL UNIQUE,
    input         jsonb NOT NULL,
    requested_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    requested_via text NOT NULL DEFAULT 'api',
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    reason        text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz
);
CREATE INDEX database_operations_active_idx ON database_operations (database_id, seq) WHERE status IN ('queued', 'running');
CREATE UNIQUE INDEX database_operations_one_running ON database_operations (database_id) WHERE status = 'running';

-- An app linked to a database gets its connection variables (a link source, not user
-- variables: a user variable of the same name wins). A linked database cannot be deleted.
CREATE TABLE app_database_links (
    app_id      uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    database_id uuid NOT NULL REFERENCES databases (id) ON DELETE RESTRICT,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, database_id)
);
CREATE INDEX app_database_links_database ON app_database_links (database_id);

-- The catalogue's defaults: the official images' names (built locally by
-- scripts/base-images.sh where no registry is reachable).
INSERT INTO database_engines (engine, version, image, port, data_dir, run_user, env, command, health_command, dump_command, restore_command, connection_vars) VALUES
    ('postgresql', '15', 'postgres:15-bookworm', 5432, '/var/lib/postgresql/data', '',
     '{"POSTGRES_USER": "{{user}}", "POSTGRES_PASSWORD": "{{password}}", "POSTGRES_DB": "{{database}}", "PGDATA": "/var/lib/postgresql/data/pgdata"}',
     '[]',
     '["pg_isready", "-h", "127.0.0.1", "-p", "5432"]',
     '["sh", "-c", "exec pg_dump -Fc -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\""]',
     '["sh", "-c", "exec pg_restore --clean --if-exists --no-owner --exit-on-error --single-transaction -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\""]',
     '{"DATABASE_URL": "postgresql://{{user}}:{{password}}@{{host}}:{{port}}/{{database}}", "PGHOST": "{{host}}", "PGPORT": "{{port}}", "PGUSER": "{{user}}", "PGPASSWORD": "{{password}}", "PGDATABASE": "{{database}}"}'),
    -- Passwords reach the clients through MYSQL_PWD, never a command line; root only from
    -- inside the container (MARIADB_ROOT_HOST).
    ('mysql', '10.11', 'mariadb:10.11', 3306, '/var/lib/mysql', '',
     '{"MARIADB_ROOT_PASSWORD": "{{password}}", "MARIADB_ROOT_HOST": "localhost", "MARIADB_USER": "{{user}}", "MARIADB_PASSWORD": "{{password}}", "MARIADB_DATABASE": "{{database}}"}',
     '[]',
     '["sh", "-c", "MYSQL_PWD=\"$MARIADB_PASSWORD\" exec mariadb -h 127.0.0.1 -P 3306 -u \"$MARIADB_USER\" -e ''SELECT 1'' \"$MARIADB_DATABASE\" >/dev/null"]',
     '["sh", "-c", "MYSQL_PWD=\"$MARIADB_PASSWORD\" exec mariadb-dump -u \"$MARIADB_USER\" --single-transaction --routines --triggers --events --hex-blob \"$MARIADB_DATABASE\""]',
     '["sh", "-c", "MYSQL_PWD=\"$MARIADB_PASSWORD\" exec mariadb -u \"$MARIADB_USER\" \"$MARIADB_DATABASE\""]',
     '{"DATABASE_URL": "mysql://{{user}}:{{password}}@{{host}}:{{port}}/{{database}}", "MYSQL_HOST": "{{host}}", "MYSQL_PORT": "{{port}}", "MYSQL_USER": "{{user}}", "MYSQL_PASSWORD": "{{password}}", "MYSQL_DATABASE": "{{database}}"}'),
    -- The password goes into a private config file rather than redis-server's arguments, which
    -- docker inspect and every host user's ps would show. A dump goes through a file:
    -- redis-cli 7.0's --rdb - leaves an end marker on stdout.
    ('redis', '7', 'redis:7-bookworm', 6379, '/data', '999:999',
     '{"REDIS_PASSWORD": "{{password}}"}',
     '["sh", "-c", "umask 077 && printf ''requirepass \"%s\"\\n'' \"$(printf %s \"$REDIS_PASSWORD\" | sed ''s/[\\\\\"]/\\\\&/g'')\" >/tmp/redis.conf && exec redis-server /tmp/redis.conf --appendonly yes --dir /data"]',
     '["sh", "-c", "[ \"$(REDISCLI_AUTH=\"$REDIS_PASSWORD\" redis-cli -h 127.0.0.1 -p 6379 ping)\" = PONG ]"]',
     '["sh", "-c", "f=$(mktemp /data/.dump.XXXXXX) && REDISCLI_AUTH=\"$REDIS_PASSWORD\" redis-cli -h 127.0.0.1 -p 6379 --rdb \"$f\" >&2 && cat \"$f\"; s=$?; rm -f \"$f\"; exit $s"]',
     '[]',
     '{"REDIS_URL": "redis://:{{password}}@{{host}}:{{port}}/0", "REDIS_HOST": "{{host}}", "REDIS_PORT": "{{port}}", "REDIS_PASSWORD": "{{password}}"}');
