//! The replica's in-memory view of current state, served to reads and kept current by
//! following the event log. Every replica runs one, on SQLite and on PostgreSQL alike, so
//! reads scale with replicas and a write on one replica reaches the others through the log.
//!
//! [`View`] wraps the backend as a [`Store`]: `get` and `list` answer from memory, `append`
//! goes to the backend and applies its own result at once (a replica reads its own writes),
//! everything else passes through. The follower task reads the log in cursor order, which
//! the backends guarantee never skips an event that commits late, and applies each event's
//! snapshot. An event older than what the view holds for its object is ignored, so the
//! follower and a local write may apply the same change in either order.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, watch};

use super::{Append, Committed, Instance, LogCursor, Micros, PageQuery, Store, StoreError, StoreResult, StoredObject};

/// How many events one log read takes.
const BATCH: u32 = 512;

pub struct View {
    store: Arc<dyn Store>,
    state: RwLock<State>,
    /// The cursor of the last event the follower applied.
    applied: watch::Sender<LogCursor>,
    /// Wakes the follower early, when a reader waits for a token.
    wake: Notify,
    /// Set by `close`; the follower ends.
    stop: watch::Sender<bool>,
    poll: Duration,
}

#[derive(Default)]
struct State {
    objects: HashMap<(String, String), StoredObject>,
    /// (kind, parent) -> (created_at, id), the list order.
    lists: HashMap<(String, String), BTreeSet<(Micros, String)>>,
    /// The newest event sequence applied per object, deleted objects included, so an older
    /// snapshot never overwrites a newer one.
    sequences: HashMap<(String, String), u64>,
}

impl State {
    fn apply(&mut self, committed: &Committed) {
        let object = &committed.object;
        let key = (object.kind.clone(), object.id.clone());
        let sequence = committed.event.sequence;
        if self.sequences.get(&key).is_some_and(|seen| *seen >= sequence) {
            return;
        }
        self.sequences.insert(key.clone(), sequence);
        if let Some(old) = self.objects.remove(&key)
            && let Some(list) = self.lists.get_mut(&(old.kind.clone(), old.parent.clone()))
        {
            list.remove(&(old.created_at, old.id.clone()));
        }
        if !committed.deleted {
            self.lists
                .entry((object.kind.clone(), object.parent.clone()))
                .or_default()
                .insert((object.created_at, object.id.clone()));
            self.objects.insert(key, object.clone());
        }
    }

    fn page(&self, kind: &str, parent: &str, page: &PageQuery) -> Vec<StoredObject> {
        let Some(list) = self.lists.get(&(kind.to_owned(), parent.to_owned())) else { return Vec::new() };
        let limit = page.limit as usize;
        let pick = |(_, id): &(Micros, String)| self.objects.get(&(kind.to_owned(), id.clone())).cloned();
        match (&page.after, page.reverse) {
            (None, false) => list.iter().filter_map(pick).take(limit).collect(),
            (None, true) => list.iter().rev().filter_map(pick).take(limit).collect(),
            (Some(after), false) => list
                .range((std::ops::Bound::Excluded(after.clone()), std::ops::Bound::Unbounded))
                .filter_map(pick)
                .take(limit)
                .collect(),
            (Some(after), true) => list
                .range((std::ops::Bound::Unbounded, std::ops::Bound::Excluded(after.clone())))
                .rev()
                .filter_map(pick)
                .take(limit)
                .collect(),
        }
    }
}

impl View {
    /// Loads the whole log into memory, then follows it in the background: every `poll`,
    /// and at once when the backend signals that another replica wrote.
    pub async fn open(store: Arc<dyn Store>, poll: Duration) -> StoreResult<Arc<View>> {
        let (applied, _) = watch::channel(LogCursor::default());
        let (stop, _) = watch::channel(false);
        let view =
            Arc::new(View { store, state: RwLock::new(State::default()), applied, wake: Notify::new(), stop, poll });
        while view.catch_up().await? > 0 {}
        tokio::spawn(view.clone().follow());
        Ok(view)
    }

