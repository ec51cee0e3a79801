-- Every event carries the object as it stood after the event (before it, for a delete), so a
-- follower rebuilds current state from the log alone, without reading `objects`.
--
-- Events written before this version did not record their snapshot. The current state still
-- determines it for the latest event of every object, and those rows are filled in below, so a
-- replay of the whole log ends in exactly the rows of `objects`:
--   * the latest event of a live object gets that object's row;
--   * the latest event of an object without a row was its delete (only a delete removes a row).
-- Older events keep the defaults: state `null` (unknown), no parent or name, the event's own
-- time as the object's created_at, not deleted.

ALTER TABLE events ADD COLUMN object_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN parent TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN name TEXT;
ALTER TABLE events ADD COLUMN state TEXT NOT NULL DEFAULT 'null';
ALTER TABLE events ADD COLUMN object_created_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1));

-- The backfill is the only update events ever get; the guard comes back in the same transaction.
DROP TRIGGER events_no_update;

UPDATE events SET object_owner = owner, object_created_at = created_at;

UPDATE events
SET object_owner = o.owner, parent = o.parent, name = o.name, state = o.state,
    object_created_at = o.created_at
FROM objects AS o
WHERE o.kind = events.kind AND o.id = events.object_id AND o.sequence = events.sequence;

UPDATE events
SET deleted = 1
WHERE NOT EXISTS (SELECT 1 FROM objects AS o WHERE o.kind = events.kind AND o.id = events.object_id)
  AND sequence = (SELECT MAX(e.sequence) FROM events AS e
                  WHERE e.kind = events.kind AND e.object_id = events.object_id);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
