-- Certificates of custom domains (ACME). The platform has one account per CA directory; its key
-- and each certificate's key are sealed with the platform keyring (labels acme_account:<dir>
-- and certificate_key:<hostname>), so any node that serves the app can be given them.
CREATE TABLE acme_accounts (
    directory_url text PRIMARY KEY,
    email         text NOT NULL DEFAULT '',
    key_sealed    text NOT NULL,
    uri           text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE app_domains
    ADD COLUMN certificate_pem   text NOT NULL DEFAULT '',
    ADD COLUMN key_sealed        text NOT NULL DEFAULT '',
    ADD COLUMN serial            text NOT NULL DEFAULT '',
    ADD COLUMN not_before        timestamptz,
    ADD COLUMN not_after         timestamptz,
    -- when to renew: two thirds of the lifetime, or earlier when the CA's renewal info says so
    ADD COLUMN renew_after       timestamptz,
    -- failed attempts in a row, and when the next may run (backoff within the CA's limits)
    ADD COLUMN failures          integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN installed_node_id uuid;
