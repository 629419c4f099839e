-- Live log streams wait for Postgres to tell them something changed instead of polling: an idle
-- deployment's stream then costs no query at all. The API process LISTENs on these channels
-- (db.Notifier); a notification is delivered when its transaction commits, so a stream woken by
-- it reads what was committed.
--
--   skypanel_log    payload: a deployment id; its log gained chunks, its status changed, or it
--                   was deleted
--   skypanel_token  payload: an API token id; the token was deleted (revoked, or its user was)
--                   or its expiry changed

-- Per statement, one notification per deployment: a many-row insert costs one pg_notify per
-- deployment it touches, not one per row.
CREATE FUNCTION notify_log_chunks_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('skypanel_log', d.deployment_id::text)
    FROM (SELECT DISTINCT deployment_id FROM inserted) d;
    RETURN NULL;
END $$;

CREATE TRIGGER deployment_log_chunks_notify AFTER INSERT ON deployment_log_chunks
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION notify_log_chunks_inserted();

-- A status change wakes the stream at once: one that ends without a result chunk (its workflow
-- could not start) starts its end grace without waiting for the stream's safety re-poll.
-- Status changes touch few rows, so per row is cheap; the WHEN skips the updates that leave the
-- status alone (log_bytes counting on every chunk).
CREATE FUNCTION notify_deployment_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('skypanel_log', NEW.id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER deployments_status_notify AFTER UPDATE OF status ON deployments
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION notify_deployment_status();

-- A deleted deployment (its app deleted) ends its streams at once.
CREATE FUNCTION notify_deployments_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('skypanel_log', d.id::text) FROM deleted d;
    RETURN NULL;
END $$;

CREATE TRIGGER deployments_delete_notify AFTER DELETE ON deployments
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION notify_deployments_deleted();

-- A revoked token's open streams end at once. Cascaded deletes (a deleted user) fire it too.
CREATE FUNCTION notify_api_tokens_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('skypanel_token', t.id::text) FROM deleted t;
    RETURN NULL;
END $$;

CREATE TRIGGER api_tokens_delete_notify AFTER DELETE ON api_tokens
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION notify_api_tokens_deleted();

-- Every authenticated call updates last_used_at: only a change of the expiry notifies.
CREATE FUNCTION notify_api_token_expiry() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('skypanel_token', NEW.id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER api_tokens_expiry_notify AFTER UPDATE OF expires_at ON api_tokens
    FOR EACH ROW WHEN (OLD.expires_at IS DISTINCT FROM NEW.expires_at)
    EXECUTE FUNCTION notify_api_token_expiry();
