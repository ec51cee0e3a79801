//! One replica's typed state of every object: loaded from the store's current state (never
//! by replaying the log from its start), then kept current by following the log, and
//! updated at once by this replica's own writes.
//!
//! The follower reads the log in cursor order, which the backends guarantee never skips an
//! event that commits late, and applies each event through its kind. An event at or below
//! what the state holds for its object is skipped, so the snapshot, the follower and this
//! replica's own writes may each get to an event first.
//!
//! Consistency tokens: a request that carries the position of a write waits until this
//! replica holds it. Its own writes hold at once; a position the log delivers is waited for
//! until the follower reaches it (the follower wakes the waiter); a position past the
//! store's last is refused at once.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use tokio::sync::{Notify, oneshot, watch};

use super::ModelError;
use super::draft::Plan;
use super::kind::{Key, Kind};
use super::objects::{Applied, Loaded, Meta, Obj, Objects, Proposed};
use super::registry::{AnyState, Registry};
use crate::metrics::Metrics;
use crate::store::{Batch, Located, LogCursor, Micros, Store, StoreError, StoreResult};

/// How many events one log read takes.
const BATCH: u32 = 512;

/// How many of its own writes a replica remembers ahead of its follower; beyond that, a
/// token for one of them waits for the follower like any other.
const LOCAL_POSITIONS: usize = 65_536;

pub struct Replica {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    objects: RwLock<Objects>,
    /// The cursor of the last event the follower applied.
    applied: watch::Sender<LogCursor>,
    local: Mutex<LocalWrites>,
    waiters: Mutex<HashMap<u64, Vec<oneshot::Sender<()>>>>,
    waiting: AtomicUsize,
    /// Wakes the follower early, when a reader waits for a token.
    wake: Notify,
    /// Set by `close`; the follower ends.
    stop: watch::Sender<bool>,
    poll: Duration,
    started: Started,
    metrics: Arc<Metrics>,
}

/// What a replica did to start.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Started {
    pub loaded: Loaded,
    /// Events read from the log after the snapshot before the replica answered.
    pub followed: usize,
    /// Of those, the events the snapshot did not hold already.
    pub applied: usize,
}

/// This replica's writes that its follower has not reached yet, by position.
#[derive(Default)]
struct LocalWrites {
    by_position: HashMap<u64, LogCursor>,
    by_cursor: BTreeSet<(LogCursor, u64)>,
}

/// Why a consistency token is not answered.
#[derive(Debug)]
pub enum WaitError {
    /// No write was ever answered at this position.
    Beyond,
    /// This replica did not reach the position within the bound.
    Late,
    Store(StoreError),
}

/// What a commit wrote: each object as it now stands, and the position of the last event.
pub struct Written {
    /// `None` when the plan wrote nothing.
    pub position: Option<u64>,
    items: Vec<(Key, Option<AnyState>, Meta)>,
}

impl Written {
    fn nothing() -> Written {
        Written { position: None, items: Vec::new() }
    }

    /// What committing `proposed` would answer, without committing it: no position, and each
    /// object at the sequence after the one `objects` holds, as of `now`.
    pub fn rehearsed(objects: &Objects, proposed: &[Proposed], now: Micros) -> Written {
        let items = proposed
            .iter()
            .map(|p| {
                let current = objects.entry(&p.key).map(|e| &e.meta);
                let meta = Meta {
                    owner: p.owner.clone(),
                    sequence: current.map_or(1, |m| m.sequence + 1),
                    created_at: current.map_or(now, |m| m.created_at),
                    updated_at: now,
                };
                (p.key.clone(), p.state.clone(), meta)
            })
            .collect();
        Written { position: None, items }
    }

    /// An object of kind `K` as this commit left it, if it wrote one and did not delete it.
    pub fn get<K: Kind>(&self, id: &str) -> Option<Obj<K>> {
        let (key, state, meta) = self.items.iter().rev().find(|(key, _, _)| key.kind == K::NAME && &*key.id == id)?;
        let state = state.clone()?.downcast::<K::State>().ok()?;
        Some(Obj::new(key.id.clone(), meta.clone(), state))
    }

    /// Where the commit left an object, deleted ones included.
    pub fn meta(&self, kind: &str, id: &str) -> Option<&Meta> {
        self.items.iter().rev().find(|(key, _, _)| key.kind == kind && &*key.id == id).map(|(_, _, meta)| meta)
    }
}

