//! The index behind [`Engine`]: statements posted under (member, grant, resource), so a check
//! finds the statements its subject, action and resource reach by a few hash lookups each.
//!
//! - A member is found by its exact text, or by the prefix of a wildcard (`user:local:*` under
//!   `user:local:`, `*` under ``), so a subject asks one exact lookup and one per `:` it holds.
//! - A grant is an action pattern, or a role. An action asks each §2.6 shape it can match
//!   (`*`, `*:v`, `s:*`, `s:*:v`, `s:t:*`, `s:t:v`) for the pattern's id, and for each the
//!   roles holding that pattern. Statements naming a role are posted under the role, so a
//!   role's change touches only its own patterns.
//! - A resource is found by its exact text, by each prefix a `:*` pattern names, by `*`, or by
//!   expanding the few patterns that hold `${a2:username}`.
//!
//! A subject's teams, those that list it as a member, are one lookup in a member → teams map,
//! which a team's put changes only for the members that join or leave it.
//!
//! Searches ([`search`]) read one more posting, of the IAM v2 ALLOWs by grant then resource,
//! beside the check path's.
//!
//! Organization definitions are reached from the subject through the assignments its
//! principal forms match in the checked organization, then their roles and policies: the
//! work is what the subject holds there.
//!
//! Every put replaces what it names and every remove takes out only what it posted, so an
//! index built by changes equals one built at once from the final state.

use std::collections::{BTreeMap, HashMap as StdHashMap, HashSet as StdHashSet};
use std::hash::BuildHasher;
use std::sync::Arc;

use crate::condition::{Conditions, Outcome};
use crate::grammar::{USERNAME_VARIABLE, username};
use crate::path::PathPattern;
use crate::{
    Assignment, Context, Criterion, Decision, Definition, Effect, Explanation, Feed, MAX_NEAR_MISSES, Match, NearMiss,
    OrgAction, OrgPolicy, OrgRole, Policy, Request, Role, Source, Tenants,
};

mod overlay;
mod search;

pub use overlay::Overlay;
use search::Posting;
pub use search::{ActionCandidates, ResourceCandidates, SubjectCandidates};

/// Keyed by text clients choose, so seeded per map; and cheaper than SipHash on every check.
type HashMap<K, V> = StdHashMap<K, V, foldhash::quality::RandomState>;
type HashSet<T> = StdHashSet<T, foldhash::quality::RandomState>;

/// An interned action pattern or role: what statements are posted under.
type Grant = u32;

/// A statement: its policy's slot and its index in the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Sid {
    policy: u32,
    statement: u32,
}

impl Sid {
    /// The bounds of every statement, for ranges of sorted (key, statement) pairs.
    const FIRST: Sid = Sid { policy: 0, statement: 0 };
    const LAST: Sid = Sid { policy: u32::MAX, statement: u32::MAX };
}

/// The statements of one member and grant, by resource pattern: one sorted run of (resource
/// key, statement), so a check's few keys are binary searches in one allocation rather than
/// probes of maps of their own (at 100k statements, what a check costs is cache misses).
#[derive(Default, Debug)]
struct Bucket {
    keyed: Vec<(Key, Sid)>,
    /// A bit per key it holds ([`bit`]): most keys a check asks for are not here, and this
    /// says so without touching `keyed`.
    key_bits: u64,
    /// Patterns holding `${a2:username}`, expanded per check.
    variable: Vec<(Box<str>, Sid)>,
}

/// One of 64 bits for a grant or a key: a filter that answers "not here" from a word
/// already in the cache.
fn bit(value: u64) -> u64 {
    1 << (value % 64)
}

/// How a resource pattern is keyed: `*`, exact, or the prefix `a:` of `a:*`.
#[derive(Clone, Copy, Hash)]
enum KeyShape {
    Any,
    Exact,
    Prefix,
}

/// A resource form's key: 128 bits of two independently seeded hashes. Two forms share one
/// with a chance of 2^-128 (a random UUID's is 2^-122), and the seeds are secret, so a client
/// cannot aim for one; the text is not compared again, which would cost a check the cache
/// misses of reaching it.
type Key = u128;

/// Keys resource forms for [`Bucket`]s, seeded per engine.
#[derive(Default, Debug)]
struct ResourceKeys(foldhash::quality::RandomState, foldhash::quality::RandomState);

impl ResourceKeys {
    fn key(&self, shape: KeyShape, text: &str) -> Key {
        (u128::from(self.0.hash_one((shape, text))) << 64) | u128::from(self.1.hash_one((shape, text)))
    }

    /// The key of a stored pattern, or `None` for one that holds `${a2:username}`.
    fn of_pattern(&self, pattern: &str) -> Option<Key> {
        match resource_shape(pattern) {
            ResourceShape::Any => Some(self.key(KeyShape::Any, "")),
            ResourceShape::Variable => None,
            ResourceShape::Prefix(prefix) => Some(self.key(KeyShape::Prefix, prefix)),
            ResourceShape::Exact => Some(self.key(KeyShape::Exact, pattern)),
        }
    }

