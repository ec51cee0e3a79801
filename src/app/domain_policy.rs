//! Domain settings (ZITADEL's domain policy; the deprecated Org IAM policy is a view of its
//! first setting). The instance has a default, seeded with every setting true; an
//! organization may have its own, which then wins. Reads of an organization without its own
//! answer the default with `is_default` true. An organization's own policy references its
//! organization, so it is written only while the organization exists, and goes with it.

use super::organizations::{missing_commit, organization, organization_in};
use super::{Actor, App, AppError, Details, ErrorKind, Receipt, check_version};
use crate::kinds::domain_policy::{DomainPolicy as Policy, DomainPolicyEvent, DomainSettings};
use crate::model::draft::Draft;
use crate::model::kind::Kind;
use crate::model::objects::{Obj, Objects};
use crate::model::replica::Written;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainPolicy {
    pub settings: DomainSettings,
    /// True when this is the instance default rather than the organization's own.
    pub is_default: bool,
    pub details: Details,
}

impl App {
    pub(super) async fn seed_default_domain_policy(&self) -> Result<(), AppError> {
        let instance = self.instance.id.clone();
        let settings = DomainSettings::from_org_iam(true);
        self.write(&Actor::system(), |draft| {
            // Another replica may have seeded it first: same defaults, nothing to do.
            if draft.get::<Policy>(&instance).is_none() {
                draft.create::<Policy>(&instance, &instance, DomainPolicyEvent::InstanceAdded(settings))?;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn default_domain_policy(&self) -> Result<DomainPolicy, AppError> {
        default_policy(&*self.objects()?, &self.instance.id)
    }

    /// The organization's own policy, or the default when it has none.
    pub async fn org_domain_policy(&self, org_id: &str) -> Result<DomainPolicy, AppError> {
        valid_org_id(org_id)?;
        let objects = self.objects()?;
        organization(&objects, org_id)?;
        match objects.get::<Policy>(org_id) {
            Some(own) => Ok(policy(&own, false)),
            None => default_policy(&objects, &self.instance.id),
        }
    }

    pub async fn add_org_domain_policy(
        &self,
        actor: &Actor,
        org_id: &str,
        settings: DomainSettings,
    ) -> Result<Receipt<Details>, AppError> {
        valid_org_id(org_id)?;
        let ((), written) = self
            .write(actor, |draft| {
                organization_in(draft, org_id)?;
                if draft.get::<Policy>(org_id).is_some() {
                    return Err(AppError::new(
                        ErrorKind::AlreadyExists,
                        "DOMAIN_POLICY_ALREADY_EXISTS",
                        format!("organization `{org_id}` already has its own domain policy"),
                    ));
                }
                // Owned by the organization: the write is guarded on it existing.
                draft.create::<Policy>(org_id, org_id, DomainPolicyEvent::OrgAdded(settings))?;
                Ok(())
            })
            .await?;
        details(org_id, written)
    }

    pub async fn change_org_domain_policy(
        &self,
        actor: &Actor,
        org_id: &str,
        settings: DomainSettings,
        expected: Option<u64>,
    ) -> Result<Receipt<Details>, AppError> {
        valid_org_id(org_id)?;
        let ((), written) = self
            .write(actor, |draft| {
                organization_in(draft, org_id)?;
                let current = own_policy(draft, org_id)?;
                change(draft, &current, settings, DomainPolicyEvent::OrgChanged, expected)
            })
            .await?;
        details(org_id, written)
    }

    pub async fn remove_org_domain_policy(
        &self,
        actor: &Actor,
        org_id: &str,
        expected: Option<u64>,
    ) -> Result<Receipt<Details>, AppError> {
        valid_org_id(org_id)?;
        let ((), written) = self
            .write(actor, |draft| {
                organization_in(draft, org_id)?;
                let current = own_policy(draft, org_id)?;
                check_version(expected, &current.meta, "domain policy")?;
                Ok(draft.delete(&current, DomainPolicyEvent::OrgRemoved {})?)
            })
            .await?;
        details(org_id, written)
    }

    pub async fn change_default_domain_policy(
        &self,
        actor: &Actor,
        settings: DomainSettings,
        expected: Option<u64>,
    ) -> Result<Receipt<Details>, AppError> {
        let instance = &self.instance.id;
        let ((), written) = self
            .write(actor, |draft| {
                let current = draft.get::<Policy>(instance).ok_or_else(no_default)?;
                change(draft, &current, settings, DomainPolicyEvent::InstanceChanged, expected)
            })
            .await?;
        details(instance, written)
    }
}

/// Changes the settings of `current` by the event `changed` makes of them.
fn change(
    draft: &mut Draft<'_>,
    current: &Obj<Policy>,
    settings: DomainSettings,
    changed: fn(DomainSettings) -> DomainPolicyEvent,
    expected: Option<u64>,
) -> Result<(), AppError> {
    check_version(expected, &current.meta, "domain policy")?;
    if *current.state == settings {
        return Err(AppError::new(
            ErrorKind::FailedPrecondition,
            "DOMAIN_POLICY_NOT_CHANGED",
            "the domain policy already has these settings",
        ));
    }
    draft.change(current, changed(settings))?;
    Ok(())
}

fn valid_org_id(org_id: &str) -> Result<(), AppError> {
    if org_id.is_empty() || org_id.chars().count() > 200 {
        return Err(AppError::invalid("orgId", "the organization id must be 1 to 200 characters"));
    }
    Ok(())
}

fn own_policy(draft: &mut Draft<'_>, org_id: &str) -> Result<Obj<Policy>, AppError> {
    draft.get::<Policy>(org_id).ok_or_else(|| {
        AppError::not_found(
            "DOMAIN_POLICY_NOT_FOUND",
            format!("organization `{org_id}` has no domain policy of its own"),
        )
    })
}

fn default_policy(objects: &Objects, instance: &str) -> Result<DomainPolicy, AppError> {
    objects.get::<Policy>(instance).map(|object| policy(&object, true)).ok_or_else(no_default)
}

fn no_default() -> AppError {
    AppError::not_found("DOMAIN_POLICY_NOT_FOUND", "the instance has no default domain policy")
}

fn policy(object: &Obj<Policy>, is_default: bool) -> DomainPolicy {
    DomainPolicy { settings: *object.state, is_default, details: Details::of(&object.meta) }
}

/// The details of the policy write: of its event, for a removal too.
fn details(id: &str, written: Written) -> Result<Receipt<Details>, AppError> {
    let meta = written.meta(Policy::NAME, id).ok_or_else(missing_commit)?;
    Ok(Receipt::of(Details::of(meta), &written))
}
