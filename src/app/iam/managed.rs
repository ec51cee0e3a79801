//! The objects iamd seeds at first start (A.6): the policies `administrator-access`,
//! `editor-access` and `viewer-access` and the roles `owner`, `editor`, `viewer` and
//! `tenant-owner`, of type MANAGED, their roles named with iamd's own actions as the method
//! table lists them. Their statements and actions cannot change and they cannot be deleted
//! (the system's DENY statements, `kinds::system`, refuse it at the front door); their
//! members can, except that `team:local:admins` stays in `administrator-access`, which a
//! DENY cannot say and this module keeps.

use std::collections::BTreeSet;

use super::super::{Actor, App, AppError, ErrorKind};
use crate::kinds::iam_policy::{Effect, IamPolicy, IamPolicyEvent, IamPolicyState, Origin, Statement};
use crate::kinds::iam_role::{IamRole, IamRoleEvent, IamRoleState};
use crate::kinds::tenant::ALL_TENANTS;
use crate::methods::MethodTable;

pub const ADMINISTRATOR_ACCESS: &str = "administrator-access";
pub const ADMINS: &str = "team:local:admins";

/// (id, name, member, role) of each managed policy: the role on every tenant.
const POLICIES: [(&str, &str, &str, &str); 3] = [
    (ADMINISTRATOR_ACCESS, "Administrator", ADMINS, "owner"),
    ("editor-access", "Editors", "team:local:editors", "editor"),
    ("viewer-access", "Viewers", "team:local:viewers", "viewer"),
];

/// The actions of the managed roles, from the method table: `owner` may do anything;
/// `viewer` every get and list outside IAM; `editor` that and every action of the admin and
/// accounts surfaces; `tenant-owner` that and reading policies and editing their members.
/// The first segment of an action, its service.
fn service(action: &str) -> &str {
    action.split(':').next().unwrap_or_default()
}

/// The last segment of an action, its verb.
fn verb(action: &str) -> &str {
    action.rsplit(':').next().unwrap_or_default()
}

fn role_actions(table: &MethodTable) -> [(&'static str, &'static str, Vec<String>); 4] {
    let actions: BTreeSet<&str> = table.iter().filter_map(|m| m.permission()).map(|r| r.action.as_str()).collect();
    let viewer: BTreeSet<&str> =
        actions.iter().copied().filter(|a| service(a) != "iam" && matches!(verb(a), "get" | "list")).collect();
    let mut editor = viewer.clone();
    editor.extend(actions.iter().copied().filter(|a| matches!(service(a), "admin" | "accounts")));
    // Chef's editor reads and assigns projects: what it writes may be put into tenants.
    editor.extend(["iam:tenants:get", "iam:tenants:list", "iam:tenants:assign"]);
    let mut tenant_owner = editor.clone();
    tenant_owner.extend(["iam:policies:get", "iam:policies:list", "iam:policyMembers:*"]);
    let owned = |set: BTreeSet<&str>| set.into_iter().map(str::to_owned).collect();
    [
        ("owner", "Owner", vec!["*".to_owned()]),
        ("editor", "Editor", owned(editor)),
        ("viewer", "Viewer", owned(viewer)),
        ("tenant-owner", "Tenant Owner", owned(tenant_owner)),
    ]
}

impl App {
    /// Creates whichever managed object is missing, in one write: once, on a new store (they
    /// cannot be deleted), and on a store that predates them; a managed role whose actions
    /// an older version seeded gets this version's.
    pub(in crate::app) async fn seed_iam(&self, methods: &MethodTable) -> Result<(), AppError> {
        let roles = role_actions(methods);
        let instance = self.instance.id.clone();
        self.write(&Actor::system(), |draft| {
            for (id, name, actions) in &roles {
                if let Some(role) = draft.get::<IamRole>(id) {
                    if role.origin == Origin::Managed && role.actions != *actions {
                        let changed =
                            IamRoleEvent::Changed { name: None, actions: Some(actions.clone()), tenants: None };
                        draft.change(&role, changed)?;
                    }
                } else {
                    let role = IamRoleState {
                        name: (*name).to_owned(),
                        origin: Origin::Managed,
                        actions: actions.clone(),
                        tenants: Vec::new(),
                    };
                    draft.create::<IamRole>(id, &instance, IamRoleEvent::Added(role))?;
                }
            }
            for (id, name, member, role) in POLICIES {
                if draft.get::<IamPolicy>(id).is_none() {
                    let policy = IamPolicyState {
                        name: name.to_owned(),
                        origin: Origin::Managed,
                        members: vec![member.to_owned()],
                        statements: vec![Statement {
                            effect: Effect::Allow,
                            actions: Vec::new(),
                            role: role.to_owned(),
                            resources: vec!["*".to_owned()],
                            tenants: vec![ALL_TENANTS.to_owned()],
                            conditions_all: Vec::new(),
                        }],
                        tenants: Vec::new(),
                    };
                    draft.create::<IamPolicy>(id, &instance, IamPolicyEvent::Added(policy))?;
                }
            }
            Ok(())
        })
        .await?;
        Ok(())
    }
}

/// A change of a managed organization policy's definition, or its delete, is refused
/// whatever the request holds (the accounts surface's built-in policies, whose ids differ per
/// organization, so no system statement names them; the IAM v2 surface's managed objects are
/// protected by `kinds::system`).
pub(in crate::app) fn refuse_if_managed(managed: bool, what: &str, id: &str) -> Result<(), AppError> {
    if managed {
        return Err(AppError::new(
            ErrorKind::PermissionDenied,
            "MANAGED",
            format!("the {what} `{id}` is managed by iamd: it cannot be changed or deleted"),
        ));
    }
    Ok(())
}

/// `team:local:admins` stays a member of `administrator-access`, so nobody locks the
/// instance out.
pub(super) fn refuse_dropping_admins(policy: &str, before: &[String], after: &[String]) -> Result<(), AppError> {
    let holds_admins = |list: &[String]| list.iter().any(|m| m == ADMINS);
    if policy == ADMINISTRATOR_ACCESS && holds_admins(before) && !holds_admins(after) {
        return Err(AppError::new(
            ErrorKind::PermissionDenied,
            "PROTECTED",
            format!("`{ADMINS}` cannot be removed from the policy `{ADMINISTRATOR_ACCESS}`"),
        ));
    }
    Ok(())
}
