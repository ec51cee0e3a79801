//! One request's writes, planned against the replica's state: the builders every use case
//! writes through. A create, a change or a delete of a typed object becomes the store's
//! [`Append`] (its event, its next state, its name and references), guarded on the objects
//! it starts to reference; a delete first plans what the registry says its referrers do
//! (refuse, cascade, or drop the reference). Nothing here is per kind.
//!
//! The draft remembers what it read, so a use case whose plan turns out stale (a conflict
//! in the store, or a missing object this replica has not heard of yet) can refresh exactly
//! those objects from the store and plan again.

use std::collections::HashSet;
use std::sync::Arc;

use super::ModelError;
use super::kind::{Key, Kind, OnDelete, encode_event};
use super::objects::{Entry, Obj, Objects, Proposed};
use super::registry::{AnyState, Detached, Next, next};
use crate::store::{Append, Change, Expect, Guard, Micros, ObjectKey};

/// One write with what this replica installs once it commits.
pub(crate) struct Planned {
    pub key: Key,
    pub append: Append,
    /// The state after the write; `None` for a delete.
    pub state: Option<AnyState>,
    /// The object's created_at when the write does not create it.
    pub created_at: Option<Micros>,
}

/// A finished plan: the writes, the guards, and the objects the plan was made from.
pub struct Plan {
    pub(crate) planned: Vec<Planned>,
    pub(crate) guards: Vec<Guard>,
    pub reads: Reads,
}

impl Plan {
    /// The unique names the plan's writes give: (object, parent, name).
    pub fn names(&self) -> impl Iterator<Item = (&Key, &str, &str)> {
        self.planned.iter().filter_map(|planned| match &planned.append.change {
            Change::Put { parent, name: Some(name), .. } => Some((&planned.key, parent.as_str(), name.as_str())),
            _ => None,
        })
    }

    /// What the plan would leave of each object it writes, owned as `objects` says for the
    /// ones it deletes.
    pub fn proposed(&self, objects: &Objects) -> Vec<Proposed> {
        self.planned
            .iter()
            .map(|planned| {
                let owner = match &planned.append.change {
                    Change::Put { owner, .. } => Arc::from(owner.as_str()),
                    Change::Delete => {
                        objects.entry(&planned.key).map_or_else(|| Arc::from(""), |e| e.meta.owner.clone())
                    }
                };
                Proposed { key: planned.key.clone(), owner, state: planned.state.clone() }
            })
            .collect()
    }
}

/// The objects a plan read, each with the sequence it found (`None`: absent).
#[derive(Clone, Debug, Default)]
pub struct Reads(Vec<(Key, Option<u64>)>);

impl Reads {
    fn note(&mut self, key: Key, seen: Option<u64>) {
        self.0.push((key, seen));
    }

    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.0.iter().map(|(key, _)| key)
    }

    /// Whether any of them stands otherwise in `objects` now than when it was read.
    pub fn changed_in(&self, objects: &Objects) -> bool {
        self.0.iter().any(|(key, seen)| objects.sequence(key) != *seen)
    }
}

pub struct Draft<'a> {
    objects: &'a Objects,
    planned: Vec<Planned>,
    guards: Vec<Guard>,
    written: HashSet<Key>,
    reads: Reads,
}

impl<'a> Draft<'a> {
    pub fn new(objects: &'a Objects) -> Draft<'a> {
        Draft { objects, planned: Vec::new(), guards: Vec::new(), written: HashSet::new(), reads: Reads::default() }
    }

    /// The decision engine of the state the plan reads, for rules that ask it (who may
    /// assign a tenant).
    pub fn engine(&self) -> &'a iamd_engine::Engine {
        self.objects.engine()
    }

    /// Lookup terms of the state the plan reads (`Objects::lookup`); the objects found are
    /// read with [`Draft::get`], which the plan then depends on.
    pub fn lookup(&self, index: &str, value: &str) -> Vec<Key> {
        self.objects.lookup(index, value).cloned().collect()
    }

