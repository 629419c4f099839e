-- Node health: what each heartbeat reports about the machine, liveness judged by the node's
-- own heartbeat interval with its transitions recorded, and the administrators' verdict on a
-- node (cordon, and later drain and revoke).

-- pending until the agent registers; online/offline are written at the transition only (a
-- heartbeat after silence, the control worker's sweep), so each one is recorded once.
ALTER TABLE nodes ADD COLUMN liveness text NOT NULL DEFAULT 'pending'
    CHECK (liveness IN ('pending', 'online', 'offline'));
ALTER TABLE nodes ADD COLUMN admin_state text NOT NULL DEFAULT 'active'
    CHECK (admin_state IN ('active', 'cordoned', 'draining', 'drained', 'revoked'));
-- As the agent last reported it; NULL (an agent that never said) counts as 10 s.
ALTER TABLE nodes ADD COLUMN heartbeat_interval_seconds integer
    CHECK (heartbeat_interval_seconds > 0);
-- The latest heartbeat's figures; NULL where the agent could not read one.
ALTER TABLE nodes ADD COLUMN cpu_percent double precision;
ALTER TABLE nodes ADD COLUMN memory_used_mb bigint;
ALTER TABLE nodes ADD COLUMN memory_total_mb bigint;
ALTER TABLE nodes ADD COLUMN disk_used_mb bigint;
ALTER TABLE nodes ADD COLUMN disk_total_mb bigint;
ALTER TABLE nodes ADD COLUMN load1 double precision;
ALTER TABLE nodes ADD COLUMN load5 double precision;
ALTER TABLE nodes ADD COLUMN load15 double precision;

-- Existing nodes start where the old 30 s rule put them.
UPDATE nodes SET liveness = CASE
    WHEN registered_at IS NULL THEN 'pending'
    WHEN last_heartbeat_at > now() - interval '30 seconds' THEN 'online'
    ELSE 'offline' END;

-- One row per heartbeat, kept 24 hours (the control worker deletes older ones).
CREATE TABLE node_metrics (
    node_id         uuid NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    at              timestamptz NOT NULL,
    cpu_percent     double precision,
    memory_used_mb  bigint,
    memory_total_mb bigint,
    disk_used_mb    bigint,
    disk_total_mb   bigint,
    load1           double precision,
    load5           double precision,
    load15          double precision,
    containers      integer,
    PRIMARY KEY (node_id, at)
);
-- The retention delete walks samples by age across nodes.
CREATE INDEX node_metrics_at_idx ON node_metrics (at);

-- What happened to a node: online, offline, registered, cordoned, uncordoned, … (kind is free
-- text so later states add kinds without a migration).
CREATE TABLE node_events (
    id      bigserial PRIMARY KEY,
    node_id uuid NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    at      timestamptz NOT NULL DEFAULT now(),
    kind    text NOT NULL,
    detail  text NOT NULL DEFAULT ''
);
CREATE INDEX node_events_node_idx ON node_events (node_id, id DESC);
