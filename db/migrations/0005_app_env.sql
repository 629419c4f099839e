-- An app's environment variables. Values are sealed by the secrets package (AES-256-GCM
-- envelope "v1:<key id>:...", bound to app and key): the database never holds a plaintext value.
CREATE TABLE app_env (
    app_id       uuid NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    key          text NOT NULL CHECK (key ~ '^[A-Z_][A-Z0-9_]*$' AND octet_length(key) <= 256),
    value_sealed text NOT NULL CHECK (value_sealed LIKE 'v1:%'),
    build_time   boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, key)
);

-- A config change is a release too: the current image with the new variables.
ALTER TABLE releases DROP CONSTRAINT releases_kind_check;
ALTER TABLE releases ADD CONSTRAINT releases_kind_check CHECK (kind IN ('deploy', 'rollback', 'config'));
