-- Each node's own keys: what a node must read (an app's environment values) reaches it sealed
-- under its key, never the platform's. Each key is stored sealed under the platform keyring
-- (bound to its node and id). The newest is the one values are sealed with; the one before it
-- still opens what was sealed just before a rotation.
CREATE TABLE node_keys (
    node_id    uuid NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    key_id     text NOT NULL,
    sealed     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, key_id)
);
