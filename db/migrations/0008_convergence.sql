-- Convergence: what each node last reported running, compared with what the control plane
-- wants (an app's status, release and instance count), starts heal operations.

-- The node's last report of every SkyPanel container it holds, by app: replaced whole at each
-- report (every few seconds), so it is one row per node.
CREATE TABLE node_reports (
    node_id     uuid PRIMARY KEY REFERENCES nodes (id) ON DELETE CASCADE,
    received_at timestamptz NOT NULL,
    -- {"<app id>": [{"name": …, "release_id": …, "state": …}, …], …}
    apps        jsonb NOT NULL
);

-- A running app the platform stopped healing (its heals kept failing, or its instances kept
-- dying after each): why, and since when. Cleared by the app's next successful operation
-- other than a heal (a deploy, a restart, …).
ALTER TABLE applications ADD COLUMN degraded_reason text NOT NULL DEFAULT '';
ALTER TABLE applications ADD COLUMN degraded_at timestamptz;
