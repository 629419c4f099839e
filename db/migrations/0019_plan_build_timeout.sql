-- How long one build of an app on the plan may run (the node fails a longer one, naming the
-- limit). The node's --build-timeout applies when a run's input names none.
ALTER TABLE plans ADD COLUMN build_timeout_seconds integer NOT NULL DEFAULT 900
    CHECK (build_timeout_seconds BETWEEN 60 AND 7200);
