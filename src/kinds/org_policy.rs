//! Organization IAM policies (Bird's, seed 004): definitions that allow or deny actions on
//! API paths of the organization, under conditions on a check's context. Each organization
//! has built-in `managed` policies, which go with it; its custom ones hold its delete back.

use iamd_engine::{self as engine, Feed};
use serde::{Deserialize, Serialize};

use super::condition::engine_conditions;
pub use super::condition::{Condition, Operator, Tests};
use crate::model::kind::{Kind, OnDelete};

pub struct OrgPolicy;

/// An enum spelled as the wire spells it, stored that way too: one table gives serde's
/// names, `as_str`, `parse` and the list of spellings messages offer.
macro_rules! spelled {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),*
        }

        impl $name {
            pub const SPELLINGS: &'static [&'static str] = &[$($text),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),*
                }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

spelled!(Effect { Allow = "allow", Deny = "deny" });

spelled!(
    /// Who made a policy or role: iamd (`managed`, read-only) or the organization.
    PolicyType { Managed = "managed", Organization = "organization" }
);

spelled!(
    /// What a definition covers; `view` is GET, HEAD and OPTIONS, `update` PUT and PATCH.
    Action { Any = "any", Create = "create", View = "view", Update = "update", Delete = "delete" }
);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Definition {
    pub effect: Effect,
    pub actions: Vec<Action>,
    pub resources: Vec<String>,
    #[serde(default)]
    pub conditions_all: Vec<Condition>,
}

/// Free-form labels of a policy or role.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub clouds: Vec<String>,
    #[serde(default)]
    pub apps: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgPolicyState {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(rename = "type")]
    pub policy_type: PolicyType,
    pub definitions: Vec<Definition>,
    #[serde(default)]
    pub metadata: Metadata,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum OrgPolicyEvent {
    #[serde(rename = "org.iam.policy.added")]
    Added(OrgPolicyState),
    /// Only the fields that changed.
    #[serde(rename = "org.iam.policy.changed")]
    Changed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        definitions: Option<Vec<Definition>>,
    },
    #[serde(rename = "org.iam.policy.removed")]
    Removed {},
}

impl Kind for OrgPolicy {
    const NAME: &'static str = "org_policy";
    const NAME_TAKEN: &'static str = "POLICY_NAME_TAKEN";
    type State = OrgPolicyState;
    type Event = OrgPolicyEvent;

    fn apply(state: Option<&OrgPolicyState>, event: &OrgPolicyEvent) -> Result<Option<OrgPolicyState>, String> {
        use OrgPolicyEvent::*;
        match (state, event) {
            (None, Added(policy)) => Ok(Some(policy.clone())),
            (Some(_), Added(_)) => Err("the policy exists already".into()),
            (None, _) => Err("the policy does not exist".into()),
            (Some(state), Changed { name, description, definitions }) => Ok(Some(OrgPolicyState {
                name: name.clone().unwrap_or_else(|| state.name.clone()),
                description: description.clone().unwrap_or_else(|| state.description.clone()),
                definitions: definitions.clone().unwrap_or_else(|| state.definitions.clone()),
                ..state.clone()
            })),
            (Some(_), Removed {}) => Ok(None),
        }
    }

    fn removal(_: &OrgPolicyState) -> OrgPolicyEvent {
        OrgPolicyEvent::Removed {}
    }

    fn name(state: &OrgPolicyState) -> Option<&str> {
        Some(&state.name)
    }

    /// Only the organization is referenced: a managed policy goes with it, a custom one
    /// holds its delete back.
    fn on_delete(state: &OrgPolicyState, _target: &'static str) -> OnDelete {
        match state.policy_type {
            PolicyType::Managed => OnDelete::Cascade,
            PolicyType::Organization => OnDelete::Restrict,
        }
    }

    fn decides(id: &str, owner: &str, state: Option<&OrgPolicyState>, engine: &mut dyn Feed) {
        let Some(state) = state else { return engine.remove_org_policy(id) };
        let definitions = state.definitions.iter().map(engine_definition).collect();
        engine.put_org_policy(id, &engine::OrgPolicy { organization: owner.to_owned(), definitions });
    }
}

fn engine_definition(definition: &Definition) -> engine::Definition {
    let conditions = engine_conditions(&definition.conditions_all);
    engine::Definition {
        effect: match definition.effect {
            Effect::Allow => engine::Effect::Allow,
            Effect::Deny => engine::Effect::Deny,
        },
        actions: definition
            .actions
            .iter()
            .map(|action| match action {
                Action::Any => engine::OrgAction::Any,
                Action::Create => engine::OrgAction::Create,
                Action::View => engine::OrgAction::View,
                Action::Update => engine::OrgAction::Update,
                Action::Delete => engine::OrgAction::Delete,
            })
            .collect(),
        resources: definition.resources.clone(),
        conditions,
    }
}