    /// The objects that reference `key` (`Objects::referrers`).
    pub fn referrers(&self, key: &Key) -> Vec<Key> {
        self.objects.referrers(key).cloned().collect()
    }

    /// Reads one object and remembers that the plan depends on it.
    pub fn get<K: Kind>(&mut self, id: &str) -> Option<Obj<K>> {
        let found = self.objects.get::<K>(id);
        self.reads.note(Key::new(K::NAME, id), found.as_ref().map(|obj| obj.meta.sequence));
        found
    }

    /// Creates an object of kind `K` owned by `owner` (an organization's id, or the
    /// instance's), with the event that creates it.
    pub fn create<K: Kind>(&mut self, id: &str, owner: &str, event: K::Event) -> Result<(), ModelError> {
        let next = next::<K>(id, None, &event)?.ok_or_else(|| apply_error::<K>(id, "the event creates nothing"))?;
        self.put(Key::new(K::NAME, id), owner, None, next, Expect::Absent)
    }

    /// Changes `current` by `event`, expecting it unchanged since it was read.
    pub fn change<K: Kind>(&mut self, current: &Obj<K>, event: K::Event) -> Result<(), ModelError> {
        let next = next::<K>(&current.id, Some(&current.state), &event)?
            .ok_or_else(|| apply_error::<K>(&current.id, "a change that deletes; delete it instead"))?;
        let entry = self.objects.entry(&current.key());
        self.put(current.key(), &current.meta.owner, entry, next, Expect::Sequence(current.meta.sequence))
    }

    /// Deletes `current` by `event`, expecting it unchanged since it was read, after what
    /// its referrers' kinds say a delete does to them. A referrer that restricts the delete
    /// fails the plan with [`ModelError::StillReferenced`], naming every such referrer.
    pub fn delete<K: Kind>(&mut self, current: &Obj<K>, event: K::Event) -> Result<(), ModelError> {
        match K::apply(Some(&current.state), &event) {
            Ok(None) => {}
            Ok(Some(_)) => return Err(apply_error::<K>(&current.id, "the event does not delete")),
            Err(message) => return Err(apply_error::<K>(&current.id, &message)),
        }
        let (event_type, payload) = encode_event::<K>(&event)?;
        self.remove(current.key(), current.meta.sequence, current.meta.created_at, event_type, payload)
    }

    /// Asserts, in the write's transaction, that an object the plan does not write is as
    /// expected: `Exists` for a reference, `Sequence` when the rule depends on its version.
    pub fn guard(&mut self, key: Key, expect: Expect) {
        let seen = self.objects.sequence(&key);
        self.reads.note(key.clone(), seen);
        self.add_guard(&key, expect);
    }

    pub fn finish(self) -> Plan {
        Plan { planned: self.planned, guards: self.guards, reads: self.reads }
    }

    fn claim(&mut self, key: &Key) -> Result<(), ModelError> {
        if self.written.insert(key.clone()) {
            Ok(())
        } else {
            Err(ModelError::WrittenTwice { kind: key.kind, id: key.id.to_string() })
        }
    }

    fn add_guard(&mut self, key: &Key, expect: Expect) {
        let exists = self.guards.iter().any(|g| g.kind == key.kind && *g.id == *key.id);
        if !exists {
            self.guards.push(Guard { kind: key.kind.to_owned(), id: key.id.to_string(), expect });
        }
    }