    /// The keys a concrete resource is found under: `*`, itself, and each prefix up to a `:`
    /// that something follows (`a:*` matches what lies below `a:`, not `a:` itself); sorted.
    fn of_resource(&self, resource: &str) -> Vec<Key> {
        let mut keys = vec![self.key(KeyShape::Any, ""), self.key(KeyShape::Exact, resource)];
        for (i, b) in resource.bytes().enumerate() {
            if b == b':'
                && i + 1 < resource.len()
                && let Some(prefix) = resource.get(..=i)
            {
                keys.push(self.key(KeyShape::Prefix, prefix));
            }
        }
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

impl Bucket {
    fn is_empty(&self) -> bool {
        self.keyed.is_empty() && self.variable.is_empty()
    }

    fn insert(&mut self, keys: &ResourceKeys, pattern: &str, sid: Sid) {
        match keys.of_pattern(pattern) {
            Some(key) => {
                let at = self.keyed.partition_point(|entry| *entry < (key, sid));
                self.keyed.insert(at, (key, sid));
                self.key_bits |= bit(key as u64);
            }
            None => self.variable.push((pattern.into(), sid)),
        }
    }

    fn remove(&mut self, keys: &ResourceKeys, pattern: &str, sid: Sid) {
        match keys.of_pattern(pattern) {
            Some(key) => {
                self.keyed.retain(|entry| *entry != (key, sid));
                self.key_bits = self.keyed.iter().fold(0, |bits, (k, _)| bits | bit(*k as u64));
            }
            None => self.variable.retain(|(p, s)| !(*s == sid && **p == *pattern)),
        }
    }

    /// Every statement it holds, once per resource pattern.
    fn statements(&self) -> impl Iterator<Item = Sid> + '_ {
        self.keyed.iter().map(|(_, sid)| *sid).chain(self.variable.iter().map(|(_, sid)| *sid))
    }

    /// Every statement with a resource pattern under one of `keys` (sorted), or a
    /// `${a2:username}` pattern that matches `resource` for this user.
    fn matching(&self, keys: &[Key], resource: &str, username: Option<&str>, out: &mut impl Extend<Sid>) {
        let mut rest = self.keyed.as_slice();
        for &key in keys {
            if self.key_bits & bit(key as u64) == 0 {
                continue;
            }
            let start = rest.partition_point(|(k, _)| *k < key);
            rest = rest.get(start..).unwrap_or_default();
            let run = rest.iter().take_while(|(k, _)| *k == key).count();
            out.extend(rest.iter().take(run).map(|(_, sid)| *sid));
            rest = rest.get(run..).unwrap_or_default();
        }
        if let Some(name) = username {
            for (pattern, sid) in &self.variable {
                if resource_matches(pattern, resource, Some(name)) {
                    out.extend([*sid]);
                }
            }
        }
    }
}

/// Changes the value under `key`, if there is one, and drops it when that leaves it empty.
fn remove_from<V: IsEmpty>(map: &mut HashMap<Box<str>, V>, key: &str, change: impl FnOnce(&mut V)) {
    if let Some(value) = map.get_mut(key) {
        change(value);
        if value.is_empty() {
            map.remove(key);
        }
    }
}

trait IsEmpty {
    fn is_empty(&self) -> bool;
}

impl IsEmpty for MemberSlot {
    fn is_empty(&self) -> bool {
        self.grants.is_empty() && self.policies.is_empty()
    }
}

impl<K, V> IsEmpty for HashMap<K, V> {
    fn is_empty(&self) -> bool {
        HashMap::is_empty(self)
    }
}

impl<T> IsEmpty for Vec<T> {
    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
}

enum ResourceShape<'a> {
    Any,
    Exact,
    Prefix(&'a str),
    Variable,
}

fn resource_shape(pattern: &str) -> ResourceShape<'_> {
    if pattern == "*" {
        ResourceShape::Any
    } else if pattern.contains(USERNAME_VARIABLE) {
        ResourceShape::Variable
    } else if let Some(body) = pattern.strip_suffix('*') {
        ResourceShape::Prefix(body)
    } else {
        ResourceShape::Exact
    }
}

/// Whether one resource pattern matches a concrete resource, for the checking user's name.
fn resource_matches(pattern: &str, resource: &str, username: Option<&str>) -> bool {
    if pattern == "*" {
        return true;
    }
    let expanded;
    let pattern = if pattern.contains(USERNAME_VARIABLE) {
        let Some(name) = username else { return false };
        expanded = pattern.replace(USERNAME_VARIABLE, name);
        expanded.as_str()
    } else {
        pattern
    };
    match pattern.strip_suffix('*') {
        // `a:*` is what lies below `a`, never `a`: the prefix keeps its `:`.
        Some(prefix) => resource.len() > prefix.len() && resource.starts_with(prefix),
        None => pattern == resource,
    }
}

/// Whether an action pattern (§2.6) matches a concrete action.
fn action_matches(pattern: &str, action: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let have: Vec<&str> = action.split(':').collect();
    let want: Vec<&str> = pattern.split(':').collect();
    match (want.as_slice(), have.as_slice()) {
        (["*", verb], [_, _, v]) => verb == v,
        ([service, "*"], [s, _, _]) => service == s,
        ([service, "*", verb], [s, _, v]) => service == s && verb == v,
        ([service, kind, "*"], [s, t, _]) => service == s && kind == t,
        _ => pattern == action,
    }
}

/// The statements and policies of one member form.
#[derive(Default, Debug)]
struct MemberSlot {
    grants: HashMap<Grant, Bucket>,
    /// A bit per grant it holds ([`bit`]), so a check probes `grants` only for the grants
    /// that may be there.
    grant_bits: u64,
    /// The policies naming this member form, with how many times, for explanations.
    policies: HashMap<u32, u32>,
}

/// Member forms: exact texts, and wildcards by the prefix they stand for.
#[derive(Default, Debug)]
struct Members<T> {
    exact: HashMap<Box<str>, T>,
    /// `user:local:*` under `user:local:`, `*` under the empty prefix.
    prefix: HashMap<Box<str>, T>,
}

impl<T: Default + IsEmpty> Members<T> {
    fn slot(&mut self, member: &str) -> &mut T {
        match member.strip_suffix('*') {
            Some(prefix) => self.prefix.entry(prefix.into()).or_default(),
            None => self.exact.entry(member.into()).or_default(),
        }
    }

    fn change(&mut self, member: &str, change: impl FnOnce(&mut T)) {
        match member.strip_suffix('*') {
            Some(prefix) => remove_from(&mut self.prefix, prefix, change),
            None => remove_from(&mut self.exact, member, change),
        }
    }

