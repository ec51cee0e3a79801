-- Events record what changed, not the whole object: the current-state row holds the object,
-- and a replica starts from the rows, not by replaying the log. The snapshot columns of
-- version 2 go; their history stays readable as payloads.
ALTER TABLE events DROP COLUMN object_owner;
ALTER TABLE events DROP COLUMN parent;
ALTER TABLE events DROP COLUMN name;
ALTER TABLE events DROP COLUMN state;
ALTER TABLE events DROP COLUMN object_created_at;
ALTER TABLE events DROP COLUMN deleted;

-- Lists are answered from the replicas' in-memory state, never by the database.
DROP INDEX objects_list;

-- Which objects reference which, so that a delete checks in its own transaction that nothing
-- references the object any more. Written with each put that changes an object's references.
CREATE TABLE refs (
    to_kind   TEXT NOT NULL,
    to_id     TEXT NOT NULL,
    from_kind TEXT NOT NULL,
    from_id   TEXT NOT NULL,
    PRIMARY KEY (to_kind, to_id, from_kind, from_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX refs_from ON refs (from_kind, from_id);

-- The objects already here get their rows now: a put that keeps an object's references leaves
-- the rows alone, so an object whose references never change would otherwise never get any.
-- The kinds this version ships with reference nothing but their owner: an object that an
-- organization owns (other than the organization itself) references it and is listed under
-- it (model::objects). Versions before this one listed an organization's domain policy,
-- which shares the organization's id, at the top level. (The one place the store names a
-- kind: the registry's owner kind.)
UPDATE objects SET parent = owner
WHERE kind <> 'organization' AND owner IN (SELECT id FROM objects WHERE kind = 'organization');
INSERT INTO refs (to_kind, to_id, from_kind, from_id)
SELECT 'organization', parent, kind, id FROM objects WHERE parent <> '' AND kind <> 'organization';
