-- The event log, current-state rows and instance facts. Applied in one transaction together
-- with its schema_migrations row; the instance row is seeded by the same transaction.

-- Append-only. `position` is AUTOINCREMENT so a position is never reused, even after the
-- newest rows were removed by hand: readers page the log by position.
CREATE TABLE events (
    position   INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL,
    object_id  TEXT    NOT NULL,
    sequence   INTEGER NOT NULL CHECK (sequence >= 1),
    event_type TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    owner      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (kind, object_id, sequence)
) STRICT;

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TABLE objects (
    kind       TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    owner      TEXT    NOT NULL,
    parent     TEXT    NOT NULL,
    name       TEXT,
    state      TEXT    NOT NULL,
    sequence   INTEGER NOT NULL CHECK (sequence >= 1),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
) STRICT;

-- Names are unique per kind and parent; unnamed objects are left out of the index (NULLs
-- would never collide anyway). The store maps a violation of this index to NameTaken.
CREATE UNIQUE INDEX objects_name ON objects (kind, parent, name) WHERE name IS NOT NULL;

-- Keyset pagination in (created_at, id) order within one kind and parent.
CREATE INDEX objects_list ON objects (kind, parent, created_at, id);

-- Exactly one row, written by the first open and immutable afterwards: every replica must
-- agree on the id and the signing key for the life of the data.
CREATE TABLE instance (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    id          TEXT    NOT NULL,
    signing_key BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TRIGGER instance_no_update BEFORE UPDATE ON instance
BEGIN
    SELECT RAISE(ABORT, 'the instance row is immutable');
END;

CREATE TRIGGER instance_no_delete BEFORE DELETE ON instance
BEGIN
    SELECT RAISE(ABORT, 'the instance row is immutable');
END;
