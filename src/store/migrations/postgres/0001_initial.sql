-- The event log, current-state rows and instance facts: SQLite's schema at version 2, in
-- PostgreSQL's types. Applied in one transaction, under the migration advisory lock, together
-- with its schema_migrations row; the instance row is seeded by the same transaction.
--
-- Keys and names use the "C" collation so that comparisons, uniqueness and the keyset order of
-- listings are by bytes, as on SQLite, whatever the database's default collation is.

-- Refuses the change a trigger guards, with the trigger's argument as the message.
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0];
END
$$;

-- Append-only. `position` comes from a sequence, so positions are unique and never reused, but
-- a transaction may take a position and commit after another one with a higher position: the
-- log is read in (xid, position) order below a visibility watermark (see postgres.rs).
CREATE TABLE events (
    position          BIGSERIAL PRIMARY KEY,
    -- The writing transaction's id, 64 bits with epoch, so it never wraps around.
    xid               xid8    NOT NULL DEFAULT pg_current_xact_id(),
    kind              TEXT    COLLATE "C" NOT NULL,
    object_id         TEXT    COLLATE "C" NOT NULL,
    sequence          BIGINT  NOT NULL CHECK (sequence >= 1),
    event_type        TEXT    NOT NULL,
    payload           JSONB   NOT NULL,
    actor             TEXT    NOT NULL,
    owner             TEXT    NOT NULL,
    created_at        BIGINT  NOT NULL,
    -- The object as the event left it (just before, for a delete): followers need no reads.
    object_owner      TEXT    NOT NULL,
    parent            TEXT    COLLATE "C" NOT NULL,
    name              TEXT    COLLATE "C",
    state             JSONB   NOT NULL,
    object_created_at BIGINT  NOT NULL,
    deleted           BOOLEAN NOT NULL,
    UNIQUE (kind, object_id, sequence)
);

-- The log in cursor order.
CREATE INDEX events_log ON events (xid, position);

CREATE TRIGGER events_no_change BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION refuse_change('events are append-only');
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change('events are append-only');

CREATE TABLE objects (
    kind       TEXT   COLLATE "C" NOT NULL,
    id         TEXT   COLLATE "C" NOT NULL,
    owner      TEXT   NOT NULL,
    parent     TEXT   COLLATE "C" NOT NULL,
    name       TEXT   COLLATE "C",
    state      JSONB  NOT NULL,
    sequence   BIGINT NOT NULL CHECK (sequence >= 1),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
);

-- Names are unique per kind and parent; the store maps a violation of this index (by its
-- name) to NameTaken.
CREATE UNIQUE INDEX objects_name ON objects (kind, parent, name) WHERE name IS NOT NULL;

-- Keyset pagination in (created_at, id) order within one kind and parent.
CREATE INDEX objects_list ON objects (kind, parent, created_at, id);

-- Exactly one row, written by the first start and immutable afterwards: every replica must
-- agree on the id and the signing key for the life of the data.
CREATE TABLE instance (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    id          TEXT    NOT NULL,
    signing_key BYTEA   NOT NULL,
    created_at  BIGINT  NOT NULL
);

CREATE TRIGGER instance_no_change BEFORE UPDATE OR DELETE ON instance
    FOR EACH ROW EXECUTE FUNCTION refuse_change('the instance row is immutable');
CREATE TRIGGER instance_no_truncate BEFORE TRUNCATE ON instance
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change('the instance row is immutable');
