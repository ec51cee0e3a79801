//! Assignments: a principal (a member expression that need not name an existing user or
//! team) holds roles and policies of one organization. The roles and policies are
//! references, so neither can go while assigned; the principal is a lookup term, for
//! counting who a policy reaches and for finding a principal's assignments.

use iamd_engine::Feed;
use serde::{Deserialize, Serialize};

use super::org_policy::OrgPolicy;
use super::org_role::OrgRole;
use crate::model::kind::{Key, Kind, Term};

/// The lookup index of assignments by principal.
pub const PRINCIPAL_INDEX: &str = "principal";

pub struct Assignment;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentState {
    pub principal: String,
    #[serde(default)]
    pub role_ids: Vec<String>,
    #[serde(default)]
    pub policy_ids: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum AssignmentEvent {
    #[serde(rename = "org.iam.assignment.added")]
    Added(AssignmentState),
    #[serde(rename = "org.iam.assignment.removed")]
    Removed {},
}

impl Kind for Assignment {
    const NAME: &'static str = "assignment";
    type State = AssignmentState;
    type Event = AssignmentEvent;

    fn apply(state: Option<&AssignmentState>, event: &AssignmentEvent) -> Result<Option<AssignmentState>, String> {
        match (state, event) {
            (None, AssignmentEvent::Added(assignment)) => Ok(Some(assignment.clone())),
            (Some(_), AssignmentEvent::Added(_)) => Err("the assignment exists already".into()),
            (Some(_), AssignmentEvent::Removed {}) => Ok(None),
            (None, AssignmentEvent::Removed {}) => Err("the assignment does not exist".into()),
        }
    }

    fn removal(_: &AssignmentState) -> AssignmentEvent {
        AssignmentEvent::Removed {}
    }

    fn references(state: &AssignmentState) -> Vec<Key> {
        let roles = state.role_ids.iter().map(|id| Key::new(OrgRole::NAME, &**id));
        roles.chain(state.policy_ids.iter().map(|id| Key::new(OrgPolicy::NAME, &**id))).collect()
    }

    fn terms(state: &AssignmentState) -> Vec<Term> {
        vec![Term::new(PRINCIPAL_INDEX, &*state.principal)]
    }

    fn decides(id: &str, owner: &str, state: Option<&AssignmentState>, engine: &mut dyn Feed) {
        match state {
            Some(state) => engine.put_assignment(
                id,
                &iamd_engine::Assignment {
                    organization: owner.to_owned(),
                    principal: state.principal.clone(),
                    roles: state.role_ids.clone(),
                    policies: state.policy_ids.clone(),
                },
            ),
            None => engine.remove_assignment(id),
        }
    }
}
