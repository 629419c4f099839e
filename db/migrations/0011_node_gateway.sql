-- The node gateway: agents reach Temporal only through it, each authenticated by a client
-- certificate the control plane's CA issued it (docs/architecture.md, "The node gateway").

-- The gateway's own secrets, one row: the CA certificate (public), the CA's private key and the
-- key that authenticates the task tokens the gateway hands to nodes. Both keys are sealed with
-- the platform keyring (secrets.NodeCAKey, secrets.NodeTaskTokenKey), like every stored secret.
CREATE TABLE node_gateway_keys (
    singleton         boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    ca_certificate    text NOT NULL CHECK (ca_certificate LIKE '-----BEGIN CERTIFICATE-----%'),
    sealed_ca_key     text NOT NULL CHECK (sealed_ca_key LIKE 'v1:%'),
    sealed_token_key  text NOT NULL CHECK (sealed_token_key LIKE 'v1:%'),
    created_at        timestamptz NOT NULL DEFAULT now()
);

-- Every client certificate issued to a node. The gateway accepts a node's current one, and the
-- one it replaced for a short grace after a renewal (connections opened with it are still
-- open); older ones are superseded. Expired rows go when the node's next one is issued.
CREATE TABLE node_certificates (
    serial        text PRIMARY KEY,
    node_id       uuid NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    not_after     timestamptz NOT NULL,
    issued_at     timestamptz NOT NULL DEFAULT now(),
    superseded_at timestamptz
);
CREATE UNIQUE INDEX node_certificates_current_idx ON node_certificates (node_id) WHERE superseded_at IS NULL;

-- When an administrator revoked the node (admin_state 'revoked', which 0009 allows already).
ALTER TABLE nodes ADD COLUMN revoked_at timestamptz;
