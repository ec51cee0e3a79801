//! The typed state of every object one replica holds, and the secondary indexes the use
//! cases read: children by parent in list order, referrers by referenced object, objects by
//! lookup term. Pure and synchronous: [`crate::model::replica`] feeds it from the store, and
//! every read is a hash lookup or an ordered range, costing O(its answer), never a scan.
//!
//! An object's parent is its owner when an object of the registry's owner kind owns it,
//! and the top level otherwise; being owned is a reference too, subject to the kind's
//! [`OnDelete`](crate::model::kind::OnDelete) rule for the owner kind.
//!
//! Deleted objects leave nothing behind but a tombstone while this replica is ahead of its
//! log follower (its own deletes, or a delete it learnt from the store directly): the
//! follower skips the object's older events and drops the tombstone when it reaches the
//! delete itself.

use std::collections::{BTreeSet, HashMap as StdHashMap};
use std::marker::PhantomData;
use std::ops::Bound;
use std::sync::Arc;

use iamd_engine::{Engine, Feed};

use super::ModelError;
use super::kind::{Key, Kind, Term};
use super::registry::{AnyState, Registry};
use crate::store::{Committed, Event, Head, Micros, StoredObject};

/// One object as a plan would leave it, never committed: what a simulation lays over the
/// state.
#[derive(Clone)]
pub struct Proposed {
    pub key: Key,
    /// The organization or instance that owns it.
    pub owner: Arc<str>,
    /// `None`: deleted.
    pub state: Option<AnyState>,
}

/// A unique name: the kind, the parent (`""` at the top level) and the name.
type NameKey = (&'static str, Arc<str>, Box<str>);

/// Keyed by ids clients choose, so the hash is seeded per map; and cheaper than SipHash,
/// which a read pays twice.
type HashMap<K, V> = StdHashMap<K, V, foldhash::quality::RandomState>;

/// Where an object stands in its history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// The organization, or the instance, that owns the object.
    pub owner: Arc<str>,
    /// The sequence of its latest event.
    pub sequence: u64,
    /// The time of its first event since it last came into existence.
    pub created_at: Micros,
    /// The time of its latest event.
    pub updated_at: Micros,
}

/// A typed object: shares its state with the replica, so reading one copies nothing.
pub struct Obj<K: Kind> {
    pub id: Arc<str>,
    pub meta: Meta,
    pub state: Arc<K::State>,
    kind: PhantomData<fn() -> K>,
}

impl<K: Kind> Obj<K> {
    pub(crate) fn new(id: Arc<str>, meta: Meta, state: Arc<K::State>) -> Obj<K> {
        Obj { id, meta, state, kind: PhantomData }
    }

    pub fn key(&self) -> Key {
        Key { kind: K::NAME, id: self.id.clone() }
    }
}

impl<K: Kind> Clone for Obj<K> {
    fn clone(&self) -> Self {
        Obj::new(self.id.clone(), self.meta.clone(), self.state.clone())
    }
}

impl<K: Kind> std::fmt::Debug for Obj<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Obj").field("kind", &K::NAME).field("id", &self.id).field("meta", &self.meta).finish()
    }
}

impl<K: Kind> std::ops::Deref for Obj<K> {
    type Target = K::State;
    fn deref(&self) -> &K::State {
        &self.state
    }
}

pub(crate) struct Entry {
    pub meta: Meta,
    pub state: AnyState,
    /// Every object it references, its owner included.
    pub refs: Box<[Key]>,
    terms: Box<[Term]>,
}

/// One kind's objects and its lists.
#[derive(Default)]
struct Table {
    entries: HashMap<Arc<str>, Entry>,
    /// Parent id ("" for the top level) -> (created_at, id), the list order.
    lists: HashMap<Arc<str>, BTreeSet<(Micros, Arc<str>)>>,
}

/// What the follower did with one event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    Changed,
    /// Already reflected: this replica wrote it, or its snapshot held it.
    Skipped,
    /// The object's state here cannot take the event (a gap in its sequence, or an event
    /// that does not fit): read the object from the store instead.
    Stale(Key),
}

