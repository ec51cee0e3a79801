//! Local users (Chef Automate's): the subjects `user:local:<id>`. iamd keeps no password: a
//! user acts through API tokens that name it. Teams and tokens reference their users, so a
//! user's delete takes it out of its teams and deletes its tokens in the same transaction.

use serde::{Deserialize, Serialize};

use crate::model::kind::Kind;

/// The subject prefix of local users.
pub const LOCAL_USER: &str = "user:local:";

/// The subject of a local user.
pub fn user_subject(id: &str) -> String {
    format!("{LOCAL_USER}{id}")
}

pub struct User;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserState {
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum UserEvent {
    #[serde(rename = "iam.user.added")]
    Added(UserState),
    #[serde(rename = "iam.user.changed")]
    Changed { name: String },
    #[serde(rename = "iam.user.removed")]
    Removed {},
}

impl Kind for User {
    const NAME: &'static str = "user";
    type State = UserState;
    type Event = UserEvent;

    fn apply(state: Option<&UserState>, event: &UserEvent) -> Result<Option<UserState>, String> {
        match (state, event) {
            (None, UserEvent::Added(user)) => Ok(Some(user.clone())),
            (Some(_), UserEvent::Added(_)) => Err("the user exists already".into()),
            (Some(_), UserEvent::Changed { name }) => Ok(Some(UserState { name: name.clone() })),
            (Some(_), UserEvent::Removed {}) => Ok(None),
            (None, _) => Err("the user does not exist".into()),
        }
    }

    fn removal(_: &UserState) -> UserEvent {
        UserEvent::Removed {}
    }
}
