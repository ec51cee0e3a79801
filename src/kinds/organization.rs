//! Organizations: the tenants every surface's objects belong to. Names are unique per
//! instance; deleting one goes as far as its owned objects' kinds allow.

use serde::{Deserialize, Serialize};

use crate::model::kind::Kind;

pub struct Organization;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationState {
    pub name: String,
    pub domain: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum OrganizationEvent {
    #[serde(rename = "org.added")]
    Added { name: String, domain: String },
    /// Only the fields that changed.
    #[serde(rename = "org.changed")]
    Changed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        domain: Option<String>,
    },
    #[serde(rename = "org.removed")]
    Removed {},
}

impl Kind for Organization {
    const NAME: &'static str = "organization";
    const NAME_TAKEN: &'static str = "ORGANIZATION_NAME_TAKEN";
    type State = OrganizationState;
    type Event = OrganizationEvent;

    fn apply(
        state: Option<&OrganizationState>,
        event: &OrganizationEvent,
    ) -> Result<Option<OrganizationState>, String> {
        match (state, event) {
            (None, OrganizationEvent::Added { name, domain }) => {
                Ok(Some(OrganizationState { name: name.clone(), domain: domain.clone() }))
            }
            (Some(state), OrganizationEvent::Changed { name, domain }) => Ok(Some(OrganizationState {
                name: name.clone().unwrap_or_else(|| state.name.clone()),
                domain: domain.clone().unwrap_or_else(|| state.domain.clone()),
            })),
            (Some(_), OrganizationEvent::Removed {}) => Ok(None),
            (Some(_), OrganizationEvent::Added { .. }) => Err("the organization exists already".into()),
            (None, _) => Err("the organization does not exist".into()),
        }
    }

    fn removal(_: &OrganizationState) -> OrganizationEvent {
        OrganizationEvent::Removed {}
    }

    fn name(state: &OrganizationState) -> Option<&str> {
        Some(&state.name)
    }
}
