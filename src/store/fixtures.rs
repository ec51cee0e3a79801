//! The requests the store's tests send and the wait for what they wrote, shared by the
//! conformance suite and each backend's own tests.

#![allow(clippy::unwrap_used, clippy::panic, reason = "a failing test panics")]

use std::time::Duration;

use serde_json::{Value, json};

use crate::store::{Append, Batch, Change, Expect, Guard, Located, LogCursor, ObjectKey, Store, StoredObject};

pub(crate) fn batch(writes: Vec<Append>) -> Batch {
    Batch::new("user:local:admin", writes)
}

pub(crate) fn put(kind: &str, id: &str, expect: Expect, parent: &str, name: Option<&str>, state: Value) -> Append {
    Append {
        kind: kind.into(),
        id: id.into(),
        expect,
        event_type: format!("{kind}.put"),
        payload: json!({ "put": id }),
        change: Change::Put {
            owner: "org-1".into(),
            parent: parent.into(),
            name: name.map(str::to_owned),
            state: state.to_string(),
            refs: None,
        },
    }
}

/// A put that references `refs` from now on.
pub(crate) fn put_refs(kind: &str, id: &str, expect: Expect, refs: &[(&str, &str)]) -> Append {
    let mut write = put(kind, id, expect, "", None, json!({}));
    if let Change::Put { refs: stored, .. } = &mut write.change {
        *stored = Some(refs.iter().map(|(kind, id)| ObjectKey::new(*kind, *id)).collect());
    }
    write
}

pub(crate) fn create(kind: &str, id: &str, parent: &str, name: Option<&str>) -> Append {
    put(kind, id, Expect::Absent, parent, name, json!({ "id": id }))
}

pub(crate) fn delete(kind: &str, id: &str, expect: Expect) -> Append {
    Append {
        kind: kind.into(),
        id: id.into(),
        expect,
        event_type: format!("{kind}.removed"),
        payload: json!({}),
        change: Change::Delete,
    }
}

pub(crate) fn guard(kind: &str, id: &str, expect: Expect) -> Guard {
    Guard { kind: kind.into(), id: id.into(), expect }
}

/// An object's state as JSON: PostgreSQL keeps it as `jsonb`, which normalises the text.
pub(crate) fn state(object: &StoredObject) -> Value {
    serde_json::from_str(&object.state).unwrap()
}

/// Waits until the log delivers the event at `position` (at once on SQLite; on PostgreSQL
/// once every older transaction, of any test on the server, has ended).
pub(crate) async fn settled(store: &dyn Store, position: u64) -> LogCursor {
    for _ in 0..3000 {
        if let Located::At(cursor) = store.locate(position).await.unwrap() {
            return cursor;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("position {position} never became readable");
}
