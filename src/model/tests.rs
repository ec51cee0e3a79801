//! The object model against test-only kinds: a tally whose events add up (so an event
//! applied twice shows), which names members (a lookup term) and roles (references that a
//! role's delete detaches), and a role that restricts its organization's delete.
//!
//! The pure parts run on their own; the replica runs on every backend through the store's
//! conformance harness.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing, reason = "a failing test panics")]

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ModelError;
use super::draft::Draft;
use super::kind::{Key, Kind, OnDelete, Term, encode_event};
use super::objects::Objects;
use super::registry::Registry;
use super::replica::{Replica, WaitError};
use crate::kinds::organization::{Organization, OrganizationEvent};
use crate::store::conformance::{Harness, Target, run};
use crate::store::{Change, Committed, Event, Expect, LogCursor, Store, StoreError, StoredObject};

pub(crate) struct Tally;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TallyState {
    total: i64,
    members: Vec<String>,
    roles: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub(crate) enum TallyEvent {
    #[serde(rename = "tally.added")]
    Added {},
    #[serde(rename = "tally.counted")]
    Counted { n: i64 },
    #[serde(rename = "tally.members.added")]
    MembersAdded { members: Vec<String> },
    #[serde(rename = "tally.roles.set")]
    RolesSet { roles: Vec<String> },
    #[serde(rename = "tally.removed")]
    Removed {},
}

impl Kind for Tally {
    const NAME: &'static str = "tally";
    type State = TallyState;
    type Event = TallyEvent;

    fn apply(state: Option<&TallyState>, event: &TallyEvent) -> Result<Option<TallyState>, String> {
        let mut next = match (state, event) {
            (None, TallyEvent::Added {}) => return Ok(Some(TallyState::default())),
            (Some(_), TallyEvent::Removed {}) => return Ok(None),
            (Some(state), _) => state.clone(),
            (None, _) => return Err("no such tally".into()),
        };
        match event {
            TallyEvent::Counted { n } => next.total += n,
            TallyEvent::MembersAdded { members } => next.members.extend(members.iter().cloned()),
            TallyEvent::RolesSet { roles } => next.roles.clone_from(roles),
            TallyEvent::Added {} | TallyEvent::Removed {} => return Err("not a change".into()),
        }
        Ok(Some(next))
    }

    fn removal(_: &TallyState) -> TallyEvent {
        TallyEvent::Removed {}
    }

    fn references(state: &TallyState) -> Vec<Key> {
        state.roles.iter().map(|role| Key::new(Role::NAME, role.as_str())).collect()
    }

    fn terms(state: &TallyState) -> Vec<Term> {
        state.members.iter().map(|member| Term::new("member", member.as_str())).collect()
    }

    fn on_delete(_: &TallyState, target: &'static str) -> OnDelete {
        if target == Role::NAME { OnDelete::Detach } else { OnDelete::Cascade }
    }

    fn detach(state: &TallyState, target: &Key) -> Option<TallyEvent> {
        let roles = state.roles.iter().filter(|role| role.as_str() != &*target.id).cloned().collect();
        Some(TallyEvent::RolesSet { roles })
    }
}

pub(crate) struct Role;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RoleState {
    name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub(crate) enum RoleEvent {
    #[serde(rename = "role.added")]
    Added { name: String },
    #[serde(rename = "role.removed")]
    Removed {},
}

impl Kind for Role {
    const NAME: &'static str = "role";
    type State = RoleState;
    type Event = RoleEvent;

    fn apply(state: Option<&RoleState>, event: &RoleEvent) -> Result<Option<RoleState>, String> {
        match (state, event) {
            (None, RoleEvent::Added { name }) => Ok(Some(RoleState { name: name.clone() })),
            (Some(_), RoleEvent::Removed {}) => Ok(None),
            _ => Err("does not apply".into()),
        }
    }

    fn removal(_: &RoleState) -> RoleEvent {
        RoleEvent::Removed {}
    }

