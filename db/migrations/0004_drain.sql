-- How long an app's old instances may take to finish their requests when a rollout replaces or
-- removes them: nginx's old workers get this long, then each container SIGTERM and this long
-- again before SIGKILL. 1 to 120 seconds.
ALTER TABLE applications ADD COLUMN drain_seconds integer NOT NULL DEFAULT 10 CHECK (drain_seconds BETWEEN 1 AND 120);