    /// The slots that a concrete subject's member forms name: exact, `*`, and each prefix up
    /// to a `:`.
    fn reached<'a>(&'a self, subject: &'a str) -> impl Iterator<Item = &'a T> + 'a {
        let exact = self.exact.get(subject);
        let prefixes = (!self.prefix.is_empty()).then(|| {
            std::iter::once(0)
                .chain(subject.bytes().enumerate().filter(|(_, b)| *b == b':').map(|(i, _)| i + 1))
                .filter_map(|end| subject.get(..end).and_then(|prefix| self.prefix.get(prefix)))
        });
        exact.into_iter().chain(prefixes.into_iter().flatten())
    }
}

/// Action patterns by the shape a concrete action asks for, each with its grant.
#[derive(Default, Debug)]
struct Actions {
    any: Option<Grant>,
    /// `*:v`
    verb: HashMap<Box<str>, Grant>,
    /// `s:*`
    service: HashMap<Box<str>, Grant>,
    /// `s:*:v`, under `s` then `v`
    service_verb: HashMap<Box<str>, HashMap<Box<str>, Grant>>,
    /// `s:t:*` under `s:t`
    kind: HashMap<Box<str>, Grant>,
    exact: HashMap<Box<str>, Grant>,
}

impl Actions {
    fn set(&mut self, pattern: &str, grant: Option<Grant>) {
        fn put(map: &mut HashMap<Box<str>, Grant>, key: &str, grant: Option<Grant>) {
            match grant {
                Some(grant) => {
                    map.insert(key.into(), grant);
                }
                None => {
                    map.remove(key);
                }
            }
        }
        let parts: Vec<&str> = pattern.split(':').collect();
        match parts.as_slice() {
            ["*"] => self.any = grant,
            ["*", verb] => put(&mut self.verb, verb, grant),
            [service, "*"] => put(&mut self.service, service, grant),
            [service, "*", verb] => {
                let inner = self.service_verb.entry((*service).into()).or_default();
                put(inner, verb, grant);
                if inner.is_empty() {
                    self.service_verb.remove(*service);
                }
            }
            [service, kind, "*"] => put(&mut self.kind, &format!("{service}:{kind}"), grant),
            _ => put(&mut self.exact, pattern, grant),
        }
    }

    /// The grants of every pattern matching the concrete `action`.
    fn matching(&self, action: &str, out: &mut Vec<Grant>) {
        out.extend(self.any);
        if let Some(&grant) = self.exact.get(action) {
            out.push(grant);
        }
        let mut parts = action.splitn(3, ':');
        let (Some(service), Some(_), Some(verb)) = (parts.next(), parts.next(), parts.next()) else { return };
        let kind_end = service.len() + 1 + action.get(service.len() + 1..).and_then(|r| r.find(':')).unwrap_or(0);
        out.extend(self.verb.get(verb).copied());
        out.extend(self.service.get(service).copied());
        out.extend(self.service_verb.get(service).and_then(|verbs| verbs.get(verb)).copied());
        out.extend(action.get(..kind_end).and_then(|kind| self.kind.get(kind)).copied());
    }
}

/// Interned action patterns and roles, counted by use so that what nothing uses goes.
#[derive(Default, Debug)]
struct Grants {
    patterns: HashMap<Box<str>, (Grant, u32)>,
    roles: HashMap<Box<str>, (Grant, u32)>,
    free: Vec<Grant>,
    next: Grant,
}

impl Grants {
    fn acquire(&mut self, role: bool, name: &str, actions: &mut Actions) -> Grant {
        let map = if role { &mut self.roles } else { &mut self.patterns };
        if let Some((grant, uses)) = map.get_mut(name) {
            *uses += 1;
            return *grant;
        }
        let grant = self.free.pop().unwrap_or_else(|| {
            self.next += 1;
            self.next
        });
        map.insert(name.into(), (grant, 1));
        if !role {
            actions.set(name, Some(grant));
        }
        grant
    }

    fn release(&mut self, role: bool, name: &str, actions: &mut Actions) {
        let map = if role { &mut self.roles } else { &mut self.patterns };
        let Some((grant, uses)) = map.get_mut(name) else { return };
        *uses -= 1;
        if *uses == 0 {
            let grant = *grant;
            map.remove(name);
            self.free.push(grant);
            if !role {
                actions.set(name, None);
            }
        }
    }

    fn pattern(&self, name: &str) -> Option<Grant> {
        self.patterns.get(name).map(|(grant, _)| *grant)
    }

    fn role(&self, name: &str) -> Option<Grant> {
        self.roles.get(name).map(|(grant, _)| *grant)
    }
}

#[derive(Clone, Debug)]
struct StatementEntry {
    effect: Effect,
    actions: Box<[Box<str>]>,
    role: Option<Box<str>>,
    resources: Box<[Box<str>]>,
    /// The named tenants (`*` aside), shared with the [`Tenants`] a request is authorized in.
    tenants: Box<[Arc<str>]>,
    all_tenants: bool,
    conditions: Conditions,
}

#[derive(Clone, Debug)]
struct PolicyEntry {
    id: Arc<str>,
    members: Box<[Box<str>]>,
    statements: Box<[StatementEntry]>,
}

impl PolicyEntry {
    /// The roles its statements name, each once.
    fn roles(&self) -> Vec<&str> {
        let mut roles: Vec<&str> = self.statements.iter().filter_map(|s| s.role.as_deref()).collect();
        roles.sort_unstable();
        roles.dedup();
        roles
    }
}

#[derive(Debug)]
struct DefinitionEntry {
    effect: Effect,
    actions: Box<[OrgAction]>,
    resources: Box<[PathPattern]>,
    conditions: Conditions,
}

#[derive(Debug)]
struct OrgPolicyEntry {
    organization: Arc<str>,
    definitions: Box<[DefinitionEntry]>,
}

#[derive(Debug)]
struct AssignmentEntry {
    organization: Arc<str>,
    principal: Box<str>,
    roles: Box<[Arc<str>]>,
    policies: Box<[Arc<str>]>,
}

