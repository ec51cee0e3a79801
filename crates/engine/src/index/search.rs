//! Searches for OpenID AuthZEN's subject, resource and action search: the IAM v2 rules run
//! backwards from the indexes, so that a search costs what it finds, never a scan of every
//! statement or policy.
//!
//! A search answers candidates, not decisions: it reads the IAM v2 ALLOWs alone, and neither
//! their tenants, their conditions, the DENYs nor organization definitions, all of which only
//! take away. Every entity a check would allow is among them (a candidate itself, or matched by
//! a candidate pattern), and each candidate comes from an ALLOW that matches but for those; the
//! caller confirms each by [`Engine::check`].
//!
//! Subject search reads the ALLOWs posted by grant then resource, a [`Posting`] beside the
//! check path's [`Bucket`](crate::index::Bucket)s kept by the same puts and removes; resource
//! and action search read the check path's own postings by member form and grant.

use std::collections::BTreeSet;
use std::ops::Bound;

use crate::Effect;
use crate::grammar::{PROVIDERS, USERNAME_VARIABLE, username};
use crate::index::{
    Engine, IsEmpty, Key, PolicyEntry, ResourceKeys, ResourceShape, Sid, action_matches, bit, resource_matches,
    resource_shape,
};

/// Who may do an action on a resource, as far as the IAM v2 ALLOWs say: from
/// [`Engine::subject_candidates`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubjectCandidates {
    /// Concrete subjects: exact members, the members the engine holds of those that are teams
    /// (and of the teams a wildcard member names), and the users a `${a2:username}` resource
    /// names.
    pub subjects: BTreeSet<String>,
    /// Wildcard members (`*`, `user:*`, `user:local:*`): every subject one matches is a
    /// candidate too, for the caller to list from what it knows.
    pub patterns: BTreeSet<String>,
}

impl SubjectCandidates {
    /// Whether `subject` is among them: listed, or matched by a pattern as a member matches it.
    pub fn covers(&self, subject: &str) -> bool {
        self.subjects.contains(subject) || self.patterns.iter().any(|pattern| member_matches(pattern, subject))
    }
}

/// What a subject may do an action on, as far as the IAM v2 ALLOWs say: from
/// [`Engine::resource_candidates`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceCandidates {
    /// Concrete resources: exact patterns, and `${a2:username}` ones filled with the subject's
    /// name.
    pub resources: BTreeSet<String>,
    /// `*` and prefix patterns (`iam:*`, `iam:users:alice:*`, filled as above): every resource
    /// one matches is a candidate too, for the caller to list from what it knows.
    pub patterns: BTreeSet<String>,
}

impl ResourceCandidates {
    /// Whether `resource` is among them: listed, or matched by a pattern.
    pub fn covers(&self, resource: &str) -> bool {
        self.resources.contains(resource)
            || self.patterns.iter().any(|pattern| resource_matches(pattern, resource, None))
    }
}

/// What a subject may do on a resource, as far as the IAM v2 ALLOWs say: from
/// [`Engine::action_candidates`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActionCandidates {
    /// Concrete actions, named inline or by a role.
    pub actions: BTreeSet<String>,
    /// Wildcard patterns (`*`, `*:get`, `iam:*`, `iam:*:get`, `iam:users:*`): every action one
    /// matches is a candidate too, for the caller to list from what it knows.
    pub patterns: BTreeSet<String>,
}

impl ActionCandidates {
    /// Whether `action` is among them: listed, or matched by a pattern.
    pub fn covers(&self, action: &str) -> bool {
        self.actions.contains(action) || self.patterns.iter().any(|pattern| action_matches(pattern, action))
    }
}

impl Engine {
    /// The subjects that may do the concrete `action` on the concrete `resource`, as
    /// candidates: the members of the policies of every IAM v2 ALLOW whose action (inline, or
    /// its role's) matches `action` and one of whose resources matches `resource`. A member
    /// that is a team stands for itself and for the members the engine holds of it
    /// ([`Engine::put_team`]); a wildcard member for itself, and for the members of every team
    /// it matches. A `${a2:username}` pattern matches for one name at most, so it adds no
    /// member but the users of that name (`user:<provider>:<name>`, of the four providers)
    /// whom the policy's members reach, directly or by a team the engine holds.
    ///
    /// Tenants, conditions, DENYs and organization definitions play no part, and teams a request
    /// would name are unknown here: every subject a check allows with no request teams is
    /// covered ([`SubjectCandidates::covers`]), and each is to be confirmed by a check.
    ///
    /// Cost: a lookup per §2.6 shape of the action and per resource key, under each grant the
    /// action reaches; each `${a2:username}` pattern under those grants; then the members of
    /// each policy found, the members of the teams among them, and the teams a wildcard member
    /// names.
    pub fn subject_candidates(&self, action: &str, resource: &str) -> SubjectCandidates {
        let mut found = SubjectCandidates::default();
        let grants = self.grants_of(action);
        if grants.is_empty() {
            return found;
        }
        let keys = self.resource_keys.of_resource(resource);
        let mut open = Vec::new();
        let mut named = Vec::new();
        for grant in &grants {
            let Some(posting) = self.allows_by_grant.get(grant) else { continue };
            posting.keyed_under(&keys, &mut open);
            for (sid, pattern) in &posting.variable {
                if let Some(name) = required_name(pattern, resource) {
                    named.push((sid.policy, name));
                }
            }
        }
        let mut policies: Vec<u32> = open.iter().map(|sid| sid.policy).collect();
        policies.sort_unstable();
        policies.dedup();
        for slot in &policies {
            if let Some(policy) = self.policy(*slot) {
                self.every_member(policy, &mut found);
            }
        }
        named.sort_unstable();
        named.dedup();
        for (slot, name) in named {
            // A policy that matched without the name already gave every member.
            if policies.binary_search(&slot).is_ok() {
                continue;
            }
            if let Some(policy) = self.policy(slot) {
                self.users_named(policy, name, &mut found);
            }
        }
        found
    }

