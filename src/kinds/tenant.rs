//! Tenants (Chef Automate's projects): what IAM v2 policies, roles and statements belong to.

use serde::{Deserialize, Serialize};

use super::origin::Origin;
use crate::model::kind::{Kind, Term};

/// In a statement's tenants: every tenant.
pub const ALL_TENANTS: &str = "*";
/// The lookup value of an object that belongs to no tenant, as Chef's filter spells it.
pub const UNASSIGNED: &str = "(unassigned)";
/// The lookup index of the tenants a policy or role belongs to.
pub const TENANT_INDEX: &str = "tenant";

/// The terms the `tenants` filter finds a policy or role under: each of its tenants, or
/// [`UNASSIGNED`] when it has none.
pub fn tenant_terms(tenants: &[String]) -> Vec<Term> {
    if tenants.is_empty() {
        return vec![Term::new(TENANT_INDEX, UNASSIGNED)];
    }
    tenants.iter().map(|t| Term::new(TENANT_INDEX, &**t)).collect()
}

pub struct Tenant;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantState {
    pub name: String,
    #[serde(rename = "type")]
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum TenantEvent {
    #[serde(rename = "iam.tenant.added")]
    Added(TenantState),
    #[serde(rename = "iam.tenant.changed")]
    Changed { name: String },
    #[serde(rename = "iam.tenant.removed")]
    Removed {},
}

impl Kind for Tenant {
    const NAME: &'static str = "tenant";
    type State = TenantState;
    type Event = TenantEvent;

    fn apply(state: Option<&TenantState>, event: &TenantEvent) -> Result<Option<TenantState>, String> {
        match (state, event) {
            (None, TenantEvent::Added(tenant)) => Ok(Some(tenant.clone())),
            (Some(_), TenantEvent::Added(_)) => Err("the tenant exists already".into()),
            (Some(state), TenantEvent::Changed { name }) => {
                Ok(Some(TenantState { name: name.clone(), origin: state.origin }))
            }
            (Some(_), TenantEvent::Removed {}) => Ok(None),
            (None, _) => Err("the tenant does not exist".into()),
        }
    }

    fn removal(_: &TenantState) -> TenantEvent {
        TenantEvent::Removed {}
    }
}