/// Team memberships both ways: a check reads the teams of its subject, a team's change
/// compares against that team's members.
#[derive(Default, Debug)]
struct Teams {
    /// The members of each team, exact subjects; in name order, so that a search finds the
    /// teams a wildcard (`team:local:*`) names by a range.
    members: BTreeMap<Arc<str>, HashSet<Box<str>>>,
    /// The teams each member is in.
    // INVARIANT: `member` is in `members[team]` exactly when `team` is in `held[member]`, once;
    // no set or list is empty.
    held: HashMap<Box<str>, Vec<Arc<str>>>,
}

impl Teams {
    /// Replaces a team's members: reads both lists once, and changes the member → teams map
    /// only for the members that join or leave.
    fn put(&mut self, team: &str, members: &[String]) {
        if members.is_empty() {
            return self.remove(team);
        }
        let wanted: HashSet<&str> = members.iter().map(String::as_str).collect();
        let name = self.members.get_key_value(team).map_or_else(|| Arc::from(team), |(name, _)| name.clone());
        let current = self.members.entry(name.clone()).or_default();
        let held = &mut self.held;
        current.retain(|member| {
            let stays = wanted.contains(&**member);
            if !stays {
                leave(held, member, &name);
            }
            stays
        });
        for member in wanted {
            if !current.contains(member) {
                current.insert(member.into());
                match held.get_mut(member) {
                    Some(teams) => teams.push(name.clone()),
                    None => {
                        held.insert(member.into(), vec![name.clone()]);
                    }
                }
            }
        }
    }

    fn remove(&mut self, team: &str) {
        let Some((name, members)) = self.members.remove_entry(team) else { return };
        for member in &members {
            leave(&mut self.held, member, &name);
        }
    }

    /// The teams a subject is a member of.
    fn of(&self, subject: &str) -> &[Arc<str>] {
        self.held.get(subject).map_or(&[], Vec::as_slice)
    }
}

fn leave(held: &mut HashMap<Box<str>, Vec<Arc<str>>>, member: &str, team: &str) {
    remove_from(held, member, |teams| teams.retain(|t| **t != *team));
}

/// The policies of both surfaces, indexed for decisions.
#[derive(Default, Debug)]
pub struct Engine {
    /// Slots of IAM v2 policies; a removed one is `None` until reused.
    slots: Vec<Option<PolicyEntry>>,
    free_slots: Vec<u32>,
    policy_slots: HashMap<Arc<str>, u32>,
    members: Members<MemberSlot>,
    grants: Grants,
    actions: Actions,
    roles: HashMap<Arc<str>, Box<[Box<str>]>>,
    /// The roles holding each action pattern.
    roles_by_pattern: HashMap<Grant, Vec<Grant>>,
    /// The slots of the policies with a statement naming each role, for an [`Overlay`] that
    /// changes the role.
    role_users: HashMap<Box<str>, Vec<u32>>,
    org_policies: HashMap<Arc<str>, OrgPolicyEntry>,
    org_roles: HashMap<Arc<str>, OrgRole>,
    assignments: HashMap<Arc<str>, AssignmentEntry>,
    /// Assignments by principal form, then organization.
    principals: Members<HashMap<Arc<str>, Vec<Arc<str>>>>,
    teams: Teams,
    statements: usize,
    resource_keys: ResourceKeys,
    /// IAM v2 ALLOWs by grant, then resource, whatever their members: subject search.
    allows_by_grant: HashMap<Grant, Posting>,
}

impl Engine {
    pub fn new() -> Engine {
        Engine::default()
    }

    /// How many IAM v2 statements and organization definitions the engine holds.
    pub fn len(&self) -> usize {
        self.statements + self.org_policies.values().map(|p| p.definitions.len()).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Puts a compiled policy, replacing the one of its id.
    fn put_entry(&mut self, entry: PolicyEntry) {
        self.remove_policy(&entry.id);
        let id = entry.id.clone();
        let slot = self.free_slots.pop().unwrap_or(self.slots.len() as u32);
        self.post(slot, &entry, true);
        self.statements += entry.statements.len();
        for role in entry.roles() {
            let users = self.role_users.entry(role.into()).or_default();
            if !users.contains(&slot) {
                users.push(slot);
            }
        }
        match self.slots.get_mut(slot as usize) {
            Some(place) => *place = Some(entry),
            None => self.slots.push(Some(entry)),
        }
        self.policy_slots.insert(id, slot);
    }

    /// The policies with a statement naming `role`.
    fn role_users(&self, role: &str) -> impl Iterator<Item = &PolicyEntry> + '_ {
        let slots = self.role_users.get(role).map_or(&[][..], Vec::as_slice);
        slots.iter().filter_map(|slot| self.slots.get(*slot as usize)?.as_ref())
    }

