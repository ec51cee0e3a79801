//! IAM v2 policies (Chef Automate's, seed 003): members, and statements that allow or deny
//! a role's actions, or their own, within tenants. A statement's role and tenants, and the
//! policy's own tenants, are references: deleting a role or a tenant takes it out of every
//! policy, drops the statements it leaves empty, and deletes the policies it leaves without
//! statements, in the delete's transaction.

use iamd_engine::{self as engine, Feed};
use serde::{Deserialize, Serialize};

use super::condition::{Condition, engine_conditions};
use super::iam_role::IamRole;
pub use super::origin::Origin;
use super::tenant::{ALL_TENANTS, Tenant, tenant_terms};
use crate::model::kind::{Key, Kind, OnDelete, Term};

pub struct IamPolicy;

/// The lookup index of the member expressions policies name, exactly as written.
pub const MEMBER_INDEX: &str = "member";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub effect: Effect,
    #[serde(default)]
    pub actions: Vec<String>,
    /// A role's id, or empty.
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub tenants: Vec<String>,
    /// An iamd extension (A.5's grammar): every one must hold for the statement to match.
    #[serde(default, rename = "conditionsAll", skip_serializing_if = "Vec::is_empty")]
    pub conditions_all: Vec<Condition>,
}

impl Statement {
    /// Names a role or actions: a statement that names neither grants nothing, and goes.
    fn grants_anything(&self) -> bool {
        !self.role.is_empty() || !self.actions.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IamPolicyState {
    pub name: String,
    #[serde(rename = "type")]
    pub origin: Origin,
    #[serde(default)]
    pub members: Vec<String>,
    pub statements: Vec<Statement>,
    #[serde(default)]
    pub tenants: Vec<String>,
}

impl IamPolicyState {
    /// The policy without `role`: what remains of it, if anything.
    fn without_role(&self, role: &str) -> Option<IamPolicyState> {
        let statements = self.statements.iter().cloned().map(|mut statement| {
            if statement.role == role {
                statement.role.clear();
            }
            statement
        });
        self.keeping(statements.filter(Statement::grants_anything).collect(), self.tenants.clone())
    }

    /// The policy without `tenant`, in its own tenants and its statements'.
    fn without_tenant(&self, tenant: &str) -> Option<IamPolicyState> {
        let statements = self.statements.iter().cloned().map(|mut statement| {
            statement.tenants.retain(|t| t != tenant);
            statement
        });
        let tenants = self.tenants.iter().filter(|t| *t != tenant).cloned().collect();
        self.keeping(statements.filter(|s| !s.tenants.is_empty()).collect(), tenants)
    }

    /// A policy with no statement left is deleted.
    fn keeping(&self, statements: Vec<Statement>, tenants: Vec<String>) -> Option<IamPolicyState> {
        (!statements.is_empty()).then(|| IamPolicyState { statements, tenants, ..self.clone() })
    }
}

/// Each event says what changed; a create carries the whole policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum IamPolicyEvent {
    #[serde(rename = "iam.policy.added")]
    Added(IamPolicyState),
    /// Only the fields that changed.
    #[serde(rename = "iam.policy.changed")]
    Changed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        members: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        statements: Option<Vec<Statement>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenants: Option<Vec<String>>,
    },
    /// Members appended, none of them present before.
    #[serde(rename = "iam.policy.members.added")]
    MembersAdded { members: Vec<String> },
    #[serde(rename = "iam.policy.members.removed")]
    MembersRemoved { members: Vec<String> },
    /// A deleted role left the policy's statements.
    #[serde(rename = "iam.policy.role.removed")]
    RoleRemoved { role: String },
    /// A deleted tenant left the policy and its statements.
    #[serde(rename = "iam.policy.tenant.removed")]
    TenantRemoved { tenant: String },
    #[serde(rename = "iam.policy.removed")]
    Removed {},
}

impl Kind for IamPolicy {
    const NAME: &'static str = "iam_policy";
    type State = IamPolicyState;
    type Event = IamPolicyEvent;

    fn apply(state: Option<&IamPolicyState>, event: &IamPolicyEvent) -> Result<Option<IamPolicyState>, String> {
        use IamPolicyEvent::*;
        match (state, event) {
            (None, Added(policy)) => Ok(Some(policy.clone())),
            (Some(_), Added(_)) => Err("the policy exists already".into()),
            (None, _) => Err("the policy does not exist".into()),
            (Some(state), Changed { name, members, statements, tenants }) => Ok(Some(IamPolicyState {
                name: name.clone().unwrap_or_else(|| state.name.clone()),
                origin: state.origin,
                members: members.clone().unwrap_or_else(|| state.members.clone()),
                statements: statements.clone().unwrap_or_else(|| state.statements.clone()),
                tenants: tenants.clone().unwrap_or_else(|| state.tenants.clone()),
            })),
            (Some(state), MembersAdded { members }) => {
                let mut next = state.clone();
                for member in members {
                    if !next.members.contains(member) {
                        next.members.push(member.clone());
                    }
                }
                Ok(Some(next))
            }
            (Some(state), MembersRemoved { members }) => {
                let mut next = state.clone();
                next.members.retain(|m| !members.contains(m));
                Ok(Some(next))
            }
            (Some(state), RoleRemoved { role }) => Ok(state.without_role(role)),
            (Some(state), TenantRemoved { tenant }) => Ok(state.without_tenant(tenant)),
            (Some(_), Removed {}) => Ok(None),
        }
    }