    fn put(
        &mut self,
        key: Key,
        owner: &str,
        current: Option<&Entry>,
        next: Next,
        expect: Expect,
    ) -> Result<(), ModelError> {
        self.claim(&key)?;
        let refs = self.objects.refs_of(&key, owner, &next.state);
        let old: HashSet<&Key> = current.map(|entry| entry.refs.iter().collect()).unwrap_or_default();
        let unchanged = current.is_some() && old.len() == refs.len() && refs.iter().all(|r| old.contains(r));
        for target in refs.iter().filter(|r| !old.contains(r)) {
            if !self.written.contains(target) {
                self.add_guard(target, Expect::Exists);
            }
        }
        let stored_refs = (!unchanged).then(|| refs.iter().map(|r| ObjectKey::new(r.kind, &*r.id)).collect());
        let append = Append {
            kind: key.kind.to_owned(),
            id: key.id.to_string(),
            expect,
            event_type: next.event_type,
            payload: next.payload,
            change: Change::Put {
                owner: owner.to_owned(),
                parent: self.objects.parent_of(&key, owner).to_owned(),
                name: next.name,
                state: next.json,
                refs: stored_refs,
            },
        };
        let created_at = current.map(|entry| entry.meta.created_at);
        self.planned.push(Planned { key, append, state: Some(next.state), created_at });
        Ok(())
    }

    /// Plans the delete of `key` after its referrers', depth first, so that every object
    /// is gone (or no longer refers to it) before what it referenced goes. Every referrer
    /// that holds the delete back is named before any cascade is planned, so a refusal names
    /// the object's own dependents, not those of something that would have gone with it.
    fn remove(
        &mut self,
        key: Key,
        sequence: u64,
        created_at: Micros,
        event_type: String,
        payload: serde_json::Value,
    ) -> Result<(), ModelError> {
        self.claim(&key)?;
        let objects = self.objects;
        let mut blocked = Vec::new();
        // (referrer, its kind, its entry, cascade rather than detach)
        let mut planned = Vec::new();
        for referrer in objects.referrers(&key) {
            if self.written.contains(referrer) {
                continue;
            }
            let entry = objects.entry(referrer);
            self.reads.note(referrer.clone(), entry.map(|entry| entry.meta.sequence));
            let (Some(kind), Some(entry)) = (objects.registry().kind(referrer.kind), entry) else {
                continue;
            };
            match kind.on_delete(&referrer.id, &entry.state, key.kind)? {
                OnDelete::Restrict => blocked.push(referrer.clone()),
                OnDelete::Cascade => planned.push((referrer, kind, entry, true)),
                OnDelete::Detach => planned.push((referrer, kind, entry, false)),
            }
        }
        if !blocked.is_empty() {
            return Err(ModelError::StillReferenced { target: key, by: blocked });
        }
        for (referrer, kind, entry, cascade) in planned {
            // An earlier referrer's cascade may have planned this one already.
            if self.written.contains(referrer) {
                continue;
            }
            if cascade {
                let (event_type, payload) = kind.removal(&referrer.id, &entry.state)?;
                let (sequence, created_at) = (entry.meta.sequence, entry.meta.created_at);
                self.remove(referrer.clone(), sequence, created_at, event_type, payload)?;
                continue;
            }
            match kind.detach(&referrer.id, &entry.state, &key)? {
                Some(Detached::Changed(next)) => {
                    let expect = Expect::Sequence(entry.meta.sequence);
                    self.put(referrer.clone(), &entry.meta.owner, Some(entry), next, expect)?;
                }
                Some(Detached::Removed { event_type, payload }) => {
                    let (sequence, created_at) = (entry.meta.sequence, entry.meta.created_at);
                    self.remove(referrer.clone(), sequence, created_at, event_type, payload)?;
                }
                None => return Err(ModelError::StillReferenced { target: key, by: vec![referrer.clone()] }),
            }
        }
        let append = Append {
            kind: key.kind.to_owned(),
            id: key.id.to_string(),
            expect: Expect::Sequence(sequence),
            event_type,
            payload,
            change: Change::Delete,
        };
        self.planned.push(Planned { key, append, state: None, created_at: Some(created_at) });
        Ok(())
    }
}

fn apply_error<K: Kind>(id: &str, message: &str) -> ModelError {
    ModelError::Apply { kind: K::NAME, id: id.to_owned(), message: message.to_owned() }
}
