-- The Temporal Web UI's codec sign-in: a decode-only session of its own, never the admin's API
-- token. Only its hash is stored; it ends with its expiry, or with the token it was signed in
-- with (revoking that token ends it).
CREATE TABLE codec_sessions (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_hash bytea NOT NULL UNIQUE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    api_token_id uuid NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX codec_sessions_expiry ON codec_sessions (expires_at);
