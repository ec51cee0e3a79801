//! An [`Overlay`]: proposed changes laid over an [`Engine`] without touching or copying it,
//! so a simulation decides checks on the state as the changes would leave it, in work
//! proportional to the changes.
//!
//! The changed objects go into a small engine of their own, the delta; what the delta holds
//! hides the base's object of the same id. A check asks both and weighs what either found in
//! one tally. Two things make that exact:
//!
//! - A statement that names a role is decided by the role's patterns. When the overlay
//!   changes or removes a role, every base policy naming it moves into the delta (the base's
//!   copy hidden), so no statement is decided by a role the overlay replaced.
//! - A delta statement naming a role the overlay did not change needs that role's patterns:
//!   the base's role is copied into the delta with it.
//!
//! Teams stay the base's, but for the ones the overlay puts or removes; organization
//! policies, roles and assignments are looked up by id through the overlay.

use std::sync::Arc;

use super::{
    AssignmentEntry, Engine, HashMap, HashSet, OrgPolicyEntry, PolicyEntry, Reasons, Tally, explain_organizations,
    organization_matches,
};
use crate::{Assignment, Decision, Explanation, Feed, OrgPolicy, OrgRole, Policy, Request, Role};

/// An [`Engine`] with changes laid over it. See the [module](self) documentation.
pub struct Overlay<'b> {
    base: &'b Engine,
    /// The objects the overlay puts, the base's policies that name a role it changes, and
    /// the base's roles those name.
    delta: Engine,
    /// Base IAM v2 policies the delta replaces or removes.
    policies: HashSet<Arc<str>>,
    /// Roles the overlay puts or removes.
    roles: HashSet<Arc<str>>,
    org_policies: HashSet<Arc<str>>,
    org_roles: HashSet<Arc<str>>,
    assignments: HashSet<Arc<str>>,
    /// Teams the overlay puts (their members) or removes (none).
    teams: HashMap<Arc<str>, Vec<Box<str>>>,
}

impl<'b> Overlay<'b> {
    pub fn new(base: &'b Engine) -> Overlay<'b> {
        Overlay {
            base,
            delta: Engine::new(),
            policies: HashSet::default(),
            roles: HashSet::default(),
            org_policies: HashSet::default(),
            org_roles: HashSet::default(),
            assignments: HashSet::default(),
            teams: HashMap::default(),
        }
    }

    /// Decides a request on the state with the changes.
    pub fn check(&self, request: &Request<'_>) -> Decision {
        let subjects = self.acting(request.subject, request.teams);
        let mut tally = Tally::decision(request.tenant, request.context);
        self.base.iam_lookup(request, &subjects, self.unchanged(), &mut tally);
        self.delta.iam_lookup(request, &subjects, |_| true, &mut tally);
        organization_matches(self, request, &subjects, &mut |at| tally.organization(at));
        tally.decide()
    }

    /// [`Engine::explain`] on the state with the changes.
    pub fn explain(&self, request: &Request<'_>) -> Explanation {
        let decision = self.check(request);
        let subjects = self.acting(request.subject, request.teams);
        let mut reasons = Reasons::default();
        self.base.explain_iam(request, &subjects, self.unchanged(), &mut reasons);
        self.delta.explain_iam(request, &subjects, |_| true, &mut reasons);
        explain_organizations(self, request, &subjects, &mut reasons);
        reasons.explain(decision)
    }

    /// Whether a base policy stands as it is: the delta neither replaces nor removes it.
    fn unchanged(&self) -> impl Fn(&PolicyEntry) -> bool + '_ {
        |policy| !self.policies.contains(&policy.id)
    }