    fn name(state: &RoleState) -> Option<&str> {
        Some(&state.name)
    }
}

pub(crate) fn registry() -> Registry {
    Registry::new::<Organization>().with::<Tally>().with::<Role>()
}

const INSTANCE: &str = "instance";

fn objects() -> Objects {
    Objects::new(Arc::new(registry()), INSTANCE)
}

fn row(kind: &str, id: &str, owner: &str, state: serde_json::Value, sequence: u64, at: i64) -> StoredObject {
    StoredObject {
        kind: kind.into(),
        id: id.into(),
        owner: owner.into(),
        parent: String::new(),
        name: None,
        state: state.to_string(),
        sequence,
        created_at: at,
        updated_at: at,
    }
}

fn event(kind: &str, id: &str, owner: &str, sequence: u64, tally: &TallyEvent) -> Committed {
    let (event_type, payload) = encode_event::<Tally>(tally).unwrap();
    let position = sequence + 100;
    Committed {
        cursor: LogCursor { epoch: 0, position },
        event: Event {
            position,
            kind: kind.into(),
            object_id: id.into(),
            sequence,
            event_type,
            payload,
            actor: "test".into(),
            owner: owner.into(),
            created_at: position as i64,
        },
    }
}

fn total(objects: &Objects, id: &str) -> Option<i64> {
    objects.get::<Tally>(id).map(|tally| tally.total)
}

// ---------------------------------------------------------------------------------------
// The typed state and its indexes

#[test]
fn events_are_stored_as_their_type_and_what_changed() {
    let (event_type, payload) = encode_event::<Tally>(&TallyEvent::Counted { n: 3 }).unwrap();
    assert_eq!((event_type.as_str(), payload), ("tally.counted", json!({ "n": 3 })));
    let (event_type, payload) = encode_event::<Tally>(&TallyEvent::Removed {}).unwrap();
    assert_eq!((event_type.as_str(), payload), ("tally.removed", json!({})));
    let decoded = super::kind::decode_event::<Tally>("tally.counted", json!({ "n": 3 })).unwrap();
    assert_eq!(decoded, TallyEvent::Counted { n: 3 });
    assert!(super::kind::decode_event::<Tally>("tally.exploded", json!({})).is_err());
}

#[test]
fn the_follower_applies_each_event_once_in_sequence() {
    let mut objects = objects();
    objects.load(vec![row("tally", "t", "org-1", json!({ "total": 5, "members": [], "roles": [] }), 2, 1)]).unwrap();
    // Already in the snapshot: skipped, whatever it says.
    let skipped = objects.apply(event("tally", "t", "org-1", 2, &TallyEvent::Counted { n: 100 })).unwrap();
    assert_eq!(skipped, super::objects::Applied::Skipped);
    objects.apply(event("tally", "t", "org-1", 3, &TallyEvent::Counted { n: 10 })).unwrap();
    assert_eq!(total(&objects, "t"), Some(15));
    assert_eq!(objects.get::<Tally>("t").unwrap().meta.sequence, 3);
    // A gap: the state here cannot take it, and says so instead of guessing.
    let gap = objects.apply(event("tally", "t", "org-1", 5, &TallyEvent::Counted { n: 1 })).unwrap();
    assert_eq!(gap, super::objects::Applied::Stale(Key::new("tally", "t")));
    assert_eq!(total(&objects, "t"), Some(15));
    // Kinds this server does not know are left alone.
    let mut unknown = event("tally", "x", "org-1", 1, &TallyEvent::Added {});
    unknown.event.kind = "gadget".into();
    assert_eq!(objects.apply(unknown).unwrap(), super::objects::Applied::Skipped);
}

#[test]
fn indexes_follow_every_change_and_leave_nothing_behind() {
    let mut objects = objects();
    objects.load(vec![row("organization", "org-1", "org-1", json!({ "name": "a", "domain": "" }), 1, 1)]).unwrap();
    objects.load(vec![row("role", "r1", "org-1", json!({ "name": "r1" }), 1, 2)]).unwrap();
    for (i, id) in ["t1", "t2", "t3"].into_iter().enumerate() {
        objects.apply(event("tally", id, "org-1", 1, &TallyEvent::Added {})).unwrap();
        let members = vec![format!("user:local:{i}"), "user:local:shared".into()];
        objects.apply(event("tally", id, "org-1", 2, &TallyEvent::MembersAdded { members })).unwrap();
    }
    objects.apply(event("tally", "t2", "org-1", 3, &TallyEvent::RolesSet { roles: vec!["r1".into()] })).unwrap();

    // Children of the owner in list order, and pages of them.
    let page = |after: Option<(i64, &str)>, reverse| {
        objects.page::<Tally>("org-1", after, reverse, 2).iter().map(|t| t.id.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(page(None, false), ["t1", "t2"]);
    let t2 = objects.get::<Tally>("t2").unwrap();
    assert_eq!(page(Some((t2.meta.created_at, "t2")), false), ["t3"]);
    assert_eq!(page(None, true), ["t3", "t2"]);
    assert_eq!(objects.page::<Tally>("org-1", None, false, 10).len(), 3);
    assert!(objects.page::<Tally>("", None, false, 10).is_empty(), "owned objects are not top level");
    assert_eq!(objects.page::<Organization>("", None, false, 10).len(), 1);
    // Who references what: the owner, and the role.
    let org = Key::new("organization", "org-1");
    let referrers: Vec<String> = objects.referrers(&org).map(|k| k.to_string()).collect();
    assert_eq!(referrers, ["role `r1`", "tally `t1`", "tally `t2`", "tally `t3`"]);
    let role: Vec<&Key> = objects.referrers(&Key::new("role", "r1")).collect();
    assert_eq!(role, [&Key::new("tally", "t2")]);
    // Lookup terms.
    assert_eq!(objects.lookup("member", "user:local:shared").count(), 3);
    assert_eq!(objects.lookup("member", "user:local:1").collect::<Vec<_>>(), [&Key::new("tally", "t2")]);
    assert_eq!(objects.lookup("member", "user:local:nobody").count(), 0);

    // A change moves the entries; a delete removes them.
    objects.apply(event("tally", "t2", "org-1", 4, &TallyEvent::RolesSet { roles: vec![] })).unwrap();
    assert_eq!(objects.referrers(&Key::new("role", "r1")).count(), 0);
    for id in ["t1", "t2", "t3"] {
        let sequence = objects.get::<Tally>(id).unwrap().meta.sequence;
        objects.apply(event("tally", id, "org-1", sequence + 1, &TallyEvent::Removed {})).unwrap();
    }
    assert_eq!(objects.len(), 2);
    // Left: the organization's list, and its referrer (the role) — no empty sets, no markers.
    assert_eq!(objects.index_sizes(), (2, 1, 0, 0));
}

/// Lists go by created_at, then id in byte order; `after` is exclusive, inside a run of
/// equal created_at too.
#[test]
fn pages_break_ties_by_id_and_start_strictly_after_their_key() {
    let mut objects = objects();
    let tally = json!({ "total": 0, "members": [], "roles": [] });
    let rows: Vec<StoredObject> = [("m", 10), ("k", 10), ("l", 10), ("L", 10), ("b", 20), ("a", 20), ("f", 30)]
        .into_iter()
        .map(|(id, at)| row("tally", id, "org-1", tally.clone(), 1, at))
        .chain([row("tally", "elsewhere", "org-2", tally.clone(), 1, 5)])
        .collect();
    objects.load(rows).unwrap();
    let ids = |after: Option<(i64, &str)>, reverse: bool, limit: usize| {
        objects.page::<Tally>("org-1", after, reverse, limit).iter().map(|t| t.id.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(ids(None, false, 100), ["L", "k", "l", "m", "a", "b", "f"]);
    assert_eq!(ids(None, true, 3), ["f", "b", "a"]);
    assert_eq!(ids(Some((10, "l")), false, 10), ["m", "a", "b", "f"]);
    assert_eq!(ids(Some((10, "l")), true, 10), ["k", "L"]);
    assert_eq!(ids(Some((30, "f")), false, 10), Vec::<String>::new());
    assert!(ids(None, false, 0).is_empty());
    assert!(objects.page::<Tally>("org-9", None, false, 10).is_empty());
}

#[test]
fn an_own_delete_keeps_the_follower_from_bringing_the_object_back() {
    let mut objects = objects();
    let created = event("tally", "t", "org-1", 1, &TallyEvent::Added {});
    let removed = event("tally", "t", "org-1", 2, &TallyEvent::Removed {});
    objects.install_local(Key::new("tally", "t"), Some(Arc::new(TallyState::default())), &created.event, None);
    objects.install_local(Key::new("tally", "t"), None, &removed.event, Some(1));
    assert!(objects.get::<Tally>("t").is_none());
    // The follower arrives later with both events: the object stays gone, and the marker
    // goes once the follower reaches the delete.
    objects.apply(created).unwrap();
    assert!(objects.get::<Tally>("t").is_none());
    objects.apply(removed).unwrap();
    assert_eq!(objects.index_sizes().3, 0);
    // A later create applies.
    objects.apply(event("tally", "t", "org-1", 3, &TallyEvent::Added {})).unwrap();
    assert_eq!(objects.get::<Tally>("t").unwrap().meta.sequence, 3);
}

// ---------------------------------------------------------------------------------------
// Drafts: what writes a plan makes

fn with_org_and_role() -> Objects {
    let mut objects = objects();
    objects
        .load(vec![
            row("organization", "org-1", "org-1", json!({ "name": "a", "domain": "" }), 1, 1),
            row("role", "r1", "org-1", json!({ "name": "r1" }), 1, 2),
            row("role", "r2", "org-1", json!({ "name": "r2" }), 1, 3),
        ])
        .unwrap();
    objects
}

#[test]
fn a_create_is_guarded_on_what_it_references() {
    let objects = with_org_and_role();
    let mut draft = Draft::new(&objects);
    draft.create::<Tally>("t1", "org-1", TallyEvent::Added {}).unwrap();
    let plan = draft.finish();
    let append = &plan.planned[0].append;
    assert_eq!((append.kind.as_str(), append.id.as_str(), append.expect), ("tally", "t1", Expect::Absent));
    assert_eq!(append.event_type, "tally.added");
    let Change::Put { owner, parent, refs, state, .. } = &append.change else { panic!("a put") };
    assert_eq!((owner.as_str(), parent.as_str()), ("org-1", "org-1"));
    assert_eq!(
        refs.as_ref().unwrap().iter().map(|r| (r.kind.as_str(), r.id.as_str())).collect::<Vec<_>>(),
        [("organization", "org-1")]
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(state).unwrap(),
        json!({ "total": 0, "members": [], "roles": [] })
    );
    assert_eq!(plan.guards.len(), 1);
    assert_eq!((plan.guards[0].kind.as_str(), plan.guards[0].expect), ("organization", Expect::Exists));
}

/// An organization's domain policy shares the organization's id: it is still owned, so
/// listed under it, referencing it, and deleted with it.
#[test]
fn an_object_with_its_owners_id_is_owned_not_top_level() {
    let objects = with_org_and_role();
    let mut draft = Draft::new(&objects);
    draft.create::<Tally>("org-1", "org-1", TallyEvent::Added {}).unwrap();
    let plan = draft.finish();
    let Change::Put { parent, refs, .. } = &plan.planned[0].append.change else { panic!("a put") };
    assert_eq!(parent, "org-1");
    assert_eq!(refs.as_ref().unwrap(), &[crate::store::ObjectKey::new("organization", "org-1")]);

    let mut objects = objects;
    objects.apply(event("tally", "org-1", "org-1", 1, &TallyEvent::Added {})).unwrap();
    assert_eq!(objects.page::<Tally>("org-1", None, false, 10).len(), 1);
    assert!(objects.page::<Tally>("", None, false, 10).is_empty());
    assert!(objects.referrers(&Key::new("organization", "org-1")).any(|r| *r == Key::new("tally", "org-1")));
}

#[test]
fn a_change_writes_its_references_only_when_they_change() {
    let mut objects = with_org_and_role();
    objects.apply(event("tally", "t", "org-1", 1, &TallyEvent::Added {})).unwrap();
    let tally = objects.get::<Tally>("t").unwrap();
    let mut draft = Draft::new(&objects);
    draft.change(&tally, TallyEvent::Counted { n: 2 }).unwrap();
    let plan = draft.finish();
    let Change::Put { refs, .. } = &plan.planned[0].append.change else { panic!("a put") };
    assert_eq!((refs, plan.guards.len(), plan.planned[0].append.expect), (&None, 0, Expect::Sequence(1)));

    let mut draft = Draft::new(&objects);
    draft.change(&tally, TallyEvent::RolesSet { roles: vec!["r1".into()] }).unwrap();
    let plan = draft.finish();
    let Change::Put { refs, .. } = &plan.planned[0].append.change else { panic!("a put") };
    assert_eq!(refs.as_ref().unwrap().len(), 2);
    assert_eq!(plan.guards.iter().map(|g| (g.kind.as_str(), g.id.as_str())).collect::<Vec<_>>(), [("role", "r1")]);
}

#[test]
fn a_delete_cascades_detaches_and_restricts_as_the_kinds_say() {
    let mut objects = with_org_and_role();
    objects.apply(event("tally", "t", "org-1", 1, &TallyEvent::Added {})).unwrap();
    let roles = vec!["r1".into(), "r2".into()];
    objects.apply(event("tally", "t", "org-1", 2, &TallyEvent::RolesSet { roles })).unwrap();

    // A role's delete detaches it from the tally first.
    let r1 = objects.get::<Role>("r1").unwrap();
    let mut draft = Draft::new(&objects);
    draft.delete(&r1, RoleEvent::Removed {}).unwrap();
    let plan = draft.finish();
    let order: Vec<(&str, &str, &str)> = plan
        .planned
        .iter()
        .map(|p| (p.append.kind.as_str(), p.append.id.as_str(), p.append.event_type.as_str()))
        .collect();
    assert_eq!(order, [("tally", "t", "tally.roles.set"), ("role", "r1", "role.removed")]);
    assert_eq!(plan.planned[0].append.payload, json!({ "roles": ["r2"] }));

    // The organization's delete: the tally would cascade, but the roles restrict it.
    let org = objects.get::<Organization>("org-1").unwrap();
    let mut draft = Draft::new(&objects);
    let refused = draft.delete(&org, OrganizationEvent::Removed {}).unwrap_err();
    let ModelError::StillReferenced { target, by } = refused else { panic!("{refused:?}") };
    assert_eq!(target, Key::new("organization", "org-1"));
    assert_eq!(by, [Key::new("role", "r1"), Key::new("role", "r2")]);

    // Without the roles the tally goes first, then the organization.
    let mut objects = objects;
    for role in ["r1", "r2"] {
        objects.install_head(&Key::new("role", role), crate::store::Head { object: None, sequence: 2 }).unwrap();
    }
    let org = objects.get::<Organization>("org-1").unwrap();
    let mut draft = Draft::new(&objects);
    draft.delete(&org, OrganizationEvent::Removed {}).unwrap();
    let plan = draft.finish();
    let order: Vec<&str> = plan.planned.iter().map(|p| p.append.event_type.as_str()).collect();
    assert_eq!(order, ["tally.removed", "org.removed"]);
    assert_eq!(plan.planned[0].append.expect, Expect::Sequence(2));
}

// ---------------------------------------------------------------------------------------
// The replica, on every backend

async fn replica(store: Arc<dyn Store>) -> Arc<Replica> {
    Replica::open(store, registry(), Duration::from_millis(20)).await.unwrap()
}

/// Writes `f`'s plan through the replica as `test`.
async fn write(replica: &Replica, f: impl FnOnce(&mut Draft<'_>)) -> super::replica::Written {
    let plan = {
        let objects = replica.read().unwrap();
        let mut draft = Draft::new(&objects);
        f(&mut draft);
        draft.finish()
    };
    replica.commit("test", plan).await.unwrap()
}

async fn seed(replica: &Replica, tallies: usize, counts: i64) {
    write(replica, |d| {
        d.create::<Organization>(
            "org-1",
            "org-1",
            OrganizationEvent::Added { name: "a".into(), domain: String::new() },
        )
        .unwrap();
    })
    .await;
    for t in 0..tallies {
        let id = format!("t{t}");
        write(replica, |d| d.create::<Tally>(&id, "org-1", TallyEvent::Added {}).unwrap()).await;
        for _ in 0..counts {
            let tally = replica.read().unwrap().get::<Tally>(&id).unwrap();
            write(replica, |d| d.change(&tally, TallyEvent::Counted { n: 1 }).unwrap()).await;
        }
    }
}

/// A replica starts from the rows: on a store whose history is eight times its state it
/// reads nothing of that history, and holds every object as the writer left it.
pub(crate) async fn a_replica_starts_from_state_not_history(h: Arc<Harness>) {
    let backend = h.backend().await;
    let writer = replica(backend.open().await.unwrap()).await;
    seed(&writer, 20, 7).await;
    let expected: Vec<(i64, u64)> = (0..20)
        .map(|t| {
            let tally = writer.read().unwrap().get::<Tally>(&format!("t{t}")).unwrap();
            (tally.total, tally.meta.sequence)
        })
        .collect();
    assert_eq!(expected[0], (7, 8));
    writer.close().await.unwrap();

    let started = replica(backend.open().await.unwrap()).await;
    assert_eq!(started.started().loaded.objects, 21);
    // Nothing of the history applies again. SQLite reads none of it; on PostgreSQL the log
    // after the snapshot starts below every transaction then running (other tests' too).
    assert_eq!(started.started().applied, 0);
    if h.target() == Target::Sqlite {
        assert_eq!(started.started().followed, 0);
    }
    let objects = started.read().unwrap();
    for (t, (total, sequence)) in expected.iter().enumerate() {
        let tally = objects.get::<Tally>(&format!("t{t}")).unwrap();
        assert_eq!((tally.total, tally.meta.sequence), (*total, *sequence), "t{t}");
    }
}

/// On PostgreSQL a write may commit after a later one, and after a replica took its snapshot
/// without it: the replica applies it once when it commits, and nothing twice.
pub(crate) async fn a_replica_applies_a_late_commit_once(h: Arc<Harness>) {
    let backend = h.backend().await;
    let store = backend.open().await.unwrap();
    let writer = replica(store.clone()).await;
    seed(&writer, 2, 2).await;
    // t0 stands at total 2, sequence 3; a write counting 10 more takes its position, then waits.
    let (event_type, payload) = encode_event::<Tally>(&TallyEvent::Counted { n: 10 }).unwrap();
    let late = Event {
        position: 0,
        kind: "tally".into(),
        object_id: "t0".into(),
        sequence: 4,
        event_type,
        payload,
        actor: "test".into(),
        owner: "org-1".into(),
        created_at: 1,
    };
    let state = json!({ "total": 12, "members": [], "roles": [] }).to_string();
    let row =
        StoredObject { sequence: 4, state, parent: "org-1".into(), ..row("tally", "t0", "org-1", json!({}), 4, 1) };
    let held = backend.hold_open(&late, &row).await.expect("a backend that can commit late");
    // A later write commits first; the new replica's snapshot holds it, but not the late one.
    let t1 = writer.read().unwrap().get::<Tally>("t1").unwrap();
    write(&writer, |d| d.change(&t1, TallyEvent::Counted { n: 5 }).unwrap()).await;
    let follower = replica(backend.open().await.unwrap()).await;
    assert_eq!(total(&follower.read().unwrap(), "t0"), Some(2));
    held.commit().await;
    for _ in 0..500 {
        if total(&follower.read().unwrap(), "t0") == Some(12) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let objects = follower.read().unwrap();
    assert_eq!(total(&objects, "t0"), Some(12), "the late commit was missed or applied twice");
    assert_eq!(total(&objects, "t1"), Some(7), "a write the snapshot held was applied again");
}

/// Consistency tokens: a replica's own write holds at once, another replica's once its
/// follower reaches it, and a position no write was answered at is refused at once.
pub(crate) async fn tokens_are_answered_from_the_follower(h: Arc<Harness>) {
    let backend = h.backend().await;
    let a = replica(backend.open().await.unwrap()).await;
    let b = replica(backend.open().await.unwrap()).await;
    let written = write(&a, |d| {
        d.create::<Organization>(
            "org-1",
            "org-1",
            OrganizationEvent::Added { name: "a".into(), domain: String::new() },
        )
        .unwrap();
    })
    .await;
    let position = written.position.unwrap();
    let started = std::time::Instant::now();
    a.wait_for(position, Duration::from_secs(5)).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(50));
    b.wait_for(position, Duration::from_secs(10)).await.unwrap();
    assert!(b.read().unwrap().get::<Organization>("org-1").is_some());
    let started = std::time::Instant::now();
    let beyond = b.wait_for(position + 1_000, Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(beyond, WaitError::Beyond), "{beyond:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// An event records what changed: adding one member stores as many bytes whether the tally
/// has ten members or a thousand.
pub(crate) async fn events_carry_the_change_not_the_object(h: Arc<Harness>) {
    let store = h.store().await;
    let writer = replica(store.clone()).await;
    seed(&writer, 2, 0).await;
    for (id, members) in [("t0", 10), ("t1", 1_000)] {
        let tally = writer.read().unwrap().get::<Tally>(id).unwrap();
        let all = (0..members).map(|m| format!("user:local:member-{m:04}")).collect();
        write(&writer, |d| d.change(&tally, TallyEvent::MembersAdded { members: all }).unwrap()).await;
    }
    let mut bytes = Vec::new();
    for id in ["t0", "t1"] {
        let tally = writer.read().unwrap().get::<Tally>(id).unwrap();
        let one = vec!["user:local:newcomer".to_owned()];
        let added = write(&writer, |d| d.change(&tally, TallyEvent::MembersAdded { members: one }).unwrap()).await;
        let position = added.position.unwrap();
        let log = store.read_log(Some(("tally", id)), LogCursor::default(), 100).await.unwrap();
        let event = log.iter().find(|c| c.event.position == position).unwrap();
        bytes.push(event.event.payload.to_string().len());
    }
    assert_eq!(bytes[0], bytes[1], "the stored change grew with the object");
    assert_eq!(writer.read().unwrap().get::<Tally>("t1").unwrap().members.len(), 1_001);
}

/// A write guarded on the version of an object it does not write fails, writing nothing,
/// once that object has moved on; guarded on its existence alone, it still commits.
pub(crate) async fn a_version_guard_fails_once_its_object_changes(h: Arc<Harness>) {
    let writer = replica(h.store().await).await;
    seed(&writer, 2, 0).await;
    let plan = |expect: fn(u64) -> Expect| {
        let objects = writer.read().unwrap();
        let mut draft = Draft::new(&objects);
        let (t0, t1) = (objects.get::<Tally>("t0").unwrap(), objects.get::<Tally>("t1").unwrap());
        draft.guard(t0.key(), expect(t0.meta.sequence));
        draft.change(&t1, TallyEvent::Counted { n: 1 }).unwrap();
        draft.finish()
    };
    let on_version = plan(Expect::Sequence);
    let on_existence = plan(|_| Expect::Exists);
    let t0 = writer.read().unwrap().get::<Tally>("t0").unwrap();
    write(&writer, |d| d.change(&t0, TallyEvent::Counted { n: 5 }).unwrap()).await;

    let refused = writer.commit("test", on_version).await.err().unwrap();
    assert!(
        matches!(&refused, StoreError::Conflict { id, expected: Expect::Sequence(1), actual: Some(2), .. } if id == "t0"),
        "{refused:?}"
    );
    assert_eq!(total(&writer.read().unwrap(), "t1"), Some(0));
    writer.commit("test", on_existence).await.unwrap();
    assert_eq!(total(&writer.read().unwrap(), "t1"), Some(1));
}

/// Only on PostgreSQL: SQLite's one writer commits in position order, so nothing commits late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_applies_a_late_commit_once_on_postgres() {
    run(Target::Postgres, "a_replica_applies_a_late_commit_once", a_replica_applies_a_late_commit_once).await;
}

crate::store::conformance::conformance_suite!(
    a_version_guard_fails_once_its_object_changes,
    a_replica_starts_from_state_not_history,
    tokens_are_answered_from_the_follower,
    events_carry_the_change_not_the_object,
);