impl Replica {
    /// Loads the store's current state, reads what the log holds beyond it, then follows the
    /// log in the background: every `poll`, and at once when the backend signals that another
    /// replica wrote.
    pub async fn open(store: Arc<dyn Store>, registry: Registry, poll: Duration) -> StoreResult<Arc<Replica>> {
        Replica::open_with(store, registry, poll, Arc::new(Metrics::off())).await
    }

    /// [`Replica::open`], counting what the follower does into `metrics`, which the
    /// application reads its own metrics from too.
    pub async fn open_with(
        store: Arc<dyn Store>,
        registry: Registry,
        poll: Duration,
        metrics: Arc<Metrics>,
    ) -> StoreResult<Arc<Replica>> {
        let instance = store.instance().await?;
        let snapshot = store.snapshot().await?;
        let registry = Arc::new(registry);
        let mut objects = Objects::new(registry.clone(), &instance.id);
        let loaded = objects.load(snapshot.objects).map_err(corrupt)?;
        objects.reflect(snapshot.cursor.position);
        let (applied, _) = watch::channel(snapshot.cursor);
        let (stop, _) = watch::channel(false);
        let mut replica = Replica {
            store,
            registry,
            objects: RwLock::new(objects),
            applied,
            local: Mutex::new(LocalWrites::default()),
            waiters: Mutex::new(HashMap::new()),
            waiting: AtomicUsize::new(0),
            wake: Notify::new(),
            stop,
            poll,
            started: Started { loaded, followed: 0, applied: 0 },
            metrics,
        };
        loop {
            match replica.catch_up().await? {
                (0, _) => break,
                (read, applied) => {
                    replica.started.followed += read;
                    replica.started.applied += applied;
                }
            }
        }
        let replica = Arc::new(replica);
        tokio::spawn(replica.clone().follow());
        Ok(replica)
    }

    pub fn started(&self) -> &Started {
        &self.started
    }