    /// The resources `subject`, acting with `teams` and the teams the engine holds as listing
    /// it, may do the concrete `action` on, as candidates: the resource patterns of every IAM v2
    /// ALLOW it reaches whose action (inline, or its role's) matches `action`. Exact patterns
    /// are listed as resources; `*` and prefix patterns as patterns; a `${a2:username}` pattern
    /// is filled with the subject's name (none, when the subject is no user).
    ///
    /// Tenants, conditions, DENYs and organization definitions play no part: every resource a
    /// check allows is covered ([`ResourceCandidates::covers`]), and each is to be confirmed by
    /// a check.
    ///
    /// Cost: the member forms of the subject and its teams, a lookup per grant the action
    /// reaches under each, then the statements found there.
    pub fn resource_candidates(&self, subject: &str, teams: &[String], action: &str) -> ResourceCandidates {
        let mut found = ResourceCandidates::default();
        let grants = self.grants_of(action);
        if grants.is_empty() {
            return found;
        }
        let mut sids = Vec::new();
        for form in self.acting(subject, teams) {
            for slot in self.members.reached(form) {
                for grant in &grants {
                    if slot.grant_bits & bit(u64::from(*grant)) == 0 {
                        continue;
                    }
                    if let Some(bucket) = slot.grants.get(grant) {
                        sids.extend(bucket.statements());
                    }
                }
            }
        }
        sids.sort_unstable();
        sids.dedup();
        let name = username(subject);
        for sid in sids {
            let Some((_, statement)) = self.statement(sid) else { continue };
            if statement.effect != Effect::Allow {
                continue;
            }
            for pattern in statement.resources.iter() {
                found.add(pattern, name);
            }
        }
        found
    }

    /// The actions `subject`, acting with `teams` and the teams the engine holds as listing it,
    /// may do on the concrete `resource`, as candidates: the action patterns, inline and
    /// of its role, of every IAM v2 ALLOW it reaches one of whose resources matches `resource`.
    /// Patterns without a wildcard are listed as actions, the others as patterns.
    ///
    /// Tenants, conditions, DENYs and organization definitions play no part: every action a
    /// check allows is covered ([`ActionCandidates::covers`]), and each is to be confirmed by a
    /// check.
    ///
    /// Cost: the member forms of the subject and its teams, and under each every grant its
    /// statements hold: a filter-word test per grant and resource key, a lookup for the few it
    /// lets through (and each `${a2:username}` pattern there, for a user); then the actions of
    /// the statements found. An index by member then resource would spare the per-grant tests,
    /// at a posting per member, statement and resource, which the check path pays for in
    /// memory and build time; a member's grants are what it holds, never every statement.
    pub fn action_candidates(&self, subject: &str, teams: &[String], resource: &str) -> ActionCandidates {
        let mut found = ActionCandidates::default();
        let keys = self.resource_keys.of_resource(resource);
        let name = username(subject);
        let mut sids = Vec::new();
        for form in self.acting(subject, teams) {
            for slot in self.members.reached(form) {
                for bucket in slot.grants.values() {
                    bucket.matching(&keys, resource, name, &mut sids);
                }
            }
        }
        sids.sort_unstable();
        sids.dedup();
        for sid in sids {
            let Some((_, statement)) = self.statement(sid) else { continue };
            if statement.effect != Effect::Allow {
                continue;
            }
            for pattern in self.statement_actions(statement) {
                if pattern.contains('*') {
                    found.patterns.insert(pattern.to_owned());
                } else {
                    found.actions.insert(pattern.to_owned());
                }
            }
        }
        found
    }

    fn policy(&self, slot: u32) -> Option<&PolicyEntry> {
        self.slots.get(slot as usize)?.as_ref()
    }

