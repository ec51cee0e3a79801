//! Statements iamd holds itself (Part B §2.9): no API lists, changes or deletes them, and
//! every state's engine holds them before its first object. They protect the managed policies
//! and roles even from their owners, let every authenticated caller ask what it may do, and
//! let local users read and rename themselves.

use iamd_engine::grammar::USERNAME_VARIABLE;
use iamd_engine::{Effect, Feed, Policy, Statement};

/// The managed IAM v2 policies (A.6), seeded at first start.
pub const MANAGED_POLICIES: [&str; 3] = ["administrator-access", "editor-access", "viewer-access"];
/// The managed IAM v2 roles.
pub const MANAGED_ROLES: [&str; 4] = ["owner", "editor", "viewer", "tenant-owner"];

/// The id of the policy that protects the managed objects; the front door names it when it
/// refuses a change of one.
pub const PROTECTION: &str = "~system-managed-protection";
const EVERYONE: &str = "~system-everyone";
const LOCAL_USERS: &str = "~system-local-users";

fn statement(effect: Effect, actions: &[&str], resources: Vec<String>) -> Statement {
    Statement {
        effect,
        actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        role: None,
        resources,
        tenants: vec!["*".to_owned()],
        conditions: Vec::new(),
    }
}

/// Puts the system statements into `engine`.
pub fn put(engine: &mut dyn Feed) {
    let named = |prefix: &str, ids: &[&str]| ids.iter().map(|id| format!("{prefix}:{id}")).collect::<Vec<_>>();
    engine.put_policy(
        PROTECTION,
        &Policy {
            members: vec!["*".into()],
            statements: vec![
                statement(
                    Effect::Deny,
                    &["iam:policies:update", "iam:policies:delete"],
                    named("iam:policies", &MANAGED_POLICIES),
                ),
                statement(Effect::Deny, &["iam:roles:update", "iam:roles:delete"], named("iam:roles", &MANAGED_ROLES)),
            ],
        },
    );
    engine.put_policy(
        EVERYONE,
        &Policy {
            members: vec!["*".into()],
            statements: vec![
                statement(Effect::Allow, &["iam:introspect:*"], vec!["iam:introspect".into()]),
                statement(Effect::Allow, &["iam:policies:get"], vec!["iam:policyVersion".into()]),
            ],
        },
    );
    let myself = format!("iam:users:{USERNAME_VARIABLE}");
    engine.put_policy(
        LOCAL_USERS,
        &Policy {
            members: vec!["user:local:*".into()],
            statements: vec![
                statement(Effect::Allow, &["iam:users:get", "iam:users:update"], vec![myself.clone()]),
                statement(Effect::Allow, &["iam:userTeams:get"], vec![format!("{myself}:teams")]),
                statement(Effect::Deny, &["iam:users:delete"], vec![myself]),
            ],
        },
    );
}