    async fn follow(self: Arc<Self>) {
        let mut stop = self.stop.subscribe();
        let mut grew = self.store.log_grew();
        while !*stop.borrow() {
            let pause = match self.catch_up().await {
                Ok(0) => self.poll,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "following the event log failed; retrying");
                    self.poll * 10
                }
            };
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
                () = changed(&mut grew) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Applies the next batch of the log; answers how many events it applied.
    async fn catch_up(&self) -> StoreResult<usize> {
        let after = *self.applied.borrow();
        let batch = self.store.read_log(None, after, BATCH).await?;
        let Some(last) = batch.last().map(|c| c.cursor) else { return Ok(0) };
        {
            let mut state = self.state.write().map_err(|_| poisoned())?;
            for committed in &batch {
                state.apply(committed);
            }
        }
        self.applied.send_replace(last);
        Ok(batch.len())
    }

    /// The follower's position.
    pub fn applied(&self) -> LogCursor {
        *self.applied.borrow()
    }

    /// Waits until the view holds every event up to log position `position` (a consistency
    /// token another replica answered), for at most `bound`.
    pub async fn wait_for(&self, position: u64, bound: Duration) -> StoreResult<()> {
        let deadline = tokio::time::Instant::now() + bound;
        let late = || StoreError::Unavailable(format!("this replica has not caught up with position {position} yet"));
        let target = loop {
            if let Some(cursor) = self.store.cursor_of(position).await? {
                break cursor;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(late());
            }
            self.wake.notify_one();
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let mut applied = self.applied.subscribe();
        self.wake.notify_one();
        match tokio::time::timeout_at(deadline, applied.wait_for(|cursor| *cursor >= target)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(late()),
        }
    }
}

#[async_trait]
impl Store for View {
    async fn instance(&self) -> StoreResult<Instance> {
        self.store.instance().await
    }

    async fn append(&self, writes: Vec<Append>) -> StoreResult<Vec<Committed>> {
        let committed = self.store.append(writes).await?;
        {
            let mut state = self.state.write().map_err(|_| poisoned())?;
            for change in &committed {
                state.apply(change);
            }
        }
        // The follower is not woken: this replica's view has the write already, and a
        // reader waiting on its token wakes the follower itself.
        Ok(committed)
    }

    async fn get(&self, kind: &str, id: &str) -> StoreResult<Option<StoredObject>> {
        let state = self.state.read().map_err(|_| poisoned())?;
        Ok(state.objects.get(&(kind.to_owned(), id.to_owned())).cloned())
    }

    async fn list(&self, kind: &str, parent: &str, page: &PageQuery) -> StoreResult<Vec<StoredObject>> {
        let state = self.state.read().map_err(|_| poisoned())?;
        Ok(state.page(kind, parent, page))
    }

    async fn read_log(
        &self,
        object: Option<(&str, &str)>,
        after: LogCursor,
        limit: u32,
    ) -> StoreResult<Vec<Committed>> {
        self.store.read_log(object, after, limit).await
    }

    async fn cursor_of(&self, position: u64) -> StoreResult<Option<LogCursor>> {
        self.store.cursor_of(position).await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.store.ping().await
    }

    async fn close(&self) -> StoreResult<()> {
        self.stop.send_replace(true);
        self.store.close().await
    }