/// What loading a snapshot found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub objects: usize,
    /// Rows of kinds this server does not know, left out.
    pub unknown: usize,
}

pub struct Objects {
    registry: Arc<Registry>,
    instance: Arc<str>,
    tables: HashMap<&'static str, Table>,
    referrers: HashMap<Key, BTreeSet<Key>>,
    terms: HashMap<&'static str, HashMap<Arc<str>, BTreeSet<Key>>>,
    /// The object holding each unique name, by kind and parent, as the store keeps names
    /// unique: so a write that is only rehearsed finds a name taken without the store.
    names: HashMap<NameKey, Arc<str>>,
    /// Deleted objects whose delete (at this sequence) the follower has not reached yet.
    tombstones: HashMap<Key, u64>,
    /// The policies of every kind that decides, indexed for checks.
    engine: Engine,
    /// The highest log position the state reflects.
    position: u64,
    /// How many times an object was put or removed: it moves with every change of the state,
    /// a refresh from the store included, which the position does not.
    changes: u64,
}

impl Objects {
    pub fn new(registry: Arc<Registry>, instance: &str) -> Objects {
        Objects {
            engine: registry.engine(),
            registry,
            instance: instance.into(),
            tables: HashMap::default(),
            referrers: HashMap::default(),
            terms: HashMap::default(),
            names: HashMap::default(),
            tombstones: HashMap::default(),
            position: 0,
            changes: 0,
        }
    }

