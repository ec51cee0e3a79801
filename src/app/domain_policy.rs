//! Domain settings (ZITADEL's domain policy; the deprecated Org IAM policy is a view of its
//! first setting). The instance has a default, seeded with every setting true; an
//! organization may have its own, which then wins. Reads of an organization without its own
//! answer the default with `is_default` true.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::organizations::{from_json, missing_commit, to_json};
use super::{Actor, App, AppError, Details, ErrorKind, Receipt, check_version};
use crate::store::{Append, Change, Expect, Store, StoreError, StoredObject};

pub const KIND: &str = "domain_policy";

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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainPolicy {
    pub settings: DomainSettings,
    /// True when this is the instance default rather than the organization's own.
    pub is_default: bool,
    pub details: Details,
}

impl App {
    pub(super) async fn seed_default_domain_policy(&self) -> Result<(), AppError> {
        if self.store.get(KIND, &self.instance.id).await?.is_some() {
            return Ok(());
        }
        let settings = DomainSettings::from_org_iam(true);
        let write = self.policy_write(
            &Actor::system(),
            &self.instance.id,
            Expect::Absent,
            "instance.policy.domain.added",
            settings,
        )?;
        match self.view.append(vec![write]).await {
            // Another replica seeded it first: same defaults, nothing to do.
            Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn default_domain_policy(&self) -> Result<DomainPolicy, AppError> {
        let object = self.view.get(KIND, &self.instance.id).await?.ok_or_else(|| {
            AppError::not_found("DOMAIN_POLICY_NOT_FOUND", "the instance has no default domain policy")
        })?;
        policy(&object, true)
    }

    /// The organization's own policy, or the default when it has none.
    pub async fn org_domain_policy(&self, org_id: &str) -> Result<DomainPolicy, AppError> {
        self.require_org(&*self.view, org_id).await?;
        match self.view.get(KIND, org_id).await? {
            Some(object) => policy(&object, false),
            None => self.default_domain_policy().await,
        }
    }

    pub async fn add_org_domain_policy(
        &self,
        actor: &Actor,
        org_id: &str,
        settings: DomainSettings,
    ) -> Result<Receipt<Details>, AppError> {
        self.require_org(&*self.store, org_id).await?;
        let write = self.policy_write(actor, org_id, Expect::Absent, "org.policy.domain.added", settings)?;
        match self.view.append(vec![write]).await {
            Ok(committed) => first_details(committed),
            Err(StoreError::Conflict { .. }) => Err(AppError::new(
                ErrorKind::AlreadyExists,
                "DOMAIN_POLICY_ALREADY_EXISTS",
                format!("organization `{org_id}` already has its own domain policy"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn change_org_domain_policy(
        &self,
        actor: &Actor,
        org_id: &str,
        settings: DomainSettings,
        expected: Option<u64>,
    ) -> Result<Receipt<Details>, AppError> {
        self.require_org(&*self.store, org_id).await?;
        let current = self.store.get(KIND, org_id).await?.ok_or_else(|| own_policy_missing(org_id))?;
        self.change(actor, &current, "org.policy.domain.changed", settings, expected).await
    }

    pub async fn remove_org_domain_policy(
        &self,
        actor: &Actor,
        org_id: &str,
        expected: Option<u64>,
    ) -> Result<Receipt<Details>, AppError> {
        self.require_org(&*self.store, org_id).await?;
        let current = self.store.get(KIND, org_id).await?.ok_or_else(|| own_policy_missing(org_id))?;
        check_version(expected, &current, "domain policy")?;
        first_details(self.view.append(vec![removal(actor, &current)]).await?)
    }

    pub async fn change_default_domain_policy(
        &self,
        actor: &Actor,
        settings: DomainSettings,
        expected: Option<u64>,
    ) -> Result<Receipt<Details>, AppError> {
        let current = self.store.get(KIND, &self.instance.id).await?.ok_or_else(|| {
            AppError::not_found("DOMAIN_POLICY_NOT_FOUND", "the instance has no default domain policy")
        })?;
        self.change(actor, &current, "instance.policy.domain.changed", settings, expected).await
    }

    async fn change(
        &self,
        actor: &Actor,
        current: &StoredObject,
        event: &str,
        settings: DomainSettings,
        expected: Option<u64>,
    ) -> Result<Receipt<Details>, AppError> {
        check_version(expected, current, "domain policy")?;
        let stored: DomainSettings = from_json(current)?;
        if stored == settings {
            return Err(AppError::new(
                ErrorKind::FailedPrecondition,
                "DOMAIN_POLICY_NOT_CHANGED",
                "the domain policy already has these settings",
            ));
        }
        let write = self.policy_write(actor, &current.id, Expect::Sequence(current.sequence), event, settings)?;
        first_details(self.view.append(vec![write]).await?)
    }

    /// Checks `org_id` names an organization: in the view for reads, the store for writes.
    async fn require_org(&self, source: &dyn Store, org_id: &str) -> Result<(), AppError> {
        if org_id.is_empty() || org_id.chars().count() > 200 {
            return Err(AppError::invalid("orgId", "the organization id must be 1 to 200 characters"));
        }
        self.organization_object(source, org_id).await.map(|_| ())
    }

    fn policy_write(
        &self,
        actor: &Actor,
        owner: &str,
        expect: Expect,
        event: &str,
        settings: DomainSettings,
    ) -> Result<Append, AppError> {
        let state = to_json(&settings)?;
        Ok(Append {
            kind: KIND.into(),
            id: owner.into(),
            expect,
            event_type: event.into(),
            payload: state.clone(),
            actor: actor.0.clone(),
            owner: owner.into(),
            change: Change::Put { owner: owner.into(), parent: String::new(), name: None, state },
        })
    }
}

/// The event that removes an organization's own policy; organization deletion uses it too.
pub(super) fn removal(actor: &Actor, current: &StoredObject) -> Append {
    Append {
        kind: KIND.into(),
        id: current.id.clone(),
        expect: Expect::Sequence(current.sequence),
        event_type: "org.policy.domain.removed".into(),
        payload: json!({}),
        actor: actor.0.clone(),
        owner: current.owner.clone(),
        change: Change::Delete,
    }
}

fn policy(object: &StoredObject, is_default: bool) -> Result<DomainPolicy, AppError> {
    Ok(DomainPolicy { settings: from_json(object)?, is_default, details: Details::of(object) })
}

fn first_details(committed: Vec<crate::store::Committed>) -> Result<Receipt<Details>, AppError> {
    let first = committed.first().ok_or_else(missing_commit)?;
    let details = Details {
        sequence: first.event.sequence,
        created_at: first.object.created_at,
        changed_at: first.event.created_at,
        owner: first.object.owner.clone(),
    };
    Ok(Receipt::of(details, &committed))
}

fn own_policy_missing(org_id: &str) -> AppError {
    AppError::not_found("DOMAIN_POLICY_NOT_FOUND", format!("organization `{org_id}` has no domain policy of its own"))
}
