-- Databases are billed in the same ledger as apps (docs/databases.md, Billing). A usage segment
-- and a charge have a subject: an app (app_id, app_name, as before) or a database (database_id,
-- database_name, one "instance" at its plan's price). Existing rows are apps'. A suspended
-- organization's databases are stopped, status 'suspended', never deleted.
-- Written to be applied again harmlessly.

ALTER TABLE usage_segments ADD COLUMN IF NOT EXISTS subject_kind text NOT NULL DEFAULT 'app';
ALTER TABLE usage_segments ADD COLUMN IF NOT EXISTS database_id uuid;
ALTER TABLE usage_segments ADD COLUMN IF NOT EXISTS database_name text;
ALTER TABLE usage_segments ALTER COLUMN app_id DROP NOT NULL;
ALTER TABLE usage_segments ALTER COLUMN app_name DROP NOT NULL;
ALTER TABLE usage_segments DROP CONSTRAINT IF EXISTS usage_segments_subject;
ALTER TABLE usage_segments ADD CONSTRAINT usage_segments_subject CHECK (
    (subject_kind = 'app' AND app_id IS NOT NULL AND app_name IS NOT NULL AND database_id IS NULL AND database_name IS NULL)
    OR (subject_kind = 'database' AND database_id IS NOT NULL AND database_name IS NOT NULL AND app_id IS NULL AND app_name IS NULL
        AND instances = 1));
-- One open segment per database, as per app (usage_segments_open).
CREATE UNIQUE INDEX IF NOT EXISTS usage_segments_open_database ON usage_segments (database_id) WHERE ended_at IS NULL;

-- A database's charge names it (no foreign key: the ledger outlives it). Its key is
-- charge:database:<database>:<period start>; an app's keeps charge:<app>:<period start>.
ALTER TABLE ledger_entries ADD COLUMN IF NOT EXISTS database_id uuid;
ALTER TABLE ledger_entries ADD COLUMN IF NOT EXISTS database_name text;

ALTER TABLE databases DROP CONSTRAINT IF EXISTS databases_status_check;
ALTER TABLE databases ADD CONSTRAINT databases_status_check
    CHECK (status IN ('provisioning', 'available', 'failed', 'deleting', 'deleted', 'suspended'));

-- Databases already available when billing reaches them start their usage now.
INSERT INTO usage_segments (subject_kind, database_id, database_name, org_id, instances, price_per_hour, currency, started_at)
SELECT 'database', d.id, d.name, d.org_id, 1, p.price_per_hour_minor, coalesce(w.currency, 'USD'), now()
FROM databases d JOIN database_plans p ON p.id = d.plan_id LEFT JOIN wallets w ON w.org_id = d.org_id
WHERE d.status IN ('available', 'deleting')
  AND NOT EXISTS (SELECT 1 FROM usage_segments u WHERE u.database_id = d.id AND u.ended_at IS NULL);
