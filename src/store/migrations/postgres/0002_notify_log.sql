-- Wake followers when the log grows: every statement that inserts events notifies channel
-- `iamd_log` (PostgreSQL delivers it at commit, once per transaction and channel). Replicas
-- LISTEN and read the log at once instead of at their next poll; the poll stays as the
-- fallback for notifications lost while a listener reconnects.
CREATE FUNCTION notify_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('iamd_log', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER events_notify AFTER INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION notify_log();
