-- The platform foundation: tenants, auth, catalogue (plans, runtimes, regions), nodes,
-- applications and their deployments with build logs.

CREATE TABLE organizations (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email      text NOT NULL,
    name       text NOT NULL,
    role       text NOT NULL CHECK (role IN ('admin', 'customer')),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE memberships (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id     uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    role       text NOT NULL DEFAULT 'owner',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, org_id)
);

-- Tokens are random 256-bit values; only their SHA-256 is stored.
CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   bytea NOT NULL UNIQUE,
    name         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);

-- Prices are integer minor units (cents) per hour per instance.
CREATE TABLE plans (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug                 text NOT NULL UNIQUE,
    name                 text NOT NULL,
    cpu_millis           integer NOT NULL CHECK (cpu_millis > 0),
    memory_mb            integer NOT NULL CHECK (memory_mb >= 6),
    price_per_hour_minor bigint NOT NULL CHECK (price_per_hour_minor >= 0),
    currency             text NOT NULL DEFAULT 'USD',
    active               boolean NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE runtimes (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug       text NOT NULL UNIQUE,
    name       text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('node', 'python', 'php', 'dockerfile')),
    version    text NOT NULL DEFAULT '',
    base_image text NOT NULL DEFAULT '',
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE regions (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug       text NOT NULL UNIQUE,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE nodes (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                    text NOT NULL UNIQUE,
    region_id               uuid NOT NULL REFERENCES regions (id),
    host                    text NOT NULL DEFAULT '',
    registration_token_hash bytea UNIQUE,
    node_token_hash         bytea UNIQUE,
    registered_at           timestamptz,
    last_heartbeat_at       timestamptz,
    cpus                    integer NOT NULL DEFAULT 0,
    memory_mb               bigint NOT NULL DEFAULT 0,
    containers              integer NOT NULL DEFAULT 0,
    agent_version           text NOT NULL DEFAULT '',
    created_at              timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE applications (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id                uuid NOT NULL REFERENCES organizations (id),
    name                  text NOT NULL UNIQUE,
    runtime_id            uuid NOT NULL REFERENCES runtimes (id),
    plan_id               uuid NOT NULL REFERENCES plans (id),
    region_id             uuid NOT NULL REFERENCES regions (id),
    node_id               uuid REFERENCES nodes (id),
    git_url               text NOT NULL,
    git_branch            text NOT NULL,
    status                text NOT NULL DEFAULT 'created',
    url                   text NOT NULL DEFAULT '',
    current_deployment_id uuid,
    current_instance      text NOT NULL DEFAULT '',
    -- The workflow that holds the app's operation lock; NULL when the app is idle.
    active_workflow_id    text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX applications_org_idx ON applications (org_id);

CREATE TABLE deployments (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    app_id         uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    status         text NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'building', 'deploying', 'succeeded', 'failed')),
    workflow_id    text NOT NULL,
    git_url        text NOT NULL,
    git_branch     text NOT NULL,
    commit_sha     text NOT NULL DEFAULT '',
    image          text NOT NULL DEFAULT '',
    failure_reason text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    finished_at    timestamptz
);
CREATE INDEX deployments_app_idx ON deployments (app_id, created_at DESC);

ALTER TABLE applications
    ADD CONSTRAINT applications_current_deployment_fk
    FOREIGN KEY (current_deployment_id) REFERENCES deployments (id) ON DELETE SET NULL;

-- Build output arrives in chunks from the node; the unique key makes a re-sent chunk a no-op.
CREATE TABLE deployment_log_chunks (
    id            bigserial PRIMARY KEY,
    deployment_id uuid NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    source        text NOT NULL,
    attempt       integer NOT NULL,
    seq           integer NOT NULL,
    body          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (deployment_id, source, attempt, seq)
);

INSERT INTO regions (slug, name) VALUES ('local', 'Local');

INSERT INTO plans (slug, name, cpu_millis, memory_mb, price_per_hour_minor) VALUES
    ('starter',  'Starter',  250,  256,  1),
    ('standard', 'Standard', 500,  512,  2),
    ('pro',      'Pro',      1000, 1024, 4);

INSERT INTO runtimes (slug, name, kind, version) VALUES
    ('node',       'Node.js',    'node',       '20'),
    ('python',     'Python',     'python',     '3.11'),
    ('php',        'PHP',        'php',        '8.2'),
    ('dockerfile', 'Dockerfile', 'dockerfile', '');
