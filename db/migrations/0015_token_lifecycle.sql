-- API tokens expire (optional for customers, 90 days by default for admins) and are listed
-- by a prefix of their plain value, which is shown once and never stored.
ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;
ALTER TABLE api_tokens ADD COLUMN prefix text NOT NULL DEFAULT '';

-- Admin tokens made before expiry existed get the admins' default from now.
UPDATE api_tokens t SET expires_at = now() + interval '90 days'
FROM users u WHERE u.id = t.user_id AND u.role = 'admin' AND t.expires_at IS NULL;

CREATE INDEX api_tokens_user ON api_tokens (user_id, created_at);
