//! The record that this instance has bootstrapped its first administrator (A.6): one object
//! under one id, created with expect-absent in the bootstrap's own transaction, so replicas
//! that start together on an empty database bootstrap once and the others find it done.

use serde::{Deserialize, Serialize};

use crate::model::kind::Kind;

/// The one id of the record.
pub const BOOTSTRAP_ID: &str = "instance";

pub struct Bootstrap;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapState {
    /// The id of the token made then (it may have been deleted since).
    pub token: String,
    /// Its digest, so a later start can tell a different `IAMD_BOOTSTRAP_TOKEN` apart.
    pub digest: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum BootstrapEvent {
    #[serde(rename = "iam.bootstrap.done")]
    Done(BootstrapState),
}

impl Kind for Bootstrap {
    const NAME: &'static str = "bootstrap";
    const HIDDEN_FIELDS: &'static [&'static str] = &["digest"];
    type State = BootstrapState;
    type Event = BootstrapEvent;

    fn apply(state: Option<&BootstrapState>, event: &BootstrapEvent) -> Result<Option<BootstrapState>, String> {
        match (state, event) {
            (None, BootstrapEvent::Done(done)) => Ok(Some(done.clone())),
            (Some(_), BootstrapEvent::Done(_)) => Err("the instance is bootstrapped already".into()),
        }
    }

    fn removal(state: &BootstrapState) -> BootstrapEvent {
        // Never deleted: nothing references it, so no cascade reaches it.
        BootstrapEvent::Done(state.clone())
    }
}