    /// Every member of `policy` as a candidate, teams with their members.
    fn every_member(&self, policy: &PolicyEntry, found: &mut SubjectCandidates) {
        for member in policy.members.iter() {
            match member.strip_suffix('*') {
                Some(prefix) => {
                    found.patterns.insert(member.to_string());
                    // `*` covers every team's members already.
                    if prefix.is_empty() {
                        continue;
                    }
                    let teams = self.teams.members.range::<str, _>((Bound::Included(prefix), Bound::Unbounded));
                    for (team, members) in teams.take_while(|(team, _)| team.starts_with(prefix)) {
                        if member_matches(member, team) {
                            found.subjects.extend(members.iter().map(|m| m.to_string()));
                        }
                    }
                }
                None => {
                    found.subjects.insert(member.to_string());
                    if let Some(members) = self.teams.members.get(&**member) {
                        found.subjects.extend(members.iter().map(|m| m.to_string()));
                    }
                }
            }
        }
    }

    /// The users named `name` whom a member of `policy` reaches, directly or by a team the
    /// engine holds as listing them: those a `${a2:username}` pattern filled with `name` is for.
    fn users_named(&self, policy: &PolicyEntry, name: &str, found: &mut SubjectCandidates) {
        let reaches = |subject: &str| policy.members.iter().any(|member| member_matches(member, subject));
        for provider in PROVIDERS {
            let user = format!("user:{provider}:{name}");
            if reaches(&user) || self.teams.of(&user).iter().any(|team| reaches(team)) {
                found.subjects.insert(user);
            }
        }
    }
}

impl ResourceCandidates {
    /// One resource pattern of a statement the subject reaches, filled with its name.
    fn add(&mut self, pattern: &str, name: Option<&str>) {
        let filled;
        let pattern = match resource_shape(pattern) {
            ResourceShape::Variable => {
                // `${a2:username}` is no one's when the subject is no user.
                let Some(name) = name else { return };
                filled = pattern.replace(USERNAME_VARIABLE, name);
                filled.as_str()
            }
            _ => pattern,
        };
        match resource_shape(pattern) {
            ResourceShape::Exact => self.resources.insert(pattern.to_owned()),
            ResourceShape::Any | ResourceShape::Prefix(_) => self.patterns.insert(pattern.to_owned()),
            // A name holds no `:`, so never the variable itself.
            ResourceShape::Variable => false,
        };
    }
}

/// Whether a member expression matches a concrete subject, as [`crate::index::Members`] finds
/// it: `*` every subject, `a:*` every one below `a:`, anything else itself.
fn member_matches(member: &str, subject: &str) -> bool {
    match member.strip_suffix('*') {
        Some(prefix) => prefix.is_empty() || (prefix.ends_with(':') && subject.starts_with(prefix)),
        None => member == subject,
    }
}

/// The name `${a2:username}` must stand for in `pattern` for it to match `resource`, if one
/// can. The variable stands for a whole segment (grammar::resource) and a name holds no `:`, so
/// the name is the resource's text from where the pattern's first variable starts up to the
/// next `:`; filling the pattern with it then says whether it matches.
fn required_name<'r>(pattern: &str, resource: &'r str) -> Option<&'r str> {
    let before = pattern.get(..pattern.find(USERNAME_VARIABLE)?)?;
    let rest = resource.strip_prefix(before)?;
    let name = rest.split(':').next()?;
    // What `username` would read from a subject: no `*`, not empty.
    let valid = !name.is_empty() && !name.contains('*');
    (valid && resource_matches(pattern, resource, Some(name))).then_some(name)
}

/// IAM v2 ALLOWs by resource pattern, for subject search: sorted sets, so that a put or a remove
/// costs a logarithm however many statements share a grant (the check path's
/// [`Bucket`](crate::index::Bucket)s, one per member form and grant, trade that for fewer
/// cache misses).
#[derive(Default, Debug)]
pub(super) struct Posting {
    /// A [`Key`] as its two halves: 24 bytes an entry rather than a `u128`'s aligned 32, so
    /// more of them share a node and a cache line.
    keyed: BTreeSet<((u64, u64), Sid)>,
    /// Patterns holding `${a2:username}`, each with its statement.
    variable: BTreeSet<(Sid, Box<str>)>,
}

impl IsEmpty for Posting {
    fn is_empty(&self) -> bool {
        self.keyed.is_empty() && self.variable.is_empty()
    }
}

impl Posting {
    pub(super) fn insert(&mut self, keys: &ResourceKeys, pattern: &str, sid: Sid) {
        match keys.of_pattern(pattern) {
            Some(key) => self.keyed.insert((halves(key), sid)),
            None => self.variable.insert((sid, pattern.into())),
        };
    }

    pub(super) fn remove(&mut self, keys: &ResourceKeys, pattern: &str, sid: Sid) {
        match keys.of_pattern(pattern) {
            Some(key) => self.keyed.remove(&(halves(key), sid)),
            None => self.variable.remove(&(sid, pattern.into())),
        };
    }

    /// Every statement with a pattern under one of `keys`.
    fn keyed_under(&self, keys: &[Key], out: &mut Vec<Sid>) {
        for &key in keys {
            let key = halves(key);
            out.extend(self.keyed.range((key, Sid::FIRST)..=(key, Sid::LAST)).map(|(_, sid)| *sid));
        }
    }
}

/// A key's high and low halves, which sort as the key does.
fn halves(key: Key) -> (u64, u64) {
    ((key >> 64) as u64, key as u64)
}
