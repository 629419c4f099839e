-- Custom domains: host names an app serves on besides <name>.<PLATFORM_DOMAIN>. A host name
-- belongs to one app across the platform (its primary key). Certificates come with the ACME
-- work: until then every domain is served over HTTP ('none').
CREATE TABLE app_domains (
    hostname           text PRIMARY KEY CHECK (hostname = lower(hostname) AND length(hostname) BETWEEN 1 AND 253),
    app_id             uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    certificate_status text NOT NULL DEFAULT 'none' CHECK (certificate_status IN ('none', 'pending', 'issued', 'failed')),
    certificate_error  text NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX app_domains_app ON app_domains (app_id, created_at);
