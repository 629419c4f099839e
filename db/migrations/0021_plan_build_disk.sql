-- How much disk one build of an app on the plan may fill: its context and the layers its steps
-- write (the node stops a build past it, naming the limit). The node's --build-disk-mb applies
-- when a run's input names none.
ALTER TABLE plans ADD COLUMN build_disk_mb integer NOT NULL DEFAULT 10240
    CHECK (build_disk_mb BETWEEN 64 AND 204800);