    /// Posts (or takes out) every statement of a policy under its members, grants and
    /// resources.
    fn post(&mut self, slot: u32, entry: &PolicyEntry, put: bool) {
        for (index, statement) in entry.statements.iter().enumerate() {
            let sid = Sid { policy: slot, statement: index as u32 };
            let mut grants = Vec::with_capacity(statement.actions.len() + 1);
            for action in statement.actions.iter() {
                grants.push(if put {
                    self.grants.acquire(false, action, &mut self.actions)
                } else {
                    let grant = self.grants.pattern(action);
                    self.grants.release(false, action, &mut self.actions);
                    match grant {
                        Some(grant) => grant,
                        None => continue,
                    }
                });
            }
            if let Some(role) = statement.role.as_deref() {
                if put {
                    grants.push(self.grants.acquire(true, role, &mut self.actions));
                } else if let Some(grant) = self.grants.role(role) {
                    grants.push(grant);
                    self.grants.release(true, role, &mut self.actions);
                }
            }
            grants.sort_unstable();
            grants.dedup();
            if statement.effect == Effect::Allow {
                self.post_allow(sid, statement, &grants, put);
            }
            for member in entry.members.iter() {
                let keys = &self.resource_keys;
                if put {
                    let slot_of = self.members.slot(member);
                    for &grant in &grants {
                        slot_of.grant_bits |= bit(u64::from(grant));
                        let bucket = slot_of.grants.entry(grant).or_default();
                        for resource in statement.resources.iter() {
                            bucket.insert(keys, resource, sid);
                        }
                    }
                } else {
                    self.members.change(member, |slot_of| {
                        for &grant in &grants {
                            if let Some(bucket) = slot_of.grants.get_mut(&grant) {
                                for resource in statement.resources.iter() {
                                    bucket.remove(keys, resource, sid);
                                }
                                if bucket.is_empty() {
                                    slot_of.grants.remove(&grant);
                                    slot_of.grant_bits =
                                        slot_of.grants.keys().fold(0, |bits, g| bits | bit(u64::from(*g)));
                                }
                            }
                        }
                    });
                }
            }
        }
        for member in entry.members.iter() {
            if put {
                *self.members.slot(member).policies.entry(slot).or_default() += 1;
            } else {
                self.members.change(member, |slot_of| {
                    if let Some(uses) = slot_of.policies.get_mut(&slot) {
                        *uses -= 1;
                        if *uses == 0 {
                            slot_of.policies.remove(&slot);
                        }
                    }
                });
            }
        }
    }

    /// Posts (or takes out) an ALLOW for subject search: under each of its grants, by each of
    /// its resources.
    fn post_allow(&mut self, sid: Sid, statement: &StatementEntry, grants: &[Grant], put: bool) {
        let keys = &self.resource_keys;
        for grant in grants {
            let posting = if put {
                self.allows_by_grant.entry(*grant).or_default()
            } else if let Some(posting) = self.allows_by_grant.get_mut(grant) {
                posting
            } else {
                continue;
            };
            for resource in statement.resources.iter() {
                if put {
                    posting.insert(keys, resource, sid);
                } else {
                    posting.remove(keys, resource, sid);
                }
            }
            if posting.is_empty() {
                self.allows_by_grant.remove(grant);
            }
        }
    }

    /// The subject and every team it acts with: the request's, and those listing it.
    fn subjects<'r>(&'r self, request: &Request<'r>) -> Vec<&'r str> {
        self.acting(request.subject, request.teams)
    }

    /// `subject` and every team it acts with: `teams`, and those listing it.
    fn acting<'r>(&'r self, subject: &'r str, teams: &'r [String]) -> Vec<&'r str> {
        let held = self.teams.of(subject);
        let mut subjects = Vec::with_capacity(1 + teams.len() + held.len());
        subjects.push(subject);
        subjects.extend(teams.iter().map(String::as_str));
        subjects.extend(held.iter().map(|t| &**t));
        subjects
    }

    fn statement(&self, sid: Sid) -> Option<(&PolicyEntry, &StatementEntry)> {
        let policy = self.slots.get(sid.policy as usize)?.as_ref()?;
        Some((policy, policy.statements.get(sid.statement as usize)?))
    }

    /// Decides a request.
    pub fn check(&self, request: &Request<'_>) -> Decision {
        let mut tally = Tally::decision(request.tenant, request.context);
        self.lookup(request, &mut tally);
        tally.decide()
    }

    /// The tenants a request is authorized in (its `tenant` field is ignored): by one lookup,
    /// so that [`Tenants::permits`] agrees with [`Engine::check`] in that tenant and
    /// [`Tenants::any`] with a check naming none.
    pub fn tenants(&self, request: &Request<'_>) -> Tenants {
        let mut tally = Tally::tenants(request.context);
        self.lookup(request, &mut tally);
        tally.sets.authorized()
    }

    /// Every IAM v2 statement and organization definition that matches the request, its tenant
    /// aside, into `tally`, which weighs the tenants.
    fn lookup<'e>(&'e self, request: &Request<'_>, tally: &mut Tally<'_, 'e>) {
        let subjects = self.subjects(request);
        self.iam_lookup(request, &subjects, |_| true, tally);
        organization_matches(self, request, &subjects, &mut |at| tally.organization(at));
    }

    /// The IAM v2 statements of the policies `keep` keeps that match the request for one of
    /// `subjects`, its tenant aside, into `tally`.
    fn iam_lookup<'e>(
        &'e self,
        request: &Request<'_>,
        subjects: &[&str],
        keep: impl Fn(&PolicyEntry) -> bool,
        tally: &mut Tally<'_, 'e>,
    ) {
        let name = username(request.subject);
        let grants = self.grants_of(request.action);
        let mut sids = Vec::new();
        if !grants.is_empty() {
            let keys = self.resource_keys.of_resource(request.resource);
            for subject in subjects {
                for slot in self.members.reached(subject) {
                    for grant in &grants {
                        if slot.grant_bits & bit(u64::from(*grant)) == 0 {
                            continue;
                        }
                        if let Some(bucket) = slot.grants.get(grant) {
                            bucket.matching(&keys, request.resource, name, &mut sids);
                        }
                    }
                }
            }
        }
        if sids.len() > 1 {
            sids.sort_unstable();
            sids.dedup();
        }
        for sid in sids {
            if let Some((policy, statement)) = self.statement(sid)
                && keep(policy)
            {
                tally.iam(policy, sid.statement as usize, statement);
            }
        }
    }

    /// The grants of every action pattern matching the concrete `action`, and of every role
    /// holding one; sorted, each once, when roles add to them.
    fn grants_of(&self, action: &str) -> Vec<Grant> {
        let mut grants = Vec::new();
        self.actions.matching(action, &mut grants);
        let direct = grants.len();
        for i in 0..direct {
            if let Some(roles) = grants.get(i).and_then(|g| self.roles_by_pattern.get(g)) {
                grants.extend_from_slice(roles);
            }
        }
        if grants.len() > direct {
            grants.sort_unstable();
            grants.dedup();
        }
        grants
    }

    /// Decides a request, and says why: every statement that matched, and the statements
    /// whose member matched and exactly one other criterion failed.
    pub fn explain(&self, request: &Request<'_>) -> Explanation {
        let decision = self.check(request);
        let subjects = self.subjects(request);
        let mut reasons = Reasons::default();
        self.explain_iam(request, &subjects, |_| true, &mut reasons);
        explain_organizations(self, request, &subjects, &mut reasons);
        reasons.explain(decision)
    }

    /// IAM v2: every statement of every policy `keep` keeps that a subject's member form
    /// names, as a match or a near miss.
    fn explain_iam(
        &self,
        request: &Request<'_>,
        subjects: &[&str],
        keep: impl Fn(&PolicyEntry) -> bool,
        reasons: &mut Reasons,
    ) {
        let name = username(request.subject);
        let mut slots: Vec<u32> = subjects
            .iter()
            .flat_map(|subject| self.members.reached(subject))
            .flat_map(|slot| slot.policies.keys().copied())
            .collect();
        slots.sort_unstable();
        slots.dedup();
        for slot in slots {
            let Some(Some(policy)) = self.slots.get(slot as usize) else { continue };
            if !keep(policy) {
                continue;
            }
            for (index, statement) in policy.statements.iter().enumerate() {
                let at = Match {
                    policy: policy.id.clone(),
                    statement: index,
                    source: Source::Iam,
                    effect: statement.effect,
                };
                let mut failed = Vec::new();
                if !self.statement_actions(statement).any(|pattern| action_matches(pattern, request.action)) {
                    failed.push(Criterion::Action);
                }
                if !statement.resources.iter().any(|pattern| resource_matches(pattern, request.resource, name)) {
                    failed.push(Criterion::Resource);
                }
                if !tenant_applies(statement, request.tenant) {
                    failed.push(Criterion::Tenant);
                }
                if !holds(statement.effect, statement.conditions.evaluate(request.context)) {
                    failed.push(Criterion::Condition);
                }
                reasons.classify(at, &failed);
            }
        }
    }

    /// A statement's own action patterns, and its role's.
    fn statement_actions<'a>(&'a self, statement: &'a StatementEntry) -> impl Iterator<Item = &'a str> + 'a {
        let role = statement.role.as_deref().and_then(|role| self.roles.get(role));
        statement.actions.iter().chain(role.into_iter().flatten()).map(|a| &**a)
    }
}

