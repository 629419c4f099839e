-- Runtimes name the images their buildpack builds and runs apps with; `auto` detects the stack.
-- Releases: every successful deployment (and every rollback) is a numbered release.

ALTER TABLE runtimes DROP CONSTRAINT runtimes_kind_check;
ALTER TABLE runtimes ADD CONSTRAINT runtimes_kind_check CHECK (kind IN ('auto', 'node', 'python', 'php', 'dockerfile'));
ALTER TABLE runtimes ADD COLUMN build_image text NOT NULL DEFAULT '';
ALTER TABLE runtimes ADD COLUMN run_image text NOT NULL DEFAULT '';
ALTER TABLE runtimes DROP COLUMN base_image;

-- Production defaults are the official images; `make run`/`make test` build local equivalents
-- under the same names (scripts/base-images.sh) because no registry is reachable there.
UPDATE runtimes SET build_image = 'node:20-bookworm-slim', run_image = 'node:20-bookworm-slim' WHERE slug = 'node';
UPDATE runtimes SET build_image = 'python:3.11-slim-bookworm', run_image = 'python:3.11-slim-bookworm' WHERE slug = 'python';
UPDATE runtimes SET build_image = 'php:8.2-apache-bookworm', run_image = 'php:8.2-apache-bookworm' WHERE slug = 'php';
INSERT INTO runtimes (slug, name, kind) VALUES ('auto', 'Detect from the repository', 'auto');

-- Who started a deployment.
ALTER TABLE deployments ADD COLUMN created_by uuid REFERENCES users (id) ON DELETE SET NULL;

-- A release is what an app serves: the image of a successful deployment, or of an earlier
-- release restored by a rollback, with the config it runs with. operation_id (the deployment's
-- id, or the rollback's) makes recording a release idempotent.
CREATE TABLE releases (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    app_id         uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    version        integer NOT NULL CHECK (version > 0),
    operation_id   uuid NOT NULL UNIQUE,
    kind           text NOT NULL CHECK (kind IN ('deploy', 'rollback')),
    deployment_id  uuid REFERENCES deployments (id) ON DELETE SET NULL,
    restored_version integer,
    commit_sha     text NOT NULL DEFAULT '',
    image          text NOT NULL,
    config         jsonb NOT NULL DEFAULT '{}',
    description    text NOT NULL,
    created_by     uuid REFERENCES users (id) ON DELETE SET NULL,
    image_removed  boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (app_id, version)
);

ALTER TABLE applications ADD COLUMN current_release_id uuid REFERENCES releases (id) ON DELETE SET NULL;
