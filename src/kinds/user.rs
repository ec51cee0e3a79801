//! Local users (Chef Automate's): the subjects `user:local:<id>`. iamd keeps no password: a
//! user acts through API tokens that name it. Teams and tokens reference their users, so a
//! user's delete takes it out of its teams and deletes its tokens in the same transaction.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::kind::{Kind, Term};

/// The subject prefix of local users.
pub const LOCAL_USER: &str = "user:local:";

/// The subject of a local user.
pub fn user_subject(id: &str) -> String {
    [LOCAL_USER, id].concat()
}

/// Every user, under one value: the users in id order, which a search that a wildcard member
/// reaches walks from where its last page ended.
pub const ORDER_INDEX: &str = "user_order";

pub struct User;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserState {
    pub name: String,
    /// What AuthZEN conditions test as `subject.<key>`; absent from events written before.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum UserEvent {
    #[serde(rename = "iam.user.added")]
    Added(UserState),
    #[serde(rename = "iam.user.changed")]
    Changed {
        name: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        properties: BTreeMap<String, String>,
    },
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
            (Some(_), UserEvent::Changed { name, properties }) => {
                Ok(Some(UserState { name: name.clone(), properties: properties.clone() }))
            }
            (Some(_), UserEvent::Removed {}) => Ok(None),
            (None, _) => Err("the user does not exist".into()),
        }
    }

    fn removal(_: &UserState) -> UserEvent {
        UserEvent::Removed {}
    }

    fn terms(_: &UserState) -> Vec<Term> {
        vec![Term::new(ORDER_INDEX, "")]
    }
}
