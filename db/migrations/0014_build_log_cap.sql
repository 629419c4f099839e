-- A deployment's build log is capped: log_bytes counts what the nodes stored of it, and past the
-- cap one truncation line is stored (log_truncated) and the rest is dropped; the build goes on.
ALTER TABLE deployments ADD COLUMN log_bytes bigint NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN log_truncated boolean NOT NULL DEFAULT false;
