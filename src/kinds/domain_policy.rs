//! Domain settings (ZITADEL's domain policy): the instance's default, and an organization's
//! own, which goes with its organization. The object's id is its owner's: the instance's for
//! the default, the organization's for its own.

use serde::{Deserialize, Serialize};

use crate::model::kind::{Kind, OnDelete};

pub struct DomainPolicy;

/// The three settings.
// Stored states and event payloads use the API's lowerCamelCase names, so the history
// reads like the rest of the JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainSettings {
    pub user_login_must_be_domain: bool,
    pub validate_org_domains: bool,
    pub smtp_sender_address_matches_instance_domain: bool,
}

impl DomainSettings {
    /// What the deprecated Org IAM endpoints write: the two newer settings forced on, as
    /// ZITADEL does.
    pub fn from_org_iam(user_login_must_be_domain: bool) -> Self {
        DomainSettings {
            user_login_must_be_domain,
            validate_org_domains: true,
            smtp_sender_address_matches_instance_domain: true,
        }
    }
}

/// Each event but the removal carries the settings as they are after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum DomainPolicyEvent {
    #[serde(rename = "instance.policy.domain.added")]
    InstanceAdded(DomainSettings),
    #[serde(rename = "instance.policy.domain.changed")]
    InstanceChanged(DomainSettings),
    #[serde(rename = "org.policy.domain.added")]
    OrgAdded(DomainSettings),
    #[serde(rename = "org.policy.domain.changed")]
    OrgChanged(DomainSettings),
    #[serde(rename = "org.policy.domain.removed")]
    OrgRemoved {},
}

impl Kind for DomainPolicy {
    const NAME: &'static str = "domain_policy";
    type State = DomainSettings;
    type Event = DomainPolicyEvent;

    fn apply(state: Option<&DomainSettings>, event: &DomainPolicyEvent) -> Result<Option<DomainSettings>, String> {
        use DomainPolicyEvent::{InstanceAdded, InstanceChanged, OrgAdded, OrgChanged, OrgRemoved};
        match (state, event) {
            (None, InstanceAdded(settings) | OrgAdded(settings)) => Ok(Some(*settings)),
            (Some(_), InstanceChanged(settings) | OrgChanged(settings)) => Ok(Some(*settings)),
            (Some(_), OrgRemoved {}) => Ok(None),
            (Some(_), InstanceAdded(_) | OrgAdded(_)) => Err("the domain policy exists already".into()),
            (None, _) => Err("the domain policy does not exist".into()),
        }
    }

    fn removal(_: &DomainSettings) -> DomainPolicyEvent {
        DomainPolicyEvent::OrgRemoved {}
    }

    /// An organization's own settings go with it.
    fn on_delete(_: &DomainSettings, _target: &'static str) -> OnDelete {
        OnDelete::Cascade
    }
}
