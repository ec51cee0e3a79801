//! API tokens (Chef Automate's): secrets a client sends as `Authorization: Bearer <value>`.
//! The state holds only a keyed digest of the value, found through the digest index, so the
//! value is never stored. A token that names a user acts as that user and goes with it (a
//! reference that cascades); its tenants are references too.

use serde::{Deserialize, Serialize};

use super::tenant::{Tenant, tenant_terms};
use super::user::User;
use crate::model::kind::{Key, Kind, OnDelete, Term};
use crate::store::Micros;

/// The lookup index of token digests.
pub const DIGEST_INDEX: &str = "token_digest";

/// Every token, under one value: the tokens in id order, for searches a wildcard reaches.
pub const ORDER_INDEX: &str = "token_order";

pub struct Token;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenState {
    pub name: String,
    /// The hex HMAC-SHA256 of the value under the instance's token key.
    pub digest: String,
    pub active: bool,
    #[serde(default)]
    pub tenants: Vec<String>,
    /// The user it acts as; empty when it acts as itself.
    #[serde(default)]
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Micros>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum TokenEvent {
    #[serde(rename = "iam.token.added")]
    Added(TokenState),
    /// Only the fields that changed.
    #[serde(rename = "iam.token.changed")]
    Changed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        active: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenants: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<Micros>,
    },
    /// A deleted tenant left the token's list.
    #[serde(rename = "iam.token.tenant.removed")]
    TenantRemoved { tenant: String },
    #[serde(rename = "iam.token.removed")]
    Removed {},
}

impl Kind for Token {
    const NAME: &'static str = "token";
    const HIDDEN_FIELDS: &'static [&'static str] = &["digest"];
    type State = TokenState;
    type Event = TokenEvent;

    fn apply(state: Option<&TokenState>, event: &TokenEvent) -> Result<Option<TokenState>, String> {
        use TokenEvent::*;
        match (state, event) {
            (None, Added(token)) => Ok(Some(token.clone())),
            (Some(_), Added(_)) => Err("the token exists already".into()),
            (None, _) => Err("the token does not exist".into()),
            (Some(state), Changed { name, active, tenants, expires_at }) => {
                let mut next = state.clone();
                if let Some(name) = name {
                    next.name = name.clone();
                }
                if let Some(active) = active {
                    next.active = *active;
                }
                if let Some(tenants) = tenants {
                    next.tenants = tenants.clone();
                }
                if expires_at.is_some() {
                    next.expires_at = *expires_at;
                }
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

    fn removal(_: &TokenState) -> TokenEvent {
        TokenEvent::Removed {}
    }

    fn references(state: &TokenState) -> Vec<Key> {
        let tenants = state.tenants.iter().map(|t| Key::new(Tenant::NAME, &**t));
        let user = (!state.user.is_empty()).then(|| Key::new(User::NAME, &*state.user));
        tenants.chain(user).collect()
    }

    fn terms(state: &TokenState) -> Vec<Term> {
        let mut terms = tenant_terms(&state.tenants);
        terms.push(Term::new(DIGEST_INDEX, &*state.digest));
        terms.push(Term::new(ORDER_INDEX, ""));
        terms
    }

    fn on_delete(_: &TokenState, target: &'static str) -> OnDelete {
        match target {
            Tenant::NAME => OnDelete::Detach,
            User::NAME => OnDelete::Cascade,
            _ => OnDelete::Restrict,
        }
    }

    fn detach(_: &TokenState, target: &Key) -> Option<TokenEvent> {
        (target.kind == Tenant::NAME).then(|| TokenEvent::TenantRemoved { tenant: target.id.to_string() })
    }
}
