//! Organization IAM roles: named sets of the organization's policies. The policies are
//! references, so a policy a role lists cannot go, and a role holds its organization's
//! delete back.

use iamd_engine::Feed;
use serde::{Deserialize, Serialize};

use super::org_policy::{Metadata, OrgPolicy, PolicyType};
use crate::model::kind::{Key, Kind};

pub struct OrgRole;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgRoleState {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(rename = "type")]
    pub role_type: PolicyType,
    pub policy_ids: Vec<String>,
    #[serde(default)]
    pub metadata: Metadata,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum OrgRoleEvent {
    #[serde(rename = "org.iam.role.added")]
    Added(OrgRoleState),
    /// Only the fields that changed.
    #[serde(rename = "org.iam.role.changed", rename_all = "camelCase")]
    Changed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy_ids: Option<Vec<String>>,
    },
    #[serde(rename = "org.iam.role.removed")]
    Removed {},
}

impl Kind for OrgRole {
    const NAME: &'static str = "org_role";
    const NAME_TAKEN: &'static str = "ROLE_NAME_TAKEN";
    type State = OrgRoleState;
    type Event = OrgRoleEvent;

    fn apply(state: Option<&OrgRoleState>, event: &OrgRoleEvent) -> Result<Option<OrgRoleState>, String> {
        use OrgRoleEvent::*;
        match (state, event) {
            (None, Added(role)) => Ok(Some(role.clone())),
            (Some(_), Added(_)) => Err("the role exists already".into()),
            (None, _) => Err("the role does not exist".into()),
            (Some(state), Changed { name, description, policy_ids }) => Ok(Some(OrgRoleState {
                name: name.clone().unwrap_or_else(|| state.name.clone()),
                description: description.clone().unwrap_or_else(|| state.description.clone()),
                policy_ids: policy_ids.clone().unwrap_or_else(|| state.policy_ids.clone()),
                ..state.clone()
            })),
            (Some(_), Removed {}) => Ok(None),
        }
    }

    fn removal(_: &OrgRoleState) -> OrgRoleEvent {
        OrgRoleEvent::Removed {}
    }

    fn name(state: &OrgRoleState) -> Option<&str> {
        Some(&state.name)
    }

    fn references(state: &OrgRoleState) -> Vec<Key> {
        state.policy_ids.iter().map(|id| Key::new(OrgPolicy::NAME, &**id)).collect()
    }

    fn decides(id: &str, owner: &str, state: Option<&OrgRoleState>, engine: &mut dyn Feed) {
        match state {
            Some(state) => engine.put_org_role(
                id,
                &iamd_engine::OrgRole { organization: owner.to_owned(), policies: state.policy_ids.clone() },
            ),
            None => engine.remove_org_role(id),
        }
    }
}
