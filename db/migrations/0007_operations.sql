-- Every operation on an app enters the app's queue and runs in arrival order, one at a time.
-- The row is the operation's whole life: queued, running (its workflow started), then one of
-- the end states. seq is the arrival order.

CREATE TABLE app_operations (
    id            uuid PRIMARY KEY,
    seq           bigserial NOT NULL UNIQUE,
    app_id        uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    kind          text NOT NULL,
    -- The workflow that carries the operation out, and its input (ids and counts, never a
    -- secret): whoever takes the app's turn starts it from these alone.
    workflow_type text NOT NULL,
    workflow_id   text NOT NULL UNIQUE,
    input         jsonb NOT NULL,
    -- deploys only: the deployment the operation builds
    deployment_id uuid REFERENCES deployments (id) ON DELETE SET NULL,
    -- who asked: a user, or the platform (requested_by NULL, e.g. billing's suspension)
    requested_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    requested_via text NOT NULL DEFAULT 'api',
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'superseded')),
    reason        text NOT NULL DEFAULT '',
    superseded_by uuid REFERENCES app_operations (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz
);
-- The app's queue: what waits and what runs, in order.
CREATE INDEX app_operations_active_idx ON app_operations (app_id, seq) WHERE status IN ('queued', 'running');
-- At most one operation of an app runs at a time.
CREATE UNIQUE INDEX app_operations_one_running ON app_operations (app_id) WHERE status = 'running';

ALTER TABLE deployments DROP CONSTRAINT deployments_status_check;
ALTER TABLE deployments ADD CONSTRAINT deployments_status_check
    CHECK (status IN ('queued', 'building', 'deploying', 'succeeded', 'failed', 'cancelled', 'superseded'));
-- A deployment superseded by a newer deploy of the app while it waited names that one.
ALTER TABLE deployments ADD COLUMN superseded_by uuid REFERENCES deployments (id) ON DELETE SET NULL;
