-- Per-app proxy limits on the node's nginx: concurrent client connections (past them, 429 for
-- this app only) and how long nginx waits for the app's answer. 0: the platform's defaults
-- (512 connections, 60 s).
ALTER TABLE applications ADD COLUMN max_connections integer NOT NULL DEFAULT 0
    CHECK (max_connections BETWEEN 0 AND 2048);
ALTER TABLE applications ADD COLUMN read_timeout_seconds integer NOT NULL DEFAULT 0
    CHECK (read_timeout_seconds BETWEEN 0 AND 3600);
