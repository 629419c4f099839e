-- Prepaid wallets and an append-only ledger. Amounts are integer minor units (cents) everywhere.

CREATE TABLE wallets (
    org_id     uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    currency   text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    -- balance is derived from the ledger; this cache is updated in the same transaction as
    -- every entry (and checked against the ledger by the tests).
    balance    bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every credit and charge. idempotency_key makes each one happen once however often it is
-- retried: charge:<app>:<period start>, credit:<org>:<reference>.
CREATE TABLE ledger_entries (
    id               bigserial PRIMARY KEY,
    org_id           uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind             text NOT NULL CHECK (kind IN ('credit', 'charge')),
    amount           bigint NOT NULL CHECK (amount > 0),
    currency         text NOT NULL,
    idempotency_key  text NOT NULL UNIQUE,
    -- charges: the app (kept after it is deleted, so no foreign key) and the period it ran in
    app_id           uuid,
    app_name         text,
    period_start     timestamptz,
    period_end       timestamptz,
    instance_seconds numeric(20, 3),
    price_per_hour   bigint,
    -- credits: the admin's reference (an invoice or payment id)
    reference        text,
    description      text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_entries_org ON ledger_entries (org_id, id DESC);

-- When an app ran, with how many instances at which price: what billing prorates. A segment
-- opens when the app starts serving and closes when it stops, is suspended, deleted, scaled or
-- moves to another plan (then a new one opens). No foreign key: usage outlives the app.
CREATE TABLE usage_segments (
    id             bigserial PRIMARY KEY,
    app_id         uuid NOT NULL,
    org_id         uuid NOT NULL,
    app_name       text NOT NULL,
    instances      integer NOT NULL CHECK (instances > 0),
    price_per_hour bigint NOT NULL CHECK (price_per_hour >= 0),
    currency       text NOT NULL,
    started_at     timestamptz NOT NULL,
    ended_at       timestamptz,
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE UNIQUE INDEX usage_segments_open ON usage_segments (app_id) WHERE ended_at IS NULL;
CREATE INDEX usage_segments_period ON usage_segments (started_at, ended_at);

-- The end of the last period every app has been charged for (one row).
CREATE TABLE billing_cursor (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    billed_until timestamptz NOT NULL
);

INSERT INTO wallets (org_id) SELECT id FROM organizations ON CONFLICT DO NOTHING;

-- Apps already running when billing arrives start their usage now.
INSERT INTO usage_segments (app_id, org_id, app_name, instances, price_per_hour, currency, started_at)
SELECT a.id, a.org_id, a.name, a.instances, p.price_per_hour_minor, p.currency, now()
FROM applications a JOIN plans p ON p.id = a.plan_id WHERE a.status = 'running';