    /// `subject` and every team it acts with: `teams`, the base's teams listing it that the
    /// overlay leaves alone, and the overlay's teams listing it.
    fn acting<'r>(&'r self, subject: &'r str, teams: &'r [String]) -> Vec<&'r str> {
        let mut subjects = vec![subject];
        subjects.extend(teams.iter().map(String::as_str));
        subjects.extend(self.base.teams.of(subject).iter().filter(|t| !self.teams.contains_key(*t)).map(|t| &**t));
        for (team, members) in &self.teams {
            if members.iter().any(|m| **m == *subject) {
                subjects.push(team);
            }
        }
        subjects
    }

    /// Copies into the delta each base role `policy` names that the delta lacks and the
    /// overlay does not change.
    fn bring_roles<'p>(&mut self, roles: impl IntoIterator<Item = &'p str>) {
        for role in roles {
            if self.roles.contains(role) || self.delta.roles.contains_key(role) {
                continue;
            }
            if let Some(actions) = self.base.roles.get(role) {
                let actions = actions.iter().map(|a| a.to_string()).collect();
                self.delta.put_role(role, &Role { actions });
            }
        }
    }

    /// Marks `role` as the overlay's, and moves the base policies naming it into the delta.
    fn take_role(&mut self, role: &str) {
        self.roles.insert(role.into());
        let base = self.base;
        for entry in base.role_users(role) {
            if self.policies.insert(entry.id.clone()) {
                self.bring_roles(entry.roles());
                self.delta.put_entry(PolicyEntry::clone(entry));
            }
        }
    }
}

impl Feed for Overlay<'_> {
    fn put_policy(&mut self, id: &str, policy: &Policy) {
        self.policies.insert(id.into());
        self.bring_roles(policy.statements.iter().filter_map(|s| s.role.as_deref()));
        self.delta.put_policy(id, policy);
    }

    fn remove_policy(&mut self, id: &str) {
        self.policies.insert(id.into());
        self.delta.remove_policy(id);
    }

    fn put_role(&mut self, id: &str, role: &Role) {
        self.take_role(id);
        self.delta.put_role(id, role);
    }

    fn remove_role(&mut self, id: &str) {
        self.take_role(id);
        self.delta.remove_role(id);
    }

    fn put_org_policy(&mut self, id: &str, policy: &OrgPolicy) {
        self.org_policies.insert(id.into());
        self.delta.put_org_policy(id, policy);
    }

    fn remove_org_policy(&mut self, id: &str) {
        self.org_policies.insert(id.into());
        self.delta.remove_org_policy(id);
    }

    fn put_org_role(&mut self, id: &str, role: &OrgRole) {
        self.org_roles.insert(id.into());
        self.delta.put_org_role(id, role);
    }

    fn remove_org_role(&mut self, id: &str) {
        self.org_roles.insert(id.into());
        self.delta.remove_org_role(id);
    }

    fn put_assignment(&mut self, id: &str, assignment: &Assignment) {
        self.assignments.insert(id.into());
        self.delta.put_assignment(id, assignment);
    }

    fn remove_assignment(&mut self, id: &str) {
        self.assignments.insert(id.into());
        self.delta.remove_assignment(id);
    }

    fn put_team(&mut self, team: &str, members: &[String]) {
        self.teams.insert(team.into(), members.iter().map(|m| m.as_str().into()).collect());
    }

    fn remove_team(&mut self, team: &str) {
        self.teams.insert(team.into(), Vec::new());
    }
}

impl super::Organizations for Overlay<'_> {
    fn org_policy(&self, id: &str) -> Option<&OrgPolicyEntry> {
        if self.org_policies.contains(id) { self.delta.org_policies.get(id) } else { self.base.org_policies.get(id) }
    }

    fn org_role(&self, id: &str) -> Option<&OrgRole> {
        if self.org_roles.contains(id) { self.delta.org_roles.get(id) } else { self.base.org_roles.get(id) }
    }

    fn assignment(&self, id: &str) -> Option<&AssignmentEntry> {
        if self.assignments.contains(id) { self.delta.assignments.get(id) } else { self.base.assignments.get(id) }
    }

    fn assignments_of(&self, subject: &str, organization: Option<&str>, out: &mut Vec<Arc<str>>) {
        let mut base = Vec::new();
        self.base.assignments_of(subject, organization, &mut base);
        out.extend(base.into_iter().filter(|id| !self.assignments.contains(id)));
        self.delta.assignments_of(subject, organization, out);
    }
}
