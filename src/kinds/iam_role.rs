//! IAM v2 roles: named sets of actions that policy statements grant or deny. A role's
//! tenants are references: deleting a tenant takes it out of the role's list.

use iamd_engine::Feed;
use serde::{Deserialize, Serialize};

use super::origin::Origin;
use super::tenant::{Tenant, tenant_terms};
use crate::model::kind::{Key, Kind, OnDelete, Term};

pub struct IamRole;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IamRoleState {
    pub name: String,
    #[serde(rename = "type")]
    pub origin: Origin,
    pub actions: Vec<String>,
    #[serde(default)]
    pub tenants: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum IamRoleEvent {
    #[serde(rename = "iam.role.added")]
    Added(IamRoleState),
    /// Only the fields that changed.
    #[serde(rename = "iam.role.changed")]
    Changed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        actions: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenants: Option<Vec<String>>,
    },
    /// A deleted tenant left the role's list.
    #[serde(rename = "iam.role.tenant.removed")]
    TenantRemoved { tenant: String },
    #[serde(rename = "iam.role.removed")]
    Removed {},
}

impl Kind for IamRole {
    const NAME: &'static str = "iam_role";
    type State = IamRoleState;
    type Event = IamRoleEvent;

    fn apply(state: Option<&IamRoleState>, event: &IamRoleEvent) -> Result<Option<IamRoleState>, String> {
        use IamRoleEvent::*;
        match (state, event) {
            (None, Added(role)) => Ok(Some(role.clone())),
            (Some(_), Added(_)) => Err("the role exists already".into()),
            (None, _) => Err("the role does not exist".into()),
            (Some(state), Changed { name, actions, tenants }) => Ok(Some(IamRoleState {
                name: name.clone().unwrap_or_else(|| state.name.clone()),
                origin: state.origin,
                actions: actions.clone().unwrap_or_else(|| state.actions.clone()),
                tenants: tenants.clone().unwrap_or_else(|| state.tenants.clone()),
            })),
            (Some(state), TenantRemoved { tenant }) => {
                let mut next = state.clone();
                next.tenants.retain(|t| t != tenant);
                Ok(Some(next))
            }
            (Some(_), Removed {}) => Ok(None),
        }
    }

    fn removal(_: &IamRoleState) -> IamRoleEvent {
        IamRoleEvent::Removed {}
    }

    fn references(state: &IamRoleState) -> Vec<Key> {
        state.tenants.iter().map(|t| Key::new(Tenant::NAME, &**t)).collect()
    }

    fn terms(state: &IamRoleState) -> Vec<Term> {
        tenant_terms(&state.tenants)
    }

    fn on_delete(_: &IamRoleState, target: &'static str) -> OnDelete {
        if target == Tenant::NAME { OnDelete::Detach } else { OnDelete::Restrict }
    }

    fn detach(_: &IamRoleState, target: &Key) -> Option<IamRoleEvent> {
        (target.kind == Tenant::NAME).then(|| IamRoleEvent::TenantRemoved { tenant: target.id.to_string() })
    }

    fn decides(id: &str, _owner: &str, state: Option<&IamRoleState>, engine: &mut dyn Feed) {
        match state {
            Some(state) => engine.put_role(id, &iamd_engine::Role { actions: state.actions.clone() }),
            None => engine.remove_role(id),
        }
    }
}
