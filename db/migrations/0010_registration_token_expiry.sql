-- Registration tokens expire: a token copied into a ticket or a shell history is worth
-- nothing after its time (24 h unless the API is configured otherwise).
ALTER TABLE nodes ADD COLUMN registration_token_expires_at timestamptz;

-- Tokens issued before expiry existed get the default from now on.
UPDATE nodes SET registration_token_expires_at = now() + interval '24 hours'
    WHERE registration_token_hash IS NOT NULL;

-- A token always has an expiry, and a consumed token leaves none behind.
ALTER TABLE nodes ADD CONSTRAINT nodes_registration_token_expiry_check
    CHECK ((registration_token_hash IS NULL) = (registration_token_expires_at IS NULL));
