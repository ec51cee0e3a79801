//! Local teams (Chef Automate's): the subjects `team:local:<id>`, and the users they hold.
//! A team's users and tenants are references: a user's delete takes it out of the team, a
//! tenant's out of its tenants. What a team holds is what the engine knows of membership, so
//! a user acts with its teams on every check.

use iamd_engine::Feed;
use serde::{Deserialize, Serialize};

use super::tenant::{Tenant, tenant_terms};
use super::user::{User, user_subject};
use crate::model::kind::{Key, Kind, OnDelete, Term};

/// The subject prefix of local teams.
pub const LOCAL_TEAM: &str = "team:local:";

/// The subject of a local team.
pub fn team_subject(id: &str) -> String {
    format!("{LOCAL_TEAM}{id}")
}

pub struct Team;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamState {
    pub name: String,
    #[serde(default)]
    pub tenants: Vec<String>,
    /// User ids, in the order they joined.
    #[serde(default)]
    pub users: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum TeamEvent {
    #[serde(rename = "iam.team.added")]
    Added(TeamState),
    /// Only the fields that changed.
    #[serde(rename = "iam.team.changed")]
    Changed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenants: Option<Vec<String>>,
    },
    /// Users appended, none of them present before.
    #[serde(rename = "iam.team.users.added")]
    UsersAdded { users: Vec<String> },
    #[serde(rename = "iam.team.users.removed")]
    UsersRemoved { users: Vec<String> },
    /// A deleted tenant left the team's list.
    #[serde(rename = "iam.team.tenant.removed")]
    TenantRemoved { tenant: String },
    #[serde(rename = "iam.team.removed")]
    Removed {},
}

impl Kind for Team {
    const NAME: &'static str = "team";
    type State = TeamState;
    type Event = TeamEvent;

    fn apply(state: Option<&TeamState>, event: &TeamEvent) -> Result<Option<TeamState>, String> {
        use TeamEvent::*;
        match (state, event) {
            (None, Added(team)) => Ok(Some(team.clone())),
            (Some(_), Added(_)) => Err("the team exists already".into()),
            (None, _) => Err("the team does not exist".into()),
            (Some(state), Changed { name, tenants }) => Ok(Some(TeamState {
                name: name.clone().unwrap_or_else(|| state.name.clone()),
                tenants: tenants.clone().unwrap_or_else(|| state.tenants.clone()),
                users: state.users.clone(),
            })),
            (Some(state), UsersAdded { users }) => {
                let mut next = state.clone();
                for user in users {
                    if !next.users.contains(user) {
                        next.users.push(user.clone());
                    }
                }
                Ok(Some(next))
            }
            (Some(state), UsersRemoved { users }) => {
                let mut next = state.clone();
                next.users.retain(|u| !users.contains(u));
                Ok(Some(next))
            }
            (Some(state), TenantRemoved { tenant }) => {
                let mut next = state.clone();
                next.tenants.retain(|t| t != tenant);
                Ok(Some(next))
            }
            (Some(_), Removed {}) => Ok(None),
        }
    }

    fn removal(_: &TeamState) -> TeamEvent {
        TeamEvent::Removed {}
    }

    fn references(state: &TeamState) -> Vec<Key> {
        let tenants = state.tenants.iter().map(|t| Key::new(Tenant::NAME, &**t));
        tenants.chain(state.users.iter().map(|u| Key::new(User::NAME, &**u))).collect()
    }

    fn terms(state: &TeamState) -> Vec<Term> {
        tenant_terms(&state.tenants)
    }

    fn on_delete(_: &TeamState, target: &'static str) -> OnDelete {
        if target == Tenant::NAME || target == User::NAME { OnDelete::Detach } else { OnDelete::Restrict }
    }

    fn detach(_: &TeamState, target: &Key) -> Option<TeamEvent> {
        match target.kind {
            Tenant::NAME => Some(TeamEvent::TenantRemoved { tenant: target.id.to_string() }),
            User::NAME => Some(TeamEvent::UsersRemoved { users: vec![target.id.to_string()] }),
            _ => None,
        }
    }

    fn decides(id: &str, _owner: &str, state: Option<&TeamState>, engine: &mut dyn Feed) {
        let team = team_subject(id);
        match state {
            Some(state) => engine.put_team(&team, &state.users.iter().map(|u| user_subject(u)).collect::<Vec<_>>()),
            None => engine.remove_team(&team),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_join_once_in_order_and_leave_if_present() {
        let team = TeamState { name: "Ops".into(), tenants: vec![], users: vec!["alice".into()] };
        let added = TeamEvent::UsersAdded { users: vec!["bob".into(), "alice".into()] };
        let after = Team::apply(Some(&team), &added).unwrap().unwrap();
        assert_eq!(after.users, ["alice", "bob"]);
        let removed = TeamEvent::UsersRemoved { users: vec!["alice".into(), "carol".into()] };
        assert_eq!(Team::apply(Some(&after), &removed).unwrap().unwrap().users, ["bob"]);
        let gone = Team::detach(&after, &Key::new(User::NAME, "bob")).unwrap();
        assert_eq!(Team::apply(Some(&after), &gone).unwrap().unwrap().users, ["alice"]);
    }
}