impl Feed for Engine {
    /// Puts an IAM v2 policy, replacing the one of that id.
    fn put_policy(&mut self, id: &str, policy: &Policy) {
        self.put_entry(PolicyEntry {
            id: id.into(),
            members: policy.members.iter().map(|m| m.as_str().into()).collect(),
            statements: policy
                .statements
                .iter()
                .map(|s| StatementEntry {
                    effect: s.effect,
                    actions: s.actions.iter().map(|a| a.as_str().into()).collect(),
                    role: s.role.as_deref().map(Into::into),
                    resources: s.resources.iter().map(|r| r.as_str().into()).collect(),
                    tenants: s.tenants.iter().filter(|t| *t != "*").map(|t| Arc::from(t.as_str())).collect(),
                    all_tenants: s.tenants.iter().any(|t| t == "*"),
                    conditions: Conditions::compile(&s.conditions),
                })
                .collect(),
        });
    }

    fn remove_policy(&mut self, id: &str) {
        let Some(slot) = self.policy_slots.remove(id) else { return };
        let Some(entry) = self.slots.get_mut(slot as usize).and_then(Option::take) else { return };
        self.post(slot, &entry, false);
        self.statements -= entry.statements.len();
        for role in entry.roles() {
            remove_from(&mut self.role_users, role, |users| users.retain(|s| *s != slot));
        }
        self.free_slots.push(slot);
    }

    /// Puts an IAM v2 role, replacing the one of that id.
    fn put_role(&mut self, id: &str, role: &Role) {
        self.remove_role(id);
        let grant = self.grants.acquire(true, id, &mut self.actions);
        for action in &role.actions {
            let pattern = self.grants.acquire(false, action, &mut self.actions);
            let roles = self.roles_by_pattern.entry(pattern).or_default();
            if !roles.contains(&grant) {
                roles.push(grant);
            }
        }
        self.roles.insert(id.into(), role.actions.iter().map(|a| a.as_str().into()).collect());
    }

    fn remove_role(&mut self, id: &str) {
        let Some(actions) = self.roles.remove(id) else { return };
        let Some(grant) = self.grants.role(id) else { return };
        for action in actions.iter() {
            if let Some(pattern) = self.grants.pattern(action)
                && let Some(roles) = self.roles_by_pattern.get_mut(&pattern)
            {
                roles.retain(|r| *r != grant);
                if roles.is_empty() {
                    self.roles_by_pattern.remove(&pattern);
                }
            }
            self.grants.release(false, action, &mut self.actions);
        }
        self.grants.release(true, id, &mut self.actions);
    }

    /// Puts an organization policy, replacing the one of that id.
    fn put_org_policy(&mut self, id: &str, policy: &OrgPolicy) {
        let definitions = policy.definitions.iter().map(compile_definition).collect();
        self.org_policies
            .insert(id.into(), OrgPolicyEntry { organization: policy.organization.as_str().into(), definitions });
    }

    fn remove_org_policy(&mut self, id: &str) {
        self.org_policies.remove(id);
    }

    fn put_org_role(&mut self, id: &str, role: &OrgRole) {
        self.org_roles.insert(id.into(), role.clone());
    }

    fn remove_org_role(&mut self, id: &str) {
        self.org_roles.remove(id);
    }

    /// Puts an assignment, replacing the one of that id.
    fn put_assignment(&mut self, id: &str, assignment: &Assignment) {
        self.remove_assignment(id);
        let id: Arc<str> = id.into();
        let entry = AssignmentEntry {
            organization: assignment.organization.as_str().into(),
            principal: assignment.principal.as_str().into(),
            roles: assignment.roles.iter().map(|r| r.as_str().into()).collect(),
            policies: assignment.policies.iter().map(|p| p.as_str().into()).collect(),
        };
        self.principals.slot(&entry.principal).entry(entry.organization.clone()).or_default().push(id.clone());
        self.assignments.insert(id, entry);
    }