    fn removal(_: &IamPolicyState) -> IamPolicyEvent {
        IamPolicyEvent::Removed {}
    }

    fn references(state: &IamPolicyState) -> Vec<Key> {
        let roles = state.statements.iter().filter(|s| !s.role.is_empty()).map(|s| Key::new(IamRole::NAME, &*s.role));
        let tenants = state.statements.iter().flat_map(|s| &s.tenants).chain(&state.tenants);
        roles.chain(tenants.filter(|t| *t != ALL_TENANTS).map(|t| Key::new(Tenant::NAME, &**t))).collect()
    }

    fn terms(state: &IamPolicyState) -> Vec<Term> {
        let mut terms = tenant_terms(&state.tenants);
        terms.extend(state.members.iter().map(|m| Term::new(MEMBER_INDEX, &**m)));
        terms
    }

    fn on_delete(_: &IamPolicyState, target: &'static str) -> OnDelete {
        if target == IamRole::NAME || target == Tenant::NAME { OnDelete::Detach } else { OnDelete::Restrict }
    }

    fn detach(_: &IamPolicyState, target: &Key) -> Option<IamPolicyEvent> {
        match target.kind {
            IamRole::NAME => Some(IamPolicyEvent::RoleRemoved { role: target.id.to_string() }),
            Tenant::NAME => Some(IamPolicyEvent::TenantRemoved { tenant: target.id.to_string() }),
            _ => None,
        }
    }

    fn decides(id: &str, _owner: &str, state: Option<&IamPolicyState>, engine: &mut dyn Feed) {
        let Some(state) = state else { return engine.remove_policy(id) };
        let statements = state
            .statements
            .iter()
            .map(|s| engine::Statement {
                effect: match s.effect {
                    Effect::Allow => engine::Effect::Allow,
                    Effect::Deny => engine::Effect::Deny,
                },
                actions: s.actions.clone(),
                role: (!s.role.is_empty()).then(|| s.role.clone()),
                resources: s.resources.clone(),
                tenants: s.tenants.clone(),
                conditions: engine_conditions(&s.conditions_all),
            })
            .collect();
        engine.put_policy(id, &engine::Policy { members: state.members.clone(), statements });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(role: &str, actions: &[&str], tenants: &[&str]) -> Statement {
        Statement {
            effect: Effect::Allow,
            actions: actions.iter().map(|a| a.to_string()).collect(),
            role: role.into(),
            resources: vec!["*".into()],
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
            conditions_all: Vec::new(),
        }
    }

    fn policy(statements: Vec<Statement>, tenants: &[&str]) -> IamPolicyState {
        IamPolicyState {
            name: "p".into(),
            origin: Origin::Custom,
            members: vec!["user:local:alice".into()],
            statements,
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn a_deleted_role_leaves_statements_that_still_grant_and_drops_the_rest() {
        let before =
            policy(vec![statement("viewer", &[], &["*"]), statement("viewer", &["iam:roles:get"], &["*"])], &[]);
        let after = IamPolicy::apply(Some(&before), &IamPolicyEvent::RoleRemoved { role: "viewer".into() }).unwrap();
        assert_eq!(after.unwrap().statements, vec![statement("", &["iam:roles:get"], &["*"])]);

        let only = policy(vec![statement("viewer", &[], &["*"])], &[]);
        assert_eq!(IamPolicy::apply(Some(&only), &IamPolicyEvent::RoleRemoved { role: "viewer".into() }), Ok(None));
    }

    #[test]
    fn a_deleted_tenant_leaves_the_policy_and_the_statements_it_empties() {
        let before =
            policy(vec![statement("viewer", &[], &["t1"]), statement("editor", &[], &["t1", "t2"])], &["t1", "t2"]);
        let after = IamPolicy::apply(Some(&before), &IamPolicyEvent::TenantRemoved { tenant: "t1".into() }).unwrap();
        let after = after.unwrap();
        assert_eq!(after.statements, vec![statement("editor", &[], &["t2"])]);
        assert_eq!(after.tenants, vec!["t2".to_string()]);
        // `*` is every tenant, not a reference to one.
        let everywhere = policy(vec![statement("viewer", &[], &["*"])], &[]);
        assert!(IamPolicy::references(&everywhere).iter().all(|key| key.kind == IamRole::NAME));
        let gone = IamPolicy::apply(Some(&after), &IamPolicyEvent::TenantRemoved { tenant: "t2".into() });
        assert_eq!(gone, Ok(None));
    }

    #[test]
    fn members_are_added_once_in_order_and_removed_if_present() {
        let before = policy(vec![statement("viewer", &[], &["*"])], &[]);
        let added = IamPolicyEvent::MembersAdded { members: vec!["team:local:ops".into(), "user:local:alice".into()] };
        let after = IamPolicy::apply(Some(&before), &added).unwrap().unwrap();
        assert_eq!(after.members, ["user:local:alice", "team:local:ops"]);
        let removed = IamPolicyEvent::MembersRemoved { members: vec!["user:local:alice".into(), "token:x".into()] };
        assert_eq!(IamPolicy::apply(Some(&after), &removed).unwrap().unwrap().members, ["team:local:ops"]);
    }
}