    fn log_grew(&self) -> Option<watch::Receiver<u64>> {
        self.store.log_grew()
    }
}

/// Resolves when the backend's log signal changes; never, if it has none or it ended.
async fn changed(signal: &mut Option<watch::Receiver<u64>>) {
    if let Some(receiver) = signal
        && receiver.changed().await.is_ok()
    {
        return;
    }
    std::future::pending().await
}

fn poisoned() -> StoreError {
    StoreError::Internal("the in-memory view's lock was poisoned".into())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{Change, Event, Expect};

    fn put(kind: &str, id: &str, parent: &str, name: &str, expect: Expect) -> Append {
        Append {
            kind: kind.into(),
            id: id.into(),
            expect,
            event_type: "put".into(),
            payload: json!({}),
            actor: "test".into(),
            owner: "owner".into(),
            change: Change::Put {
                owner: "owner".into(),
                parent: parent.into(),
                name: Some(name.into()),
                state: json!({"name": name}),
            },
        }
    }

    async fn stores() -> (tempfile::TempDir, Arc<dyn Store>, Arc<View>) {
        let dir = tempfile::tempdir().unwrap();
        let backend: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let view = View::open(backend.clone(), Duration::from_millis(10)).await.unwrap();
        (dir, backend, view)
    }

    fn committed(id: &str, sequence: u64, name: &str, deleted: bool) -> Committed {
        Committed {
            cursor: LogCursor { epoch: 0, position: sequence },
            event: Event {
                position: sequence,
                kind: "k".into(),
                object_id: id.into(),
                sequence,
                event_type: "e".into(),
                payload: json!({}),
                actor: "a".into(),
                owner: "o".into(),
                created_at: 1,
            },
            object: StoredObject {
                kind: "k".into(),
                id: id.into(),
                owner: "o".into(),
                parent: String::new(),
                name: Some(name.into()),
                state: json!({}),
                sequence,
                created_at: 1,
                updated_at: 1,
            },
            deleted,
        }
    }

    #[test]
    fn an_older_snapshot_never_replaces_a_newer_one() {
        let mut state = State::default();
        state.apply(&committed("x", 2, "new", false));
        state.apply(&committed("x", 1, "old", false));
        assert_eq!(state.objects[&("k".to_owned(), "x".to_owned())].name.as_deref(), Some("new"));
        // A delete is remembered, so the follower replaying the create cannot bring it back.
        state.apply(&committed("x", 3, "new", true));
        state.apply(&committed("x", 2, "new", false));
        assert!(state.objects.is_empty());
        assert!(state.lists.values().all(BTreeSet::is_empty));
    }

    #[tokio::test]
    async fn writes_through_the_view_are_read_at_once() {
        let (_dir, _, view) = stores().await;
        view.append(vec![put("k", "a", "p", "alpha", Expect::Absent)]).await.unwrap();
        assert_eq!(view.get("k", "a").await.unwrap().unwrap().name.as_deref(), Some("alpha"));
    }

    #[tokio::test]
    async fn writes_another_replica_made_arrive_by_following_the_log() {
        let (_dir, backend, view) = stores().await;
        // Straight to the backend, as another replica on the same database would.
        let written = backend.append(vec![put("k", "b", "p", "beta", Expect::Absent)]).await.unwrap();
        view.wait_for(written[0].event.position, Duration::from_secs(5)).await.unwrap();
        assert_eq!(view.get("k", "b").await.unwrap().unwrap().sequence, 1);
        assert!(view.applied() >= written[0].cursor);
    }

    #[tokio::test]
    async fn a_position_that_never_comes_is_unavailable_after_the_bound() {
        let (_dir, _, view) = stores().await;
        let error = view.wait_for(10_000, Duration::from_millis(50)).await.unwrap_err();
        assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
    }

    #[tokio::test]
    async fn pages_from_memory_match_the_backend() {
        let (_dir, backend, view) = stores().await;
        for i in 0..12 {
            view.append(vec![put("k", &format!("id-{i:02}"), "p", &format!("n{i}"), Expect::Absent)]).await.unwrap();
        }
        // Other kinds and parents stay out of the list.
        view.append(vec![put("k", "other", "q", "x", Expect::Absent), put("j", "id-00", "p", "y", Expect::Absent)])
            .await
            .unwrap();
        for reverse in [false, true] {
            let mut after = None;
            loop {
                let page = PageQuery { after: after.clone(), reverse, limit: 5 };
                let from_view = view.list("k", "p", &page).await.unwrap();
                let from_backend = backend.list("k", "p", &page).await.unwrap();
                assert_eq!(from_view, from_backend);
                match from_view.last() {
                    Some(last) => after = Some((last.created_at, last.id.clone())),
                    None => break,
                }
            }
        }
    }

    #[tokio::test]
    async fn a_reopened_view_loads_the_whole_log() {
        let dir = tempfile::tempdir().unwrap();
        {
            let backend: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
            let view = View::open(backend, Duration::from_millis(10)).await.unwrap();
            view.append(vec![put("k", "a", "p", "alpha", Expect::Absent)]).await.unwrap();
            view.append(vec![put("k", "b", "p", "beta", Expect::Absent)]).await.unwrap();
            let b = view.get("k", "b").await.unwrap().unwrap();
            view.append(vec![Append {
                change: Change::Delete,
                ..put("k", "b", "p", "beta", Expect::Sequence(b.sequence))
            }])
            .await
            .unwrap();
            view.close().await.unwrap();
        }
        let backend: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let view = View::open(backend, Duration::from_millis(10)).await.unwrap();
        assert!(view.get("k", "a").await.unwrap().is_some());
        assert!(view.get("k", "b").await.unwrap().is_none());
    }
}