    fn remove_assignment(&mut self, id: &str) {
        let Some(entry) = self.assignments.remove(id) else { return };
        self.principals.change(&entry.principal, |orgs| {
            if let Some(list) = orgs.get_mut(&entry.organization) {
                list.retain(|a| &**a != id);
                if list.is_empty() {
                    orgs.remove(&entry.organization);
                }
            }
        });
    }

    /// Puts the members of a team (member subjects such as `user:local:alice`), replacing what
    /// the engine held for that team, in work proportional to the difference; none removes it.
    ///
    /// Members are exact subjects, not wildcards (a member `user:*` is the subject `user:*`
    /// alone), and teams are one level: a team listed as a member passes this team to no one
    /// but a check whose subject is that team.
    fn put_team(&mut self, team: &str, members: &[String]) {
        self.teams.put(team, members);
    }

    fn remove_team(&mut self, team: &str) {
        self.teams.remove(team);
    }
}

/// The organization side of a state: its policies, roles and assignments by id, and the
/// assignments a subject reaches. An [`Engine`] holds one; an [`Overlay`] lays its changes
/// over its engine's.
trait Organizations {
    fn org_policy(&self, id: &str) -> Option<&OrgPolicyEntry>;
    fn org_role(&self, id: &str) -> Option<&OrgRole>;
    fn assignment(&self, id: &str) -> Option<&AssignmentEntry>;
    /// The ids of the assignments whose principal form `subject` matches, in `organization`
    /// (or, `None`, in any).
    fn assignments_of(&self, subject: &str, organization: Option<&str>, out: &mut Vec<Arc<str>>);
}

impl Organizations for Engine {
    fn org_policy(&self, id: &str) -> Option<&OrgPolicyEntry> {
        self.org_policies.get(id)
    }

    fn org_role(&self, id: &str) -> Option<&OrgRole> {
        self.org_roles.get(id)
    }

    fn assignment(&self, id: &str) -> Option<&AssignmentEntry> {
        self.assignments.get(id)
    }

    fn assignments_of(&self, subject: &str, organization: Option<&str>, out: &mut Vec<Arc<str>>) {
        for orgs in self.principals.reached(subject) {
            match organization {
                Some(organization) => out.extend(orgs.get(organization).into_iter().flatten().cloned()),
                None => out.extend(orgs.values().flatten().cloned()),
            }
        }
    }
}

/// Every organization definition that matches, by the assignments the subjects reach in
/// the checked organization.
fn organization_matches(
    state: &impl Organizations,
    request: &Request<'_>,
    subjects: &[&str],
    visit: &mut dyn FnMut(Match),
) {
    let Some(organization) = request.organization else { return };
    let Some(action) = OrgAction::concrete(request.action) else { return };
    if !request.resource.starts_with('/') {
        return;
    }
    for id in reached_policies(state, subjects, Some(organization)) {
        let Some(policy) = state.org_policy(&id) else { continue };
        for (index, definition) in policy.definitions.iter().enumerate() {
            let covers = definition.actions.iter().any(|a| a.covers(action));
            if !covers || !definition.resources.iter().any(|p| p.matches(request.resource)) {
                continue;
            }
            if holds(definition.effect, definition.conditions.evaluate(request.context)) {
                visit(Match {
                    policy: id.clone(),
                    statement: index,
                    source: Source::Organization(policy.organization.clone()),
                    effect: definition.effect,
                });
            }
        }
    }
}

/// The organization policies the subjects hold in `organization` (or in any), directly or
/// through a role, in id order, each once.
fn reached_policies(state: &impl Organizations, subjects: &[&str], organization: Option<&str>) -> Vec<Arc<str>> {
    let mut assignments = Vec::new();
    for subject in subjects {
        state.assignments_of(subject, organization, &mut assignments);
    }
    let mut policies = Vec::new();
    for assignment in &assignments {
        let Some(entry) = state.assignment(assignment) else { continue };
        let same_org = |id: &Arc<str>| state.org_policy(id).is_some_and(|p| p.organization == entry.organization);
        policies.extend(entry.policies.iter().filter(|id| same_org(id)).cloned());
        for role in entry.roles.iter() {
            let Some(role) = state.org_role(role).filter(|r| *r.organization == *entry.organization) else {
                continue;
            };
            policies.extend(role.policies.iter().map(|p| Arc::<str>::from(p.as_str())).filter(same_org));
        }
    }
    policies.sort_unstable();
    policies.dedup();
    policies
}

/// Organizations: every definition of every policy a subject's assignments reach, in any
/// organization, as a match or a near miss.
fn explain_organizations(state: &impl Organizations, request: &Request<'_>, subjects: &[&str], reasons: &mut Reasons) {
    let action = OrgAction::concrete(request.action);
    for id in reached_policies(state, subjects, None) {
        let Some(policy) = state.org_policy(&id) else { continue };
        let organization = &policy.organization;
        for (index, definition) in policy.definitions.iter().enumerate() {
            let at = Match {
                policy: id.clone(),
                statement: index,
                source: Source::Organization(organization.clone()),
                effect: definition.effect,
            };
            let mut failed = Vec::new();
            if request.organization != Some(&**organization) {
                failed.push(Criterion::Organization);
            }
            if !action.is_some_and(|action| definition.actions.iter().any(|a| a.covers(action))) {
                failed.push(Criterion::Action);
            }
            if !request.resource.starts_with('/') || !definition.resources.iter().any(|p| p.matches(request.resource)) {
                failed.push(Criterion::Resource);
            }
            if !holds(definition.effect, definition.conditions.evaluate(request.context)) {
                failed.push(Criterion::Condition);
            }
            reasons.classify(at, &failed);
        }
    }
}

