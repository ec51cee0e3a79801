//! Tenants: create (with the three policies of A.6 unless asked not to), list, read, rename
//! and delete. Deleting one takes it out of every policy, statement and role, drops the
//! statements left without tenants and the policies left without statements, in one
//! transaction (the kinds' Detach rule).

use super::super::organizations::missing_commit;
use super::super::{Actor, App, AppError, Receipt, changed_or_current, check_version};
use super::policies::allow_role_on;
use super::{MAX_TENANT_ID, TenantFilter, absent, find, find_in, in_list_order, required, valid_id};
use crate::kinds::iam_policy::{IamPolicy, IamPolicyEvent, IamPolicyState, Origin};
use crate::kinds::tenant::{Tenant, TenantEvent, TenantState};
use crate::model::objects::Obj;

/// (id suffix, name suffix, role) of the policies a new tenant gets.
const TENANT_POLICIES: [(&str, &str, &str); 3] = [
    ("tenant-owners", "Tenant Owners", "tenant-owner"),
    ("tenant-editors", "Tenant Editors", "editor"),
    ("tenant-viewers", "Tenant Viewers", "viewer"),
];

impl App {
    pub async fn create_tenant(
        &self,
        actor: &Actor,
        id: &str,
        name: &str,
        skip_policies: bool,
    ) -> Result<Receipt<Obj<Tenant>>, AppError> {
        valid_id("id", "tenant id", id, MAX_TENANT_ID)?;
        required("name", "tenant name", name)?;
        let instance = self.instance.id.clone();
        let ((), written) = self
            .write(actor, |draft| {
                absent::<Tenant>(draft, id)?;
                let tenant = TenantState { name: name.to_owned(), origin: Origin::Custom };
                draft.create::<Tenant>(id, &instance, TenantEvent::Added(tenant))?;
                if !skip_policies {
                    for (suffix, title, role) in TENANT_POLICIES {
                        let policy_id = format!("{id}-{suffix}");
                        absent::<IamPolicy>(draft, &policy_id)?;
                        let policy = IamPolicyState {
                            name: format!("{name} {title}"),
                            origin: Origin::Custom,
                            members: Vec::new(),
                            statements: vec![allow_role_on(role, id)],
                            tenants: vec![id.to_owned()],
                        };
                        draft.create::<IamPolicy>(&policy_id, &instance, IamPolicyEvent::Added(policy))?;
                    }
                }
                Ok(())
            })
            .await?;
        Ok(Receipt::of(written.get::<Tenant>(id).ok_or_else(missing_commit)?, &written))
    }

    pub async fn list_tenants(&self, filter: &TenantFilter) -> Result<Vec<Obj<Tenant>>, AppError> {
        let objects = self.objects()?;
        let shown = |t: &Obj<Tenant>| filter.names(&t.id);
        Ok(match filter.named() {
            None => {
                let mut all = objects.page::<Tenant>("", None, false, usize::MAX);
                all.retain(shown);
                all
            }
            Some(named) => in_list_order(named.iter().filter_map(|t| objects.get::<Tenant>(t)).filter(shown).collect()),
        })
    }

    pub async fn tenant(&self, id: &str, filter: &TenantFilter) -> Result<Obj<Tenant>, AppError> {
        find::<Tenant>(&*self.objects()?, id, filter)
    }

    pub async fn update_tenant(
        &self,
        actor: &Actor,
        id: &str,
        name: &str,
        filter: &TenantFilter,
        expected: Option<u64>,
    ) -> Result<Receipt<Obj<Tenant>>, AppError> {
        required("name", "tenant name", name)?;
        let (unchanged, written) = self
            .write(actor, |draft| {
                let current = find_in::<Tenant>(draft, id, filter)?;
                check_version(expected, &current.meta, "tenant")?;
                if current.name == name {
                    return Ok(Some(current));
                }
                draft.change(&current, TenantEvent::Changed { name: name.to_owned() })?;
                Ok(None)
            })
            .await?;
        changed_or_current(unchanged, &written, id)
    }

    pub async fn delete_tenant(
        &self,
        actor: &Actor,
        id: &str,
        filter: &TenantFilter,
        expected: Option<u64>,
    ) -> Result<Receipt<()>, AppError> {
        self.delete_shown::<Tenant>(actor, id, filter, expected, |_| Ok(())).await
    }
}