    /// The backend, for what only it holds (the log, for the history API).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The state, for reads. Hold it only briefly (it blocks the follower and commits).
    pub fn read(&self) -> StoreResult<RwLockReadGuard<'_, Objects>> {
        self.objects.read().map_err(|_| poisoned())
    }

    /// The kinds this replica holds.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The follower's position.
    /// The metrics of the server this replica serves.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    fn applied(&self) -> LogCursor {
        *self.applied.borrow()
    }

    /// Writes a plan as one batch and installs what it wrote.
    pub async fn commit(&self, actor: &str, plan: Plan) -> StoreResult<Written> {
        let mut writes = Vec::with_capacity(plan.planned.len());
        let mut installs = Vec::with_capacity(plan.planned.len());
        for planned in plan.planned {
            writes.push(planned.append);
            installs.push((planned.key, planned.state, planned.created_at));
        }
        if writes.is_empty() {
            return Ok(Written::nothing());
        }
        let committed = self.store.append(Batch { actor: actor.to_owned(), writes, guards: plan.guards }).await?;
        if committed.len() != installs.len() {
            return Err(StoreError::Internal("the store answered another number of events than it was given".into()));
        }
        let mut items = Vec::with_capacity(installs.len());
        {
            let mut objects = self.objects.write().map_err(|_| poisoned())?;
            for ((key, state, created_at), c) in installs.into_iter().zip(&committed) {
                objects.install_local(key.clone(), state.clone(), &c.event, created_at);
                let meta = Meta {
                    owner: c.event.owner.as_str().into(),
                    sequence: c.event.sequence,
                    created_at: created_at.unwrap_or(c.event.created_at),
                    updated_at: c.event.created_at,
                };
                items.push((key, state, meta));
            }
        }
        let last = committed.iter().max_by_key(|c| c.event.position);
        if let Some(last) = last {
            let mut local = self.local.lock().map_err(|_| poisoned())?;
            if local.by_position.len() < LOCAL_POSITIONS && last.cursor > self.applied() {
                local.by_position.insert(last.event.position, last.cursor);
                local.by_cursor.insert((last.cursor, last.event.position));
            }
        }
        // The follower is not woken: this replica holds the write already.
        Ok(Written { position: last.map(|c| c.event.position), items })
    }

    /// Reads these objects from the store and installs them where the store is ahead of
    /// this replica.
    pub async fn refresh(&self, keys: &[Key]) -> StoreResult<()> {
        let mut seen = std::collections::HashSet::new();
        let mut heads = Vec::new();
        for key in keys.iter().filter(|key| seen.insert(*key)) {
            heads.push((key, self.store.head(key.kind, &key.id).await?));
        }
        // Most refreshes find this replica current (a request's plain NotFound, say): look
        // first, so that they do not take the lock that holds every reader back.
        heads.retain(|(key, head)| self.read().is_ok_and(|objects| objects.is_behind(key, head)));
        if heads.is_empty() {
            return Ok(());
        }
        let mut objects = self.objects.write().map_err(|_| poisoned())?;
        for (key, head) in heads {
            objects.install_head(key, head).map_err(corrupt)?;
        }
        Ok(())
    }

    /// Waits until this replica holds the write at log `position` (a consistency token), for
    /// at most `bound`.
    pub async fn wait_for(&self, position: u64, bound: Duration) -> Result<(), WaitError> {
        let store = |e: StoreError| WaitError::Store(e);
        if self.local.lock().map_err(|_| store(poisoned()))?.by_position.contains_key(&position) {
            return Ok(());
        }
        // Registered before the store is asked, so a delivery in between still wakes it.
        let (sender, delivered) = oneshot::channel();
        self.waiters.lock().map_err(|_| store(poisoned()))?.entry(position).or_default().push(sender);
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let outcome = match self.store.locate(position).await {
            Err(e) => Err(store(e)),
            Ok(Located::Beyond) => Err(WaitError::Beyond),
            Ok(Located::At(cursor)) if self.applied() >= cursor => Ok(()),
            Ok(_) => {
                self.wake.notify_one();
                match tokio::time::timeout(bound, delivered).await {
                    Ok(Ok(())) => Ok(()),
                    _ => Err(WaitError::Late),
                }
            }
        };
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        if let Ok(mut waiters) = self.waiters.lock()
            && let Some(senders) = waiters.get_mut(&position)
        {
            senders.retain(|sender| !sender.is_closed());
            if senders.is_empty() {
                waiters.remove(&position);
            }
        }
        outcome
    }

    async fn follow(self: Arc<Self>) {
        let mut stop = self.stop.subscribe();
        let mut grew = self.store.log_grew();
        while !*stop.borrow() {
            let pause = match self.catch_up().await {
                Ok((0, _)) => self.poll,
                Ok(_) => continue,
                Err(e) => {
                    self.metrics.follower_failed();
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

    /// Applies the next batch of the log; answers how many events it read and how many of
    /// them changed the state.
    async fn catch_up(&self) -> StoreResult<(usize, usize)> {
        let after = self.applied();
        let batch = self.store.read_log(None, after, BATCH).await?;
        let Some((last, written)) = batch.last().map(|c| (c.cursor, c.event.created_at)) else {
            self.metrics.followed(0, Duration::ZERO);
            return Ok((0, 0));
        };
        let count = batch.len();
        let mut changed = 0;
        let positions: Vec<u64> = batch.iter().map(|c| c.event.position).collect();
        let mut stale = Vec::new();
        {
            let mut objects = self.objects.write().map_err(|_| poisoned())?;
            for committed in batch {
                let position = committed.event.position;
                match objects.apply(committed) {
                    Ok(Applied::Stale(key)) => stale.push(key),
                    Ok(Applied::Changed) => changed += 1,
                    Ok(Applied::Skipped) => {}
                    Err(e) => tracing::warn!(error = %e, position, "an event of the log does not decode"),
                }
            }
        }
        if !stale.is_empty() {
            self.refresh(&stale).await?;
        }
        self.applied.send_replace(last);
        self.delivered(last, &positions);
        let written = std::time::UNIX_EPOCH + Duration::from_micros(u64::try_from(written).unwrap_or(0));
        self.metrics.followed(count, std::time::SystemTime::now().duration_since(written).unwrap_or_default());
        Ok((count, changed))
    }

    /// Forgets own writes the follower has passed and wakes the readers waiting for any of
    /// `positions`.
    fn delivered(&self, applied: LogCursor, positions: &[u64]) {
        if let Ok(mut local) = self.local.lock() {
            while let Some(&(cursor, position)) = local.by_cursor.first() {
                if cursor > applied {
                    break;
                }
                local.by_cursor.pop_first();
                local.by_position.remove(&position);
            }
        }
        if self.waiting.load(Ordering::Acquire) == 0 {
            return;
        }
        if let Ok(mut waiters) = self.waiters.lock() {
            for position in positions {
                for sender in waiters.remove(position).into_iter().flatten() {
                    let _ = sender.send(());
                }
            }
        }
    }

    /// Stops the follower and closes the store.
    pub async fn close(&self) -> StoreResult<()> {
        self.stop.send_replace(true);
        self.store.close().await
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
    StoreError::Internal("the replica's state lock was poisoned".into())
}

fn corrupt(e: ModelError) -> StoreError {
    StoreError::Internal(format!("the store holds an object this server cannot read: {e}"))
}
