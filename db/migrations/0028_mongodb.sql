-- MongoDB in the catalogue (docs/databases.md). The row follows the official mongo image's
-- conventions (MONGO_INITDB_ROOT_*, data in /data/db, the root user in admin); no MongoDB is
-- reachable here, so scripts/base-images.sh builds a local stand-in under the same name: FerretDB
-- over a private PostgreSQL. Health, dump, restore and count are skypanel-mongo
-- (cmd/skypanel-mongo), which speaks the wire protocol through the Go driver and which the
-- image carries. It runs as uid 999, so the commands the node runs in the container can write
-- their spool file beside the data.
INSERT INTO database_engines (engine, version, image, port, data_dir, run_user, env, command,
                              health_command, dump_command, restore_command, count_command, connection_vars)
VALUES ('mongodb', '7.0', 'mongo:7.0', 27017, '/data/db', '999:999',
        '{"MONGO_INITDB_ROOT_USERNAME": "{{user}}", "MONGO_INITDB_ROOT_PASSWORD": "{{password}}", "MONGO_INITDB_DATABASE": "{{database}}"}',
        '[]',
        '["skypanel-mongo", "ping"]',
        '["skypanel-mongo", "dump"]',
        '["skypanel-mongo", "restore"]',
        '["skypanel-mongo", "count"]',
        '{"MONGODB_URI": "mongodb://{{user}}:{{password}}@{{host}}:{{port}}/{{database}}?authSource=admin", "MONGODB_HOST": "{{host}}", "MONGODB_PORT": "{{port}}", "MONGODB_USER": "{{user}}", "MONGODB_PASSWORD": "{{password}}", "MONGODB_DATABASE": "{{database}}"}')
ON CONFLICT (engine, version) DO NOTHING;