    /// The decision engine, holding what every object of this state puts into it.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The highest log position this state reflects: a consistency token for what it holds.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// A number that differs whenever the state has changed: what was decided from the state
    /// at one value holds while it stays.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Notes that the state reflects the log up to `position` (a snapshot's cursor).
    pub(crate) fn reflect(&mut self, position: u64) {
        self.position = self.position.max(position);
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// One object of kind `K`.
    pub fn get<K: Kind>(&self, id: &str) -> Option<Obj<K>> {
        let (id, entry) = self.tables.get(K::NAME)?.entries.get_key_value(id)?;
        typed::<K>(id, entry)
    }

    pub(crate) fn entry(&self, key: &Key) -> Option<&Entry> {
        self.tables.get(key.kind)?.entries.get(&*key.id)
    }

    /// Feeds what `proposed` would leave of each object into `into` (an overlay of the
    /// engine), as installing it would feed the engine.
    pub fn propose(&self, proposed: &[Proposed], into: &mut dyn Feed) {
        for p in proposed {
            if let Some(kind) = self.registry.kind(p.key.kind) {
                kind.decides(&p.key.id, &p.owner, p.state.as_ref(), into);
            }
        }
    }

    /// The id of the object of `kind` under `parent` (`""` at the top level) named `name`.
    pub fn named(&self, kind: &'static str, parent: &str, name: &str) -> Option<&Arc<str>> {
        self.names.get(&(kind, Arc::from(parent), Box::from(name)))
    }

    /// The latest sequence of an object, if it exists.
    pub fn sequence(&self, key: &Key) -> Option<u64> {
        self.entry(key).map(|entry| entry.meta.sequence)
    }

    /// How many objects there are.
    pub fn len(&self) -> usize {
        self.tables.values().map(|table| table.entries.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `limit` objects of kind `K` under `parent` ("" for the top level), in
    /// (created_at, id) order (newest first with `reverse`), strictly after `after`.
    pub fn page<K: Kind>(
        &self,
        parent: &str,
        after: Option<(Micros, &str)>,
        reverse: bool,
        limit: usize,
    ) -> Vec<Obj<K>> {
        let Some(table) = self.tables.get(K::NAME) else { return Vec::new() };
        let Some(list) = table.lists.get(parent) else { return Vec::new() };
        let bound = after.map(|(created_at, id)| (created_at, Arc::<str>::from(id)));
        let range = match (&bound, reverse) {
            (None, _) => list.range::<(Micros, Arc<str>), _>(..),
            (Some(after), false) => list.range((Bound::Excluded(after.clone()), Bound::Unbounded)),
            (Some(after), true) => list.range((Bound::Unbounded, Bound::Excluded(after.clone()))),
        };
        let pick =
            |(_, id): &(Micros, Arc<str>)| table.entries.get_key_value(&**id).and_then(|(id, e)| typed::<K>(id, e));
        if reverse {
            range.rev().filter_map(pick).take(limit).collect()
        } else {
            range.filter_map(pick).take(limit).collect()
        }
    }

    /// The objects that reference `key`, its owned objects included, in key order.
    pub fn referrers(&self, key: &Key) -> impl Iterator<Item = &Key> {
        self.referrers.get(key).into_iter().flatten()
    }

    /// The objects found under a lookup term, in key order.
    pub fn lookup(&self, index: &str, value: &str) -> impl Iterator<Item = &Key> {
        self.terms.get(index).and_then(|values| values.get(value)).into_iter().flatten()
    }

    /// The objects found under a lookup term, in key order, strictly after `after`.
    pub fn lookup_after(&self, index: &str, value: &str, after: Option<Key>) -> impl Iterator<Item = &Key> {
        let keys = self.terms.get(index).and_then(|values| values.get(value));
        let bound = match after {
            Some(key) => Bound::Excluded(key),
            None => Bound::Unbounded,
        };
        keys.into_iter().flat_map(move |keys| keys.range((bound.clone(), Bound::Unbounded)))
    }

    /// The parent an object with this owner is listed under.
    pub(crate) fn parent_of<'a>(&self, key: &Key, owner: &'a str) -> &'a str {
        parent(&self.instance, self.registry.owner(), key, owner)
    }

    /// The reference an object has to its owner, when an object owns it.
    pub(crate) fn owner_ref(&self, key: &Key, owner: &str) -> Option<Key> {
        let parent = self.parent_of(key, owner);
        (!parent.is_empty()).then(|| Key::new(self.registry.owner(), parent))
    }

    /// Every reference of a state with this owner: its owner first, then its kind's.
    pub(crate) fn refs_of(&self, key: &Key, owner: &str, state: &AnyState) -> Box<[Key]> {
        let mut refs = self.registry.kind(key.kind).map(|kind| kind.references(state)).unwrap_or_default();
        if let Some(owner) = self.owner_ref(key, owner) {
            refs.insert(0, owner);
        }
        let mut seen = std::collections::HashSet::new();
        refs.retain(|r| seen.insert(r.clone()));
        refs.into_boxed_slice()
    }

    fn terms_of(&self, key: &Key, state: &AnyState) -> Box<[Term]> {
        let mut terms = self.registry.kind(key.kind).map(|kind| kind.terms(state)).unwrap_or_default();
        terms.sort();
        terms.dedup();
        terms.into_boxed_slice()
    }

    /// Loads the objects of a snapshot.
    pub fn load(&mut self, objects: Vec<StoredObject>) -> Result<Loaded, ModelError> {
        let mut loaded = Loaded::default();
        for row in objects {
            let Some(kind) = self.registry.intern(&row.kind) else {
                loaded.unknown += 1;
                continue;
            };
            self.install_row(kind, row)?;
            loaded.objects += 1;
        }
        if loaded.unknown > 0 {
            tracing::warn!(rows = loaded.unknown, "the store holds objects of kinds this server does not know");
        }
        Ok(loaded)
    }

    /// Applies one event the log delivered.
    pub(crate) fn apply(&mut self, committed: Committed) -> Result<Applied, ModelError> {
        let mut event = committed.event;
        self.reflect(event.position);
        let Some(kind_name) = self.registry.intern(&event.kind) else { return Ok(Applied::Skipped) };
        let key = Key::new(kind_name, event.object_id.as_str());
        if let Some(&deleted_at) = self.tombstones.get(&key) {
            if event.sequence <= deleted_at {
                if event.sequence == deleted_at {
                    self.tombstones.remove(&key);
                }
                return Ok(Applied::Skipped);
            }
            self.tombstones.remove(&key);
        }
        let current = self.entry(&key);
        match current {
            Some(entry) if event.sequence <= entry.meta.sequence => return Ok(Applied::Skipped),
            Some(entry) if event.sequence != entry.meta.sequence + 1 => return Ok(Applied::Stale(key)),
            _ => {}
        }
        let Some(kind) = self.registry.kind(kind_name) else { return Ok(Applied::Skipped) };
        let before = current.map(|entry| entry.state.clone());
        let after = match kind.apply(&key.id, before.as_ref(), &event.event_type, std::mem::take(&mut event.payload)) {
            Ok(after) => after,
            // On PostgreSQL a snapshot may leave out an object that a transaction still
            // running at the time deleted: its later events arrive before the delete, and the
            // delete ends them. Anything else is a fault the store can correct.
            Err(_) if before.is_none() => return Ok(Applied::Skipped),
            Err(e) => {
                tracing::warn!(error = %e, position = event.position, "an event does not apply; reading the object");
                return Ok(Applied::Stale(key));
            }
        };
        self.install(key, after, &event, None);
        Ok(Applied::Changed)
    }

    /// Installs what this replica itself wrote: `state` after `event` (`None`: deleted).
    /// `created_at` is the object's when the event did not create it, `None` when it did.
    pub(crate) fn install_local(
        &mut self,
        key: Key,
        state: Option<AnyState>,
        event: &Event,
        created_at: Option<Micros>,
    ) {
        match self.entry(&key) {
            // The follower got here first.
            Some(entry) if entry.meta.sequence >= event.sequence => return,
            // A change or delete of an object the follower has seen go since.
            None if created_at.is_some() => return,
            _ => {}
        }
        if self.tombstones.get(&key).is_some_and(|&deleted_at| deleted_at >= event.sequence) {
            return;
        }
        if state.is_none() {
            self.tombstones.insert(key.clone(), event.sequence);
        }
        self.reflect(event.position);
        self.install(key, state, event, created_at);
    }

    /// Whether the store's `head` of an object is newer than what is here.
    pub(crate) fn is_behind(&self, key: &Key, head: &Head) -> bool {
        let here = self.sequence(key).or_else(|| self.tombstones.get(key).copied()).unwrap_or(0);
        head.sequence > here
    }

    /// Installs an object as the store has it now, if that is newer than what is here.
    pub(crate) fn install_head(&mut self, key: &Key, head: Head) -> Result<(), ModelError> {
        if !self.is_behind(key, &head) {
            return Ok(());
        }
        match head.object {
            Some(row) => self.install_row(key.kind, row)?,
            None => {
                self.remove(key);
                self.tombstones.insert(key.clone(), head.sequence);
            }
        }
        Ok(())
    }

    fn install_row(&mut self, kind_name: &'static str, row: StoredObject) -> Result<(), ModelError> {
        let Some(kind) = self.registry.kind(kind_name) else { return Ok(()) };
        let state = kind.decode_state(&row.state)?;
        let key = Key::new(kind_name, row.id);
        if self.tombstones.get(&key).is_some_and(|&deleted_at| deleted_at < row.sequence) {
            self.tombstones.remove(&key);
        }
        let meta = Meta {
            owner: row.owner.into(),
            sequence: row.sequence,
            created_at: row.created_at,
            updated_at: row.updated_at,
        };
        self.remove(&key);
        self.put(key, meta, state);
        Ok(())
    }

    fn install(&mut self, key: Key, state: Option<AnyState>, event: &Event, created_at: Option<Micros>) {
        let previous = self.remove(&key);
        let Some(state) = state else { return };
        let (owner, created_at) = match previous {
            Some(meta) => (meta.owner, meta.created_at),
            None => (Arc::from(event.owner.as_str()), created_at.unwrap_or(event.created_at)),
        };
        let meta = Meta { owner, sequence: event.sequence, created_at, updated_at: event.created_at };
        self.put(key, meta, state);
    }

    /// Indexes an object that is not here (callers remove what was).
    fn put(&mut self, key: Key, meta: Meta, state: AnyState) {
        self.changes += 1;
        let refs = self.refs_of(&key, &meta.owner, &state);
        let terms = self.terms_of(&key, &state);
        for target in refs.iter() {
            self.referrers.entry(target.clone()).or_default().insert(key.clone());
        }
        for term in terms.iter() {
            self.terms.entry(term.index).or_default().entry(term.value.clone()).or_default().insert(key.clone());
        }
        let parent: Arc<str> =
            if self.parent_of(&key, &meta.owner).is_empty() { Arc::from("") } else { meta.owner.clone() };
        if let Some(kind) = self.registry.kind(key.kind) {
            kind.decides(&key.id, &meta.owner, Some(&state), &mut self.engine);
            if let Some(name) = kind.name(&state) {
                self.names.insert((key.kind, parent.clone(), name), key.id.clone());
            }
        }
        let table = self.tables.entry(key.kind).or_default();
        table.lists.entry(parent).or_default().insert((meta.created_at, key.id.clone()));
        table.entries.insert(key.id, Entry { meta, state, refs, terms });
    }

    /// Takes an object out with everything that indexes it; answers its meta.
    fn remove(&mut self, key: &Key) -> Option<Meta> {
        self.changes += 1;
        let table = self.tables.get_mut(key.kind)?;
        let entry = table.entries.remove(&*key.id)?;
        let parent = parent(&self.instance, self.registry.owner(), key, &entry.meta.owner);
        if let Some(kind) = self.registry.kind(key.kind) {
            kind.decides(&key.id, &entry.meta.owner, None, &mut self.engine);
            if let Some(name) = kind.name(&entry.state) {
                let named = (key.kind, Arc::from(parent), name);
                if self.names.get(&named) == Some(&key.id) {
                    self.names.remove(&named);
                }
            }
        }
        if let Some(list) = table.lists.get_mut(parent) {
            list.remove(&(entry.meta.created_at, key.id.clone()));
            if list.is_empty() {
                table.lists.remove(parent);
            }
        }
        for target in entry.refs.iter() {
            if let Some(set) = self.referrers.get_mut(target) {
                set.remove(key);
                if set.is_empty() {
                    self.referrers.remove(target);
                }
            }
        }
        for term in entry.terms.iter() {
            if let Some(values) = self.terms.get_mut(term.index) {
                if let Some(set) = values.get_mut(&term.value) {
                    set.remove(key);
                    if set.is_empty() {
                        values.remove(&term.value);
                    }
                }
                if values.is_empty() {
                    self.terms.remove(term.index);
                }
            }
        }
        Some(entry.meta)
    }

    /// The sizes of the indexes: for tests, which check nothing is left behind.
    #[cfg(test)]
    pub(crate) fn index_sizes(&self) -> (usize, usize, usize, usize) {
        let lists = self.tables.values().map(|t| t.lists.len()).sum();
        let terms = self.terms.values().map(|values| values.len()).sum();
        (lists, self.referrers.len(), terms, self.tombstones.len())
    }
}

/// The parent an object is listed under: the organization that owns it; the top level ("")
/// for what the instance owns and for an organization, which owns itself. Only an
/// organization owns itself: an organization's domain policy shares its id.
fn parent<'a>(instance: &str, owner_kind: &str, key: &Key, owner: &'a str) -> &'a str {
    let owns_itself = key.kind == owner_kind && owner == &*key.id;
    if owner == instance || owns_itself { "" } else { owner }
}

fn typed<K: Kind>(id: &Arc<str>, entry: &Entry) -> Option<Obj<K>> {
    let state = entry.state.clone().downcast::<K::State>().ok()?;
    Some(Obj::new(id.clone(), entry.meta.clone(), state))
}