/// What an explanation gathers: the statements that matched, and those that missed by one
/// criterion.
#[derive(Default)]
struct Reasons {
    matches: Vec<Match>,
    near: Vec<NearMiss>,
}

impl Reasons {
    fn classify(&mut self, at: Match, failed: &[Criterion]) {
        match failed {
            [] => self.matches.push(at),
            [one] => self.near.push(NearMiss { statement: at, failed: *one }),
            _ => {}
        }
    }

    fn explain(self, decision: Decision) -> Explanation {
        let Reasons { mut matches, mut near } = self;
        matches.sort();
        matches.dedup();
        near.sort();
        near.dedup();
        near.truncate(MAX_NEAR_MISSES);
        Explanation { decision, matches, near_misses: near }
    }
}

/// Whether conditions that came to `outcome` let a statement match: failing closed, an
/// unevaluable DENY matches and an unevaluable ALLOW does not.
fn holds(effect: Effect, outcome: Outcome) -> bool {
    matches!((effect, outcome), (_, Outcome::Holds) | (Effect::Deny, Outcome::Unknown))
}

fn tenant_applies(statement: &StatementEntry, tenant: Option<&str>) -> bool {
    match tenant {
        Some(tenant) => statement.all_tenants || statement.tenants.iter().any(|t| &**t == tenant),
        None => statement.all_tenants || !statement.tenants.is_empty(),
    }
}

fn compile_definition(definition: &Definition) -> DefinitionEntry {
    DefinitionEntry {
        effect: definition.effect,
        actions: definition.actions.iter().copied().collect(),
        resources: definition.resources.iter().filter_map(|r| PathPattern::new(r)).collect(),
        conditions: Conditions::compile(&definition.conditions),
    }
}

/// The statements that matched a lookup, weighed by effect and tenant (§2.8).
struct Tally<'r, 'e> {
    /// The tenant a decision is asked in; with none, the tenant sets decide.
    tenant: Option<&'r str>,
    /// What the statements' conditions test.
    context: &'r Context,
    /// Whether to keep the matching statements: a decision's reasons.
    reasons: bool,
    allows: Vec<Match>,
    denies: Vec<Match>,
    /// With no tenant named: the tenants of the matching ALLOWs and DENYs.
    sets: TenantSets<'e>,
}

impl<'r, 'e> Tally<'r, 'e> {
    fn decision(tenant: Option<&'r str>, context: &'r Context) -> Tally<'r, 'e> {
        Tally { tenant, context, reasons: true, allows: Vec::new(), denies: Vec::new(), sets: TenantSets::default() }
    }

    fn tenants(context: &'r Context) -> Tally<'r, 'e> {
        Tally { reasons: false, ..Tally::decision(None, context) }
    }

    fn iam(&mut self, policy: &PolicyEntry, index: usize, statement: &'e StatementEntry) {
        if !tenant_applies(statement, self.tenant) {
            return;
        }
        // Most statements have none: one length test, and no call.
        if !statement.conditions.is_empty() && !holds(statement.effect, statement.conditions.evaluate(self.context)) {
            return;
        }
        if self.reasons {
            let at =
                Match { policy: policy.id.clone(), statement: index, source: Source::Iam, effect: statement.effect };
            match statement.effect {
                Effect::Allow => self.allows.push(at),
                Effect::Deny => self.denies.push(at),
            }
        }
        if self.tenant.is_none() {
            self.sets.add(statement.effect, statement.all_tenants, &statement.tenants);
        }
    }

    /// An organization definition authorizes, or denies, every tenant.
    fn organization(&mut self, at: Match) {
        self.sets.add(at.effect, true, &[]);
        if self.reasons {
            match at.effect {
                Effect::Allow => self.allows.push(at),
                Effect::Deny => self.denies.push(at),
            }
        }
    }

    fn decide(self) -> Decision {
        let allowed = match self.tenant {
            Some(_) => !self.allows.is_empty() && self.denies.is_empty(),
            None => self.sets.any(),
        };
        let mut reasons = if allowed { self.allows } else { self.denies };
        reasons.sort();
        reasons.dedup();
        Decision { allowed, reasons }
    }
}

/// The tenants of matching ALLOWs and of matching DENYs, `*` by its flag, borrowed from the
/// statements: the tenant algebra of §2.8 before it is owned.
#[derive(Default)]
struct TenantSets<'e> {
    allowed: Vec<&'e Arc<str>>,
    allowed_all: bool,
    denied: Vec<&'e Arc<str>>,
    denied_all: bool,
}

impl<'e> TenantSets<'e> {
    fn add(&mut self, effect: Effect, all: bool, tenants: &'e [Arc<str>]) {
        let (named, every) = match effect {
            Effect::Allow => (&mut self.allowed, &mut self.allowed_all),
            Effect::Deny => (&mut self.denied, &mut self.denied_all),
        };
        *every |= all;
        named.extend(tenants);
    }

    /// Whether some tenant is authorized: a `*` that no `*` DENY removes counts, even when no
    /// tenant exists. What [`Tenants::any`] says of [`TenantSets::authorized`], without owning.
    fn any(&self) -> bool {
        !self.denied_all && (self.allowed_all || self.allowed.iter().any(|t| !self.denied.contains(t)))
    }

    /// The authorized tenants: those allowed minus those denied.
    fn authorized(self) -> Tenants {
        let mut denied: Vec<Arc<str>> = self.denied.into_iter().cloned().collect();
        denied.sort_unstable();
        denied.dedup();
        if self.denied_all {
            Tenants::only(Vec::new())
        } else if self.allowed_all {
            Tenants::all_but(denied)
        } else {
            let mut allowed: Vec<Arc<str>> =
                self.allowed.into_iter().filter(|t| denied.binary_search(*t).is_err()).cloned().collect();
            allowed.sort_unstable();
            allowed.dedup();
            Tenants::only(allowed)
        }
    }
}
