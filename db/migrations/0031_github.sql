-- GitHub (docs/github.md): a user's OAuth connection (its token sealed under the platform
-- keyring, label secrets.GitHubToken), the single-use states of authorizations under way, the
-- webhook deliveries already taken (GitHub redelivers; one delivery starts work once), apps
-- connected to a repository, and the commit a deployment was asked to build. Idempotent: the
-- db tests run the migrations twice.
CREATE TABLE IF NOT EXISTS github_connections (
    user_id        uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    github_user_id bigint NOT NULL,
    github_login   text NOT NULL,
    token_sealed   text NOT NULL,
    scopes         text NOT NULL DEFAULT '',
    connected_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS github_oauth_states (
    nonce      text PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS github_deliveries (
    delivery_id text PRIMARY KEY,
    event       text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- github_repository is owner/repo ('' for an app from a plain Git URL); its clone URL is in
-- git_url. github_user_id is whose token clones it and manages its webhook.
ALTER TABLE applications ADD COLUMN IF NOT EXISTS github_repository text NOT NULL DEFAULT '';
ALTER TABLE applications ADD COLUMN IF NOT EXISTS github_user_id uuid REFERENCES users (id) ON DELETE SET NULL;
ALTER TABLE applications ADD COLUMN IF NOT EXISTS auto_deploy boolean NOT NULL DEFAULT false;
ALTER TABLE applications ADD COLUMN IF NOT EXISTS github_hook_id bigint;
CREATE INDEX IF NOT EXISTS applications_github_repository_idx ON applications (lower(github_repository), git_branch)
    WHERE github_repository <> '';

-- requested_commit: the exact commit asked for ('' = the branch's head when it is cloned).
ALTER TABLE deployments ADD COLUMN IF NOT EXISTS requested_commit text NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN IF NOT EXISTS commit_message text NOT NULL DEFAULT '';
ALTER TABLE releases ADD COLUMN IF NOT EXISTS commit_message text NOT NULL DEFAULT '';
-- One deployment of a commit of an app waits or runs at a time: EnqueueOperation checks it
-- under the app's row lock (not an index on deployments.status, which an operation that ends
-- without its workflow, e.g. terminated, may leave behind).
