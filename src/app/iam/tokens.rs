//! API tokens: create (answering the secret, the only time it exists outside the client),
//! list, read, change and delete. A token that names a user acts as that user, so naming one
//! needs `iam:users:tokens:create` on `iam:users:<id>` besides the method's own permission
//! (only `owner` has it by default), and the user never changes afterwards.

use super::super::access::{allowed, denied, may_assign_tenants, new_secret, now};
use super::super::organizations::missing_commit;
use super::super::{Actor, App, AppError, Receipt, changed_or_current, check_version};
use super::{
    MAX_ID, TenantFilter, absent, find, find_in, not_found, required, tenants_exist, valid_id, valid_own_tenants,
};
use crate::kinds::token::{Token, TokenEvent, TokenState};
use crate::kinds::user::User;
use crate::model::objects::Obj;
use crate::store::Micros;

/// A token as a client writes it.
#[derive(Clone, Debug, Default)]
pub struct TokenInput {
    pub id: String,
    pub name: String,
    /// `None`: active on create, unchanged on update.
    pub active: Option<bool>,
    pub tenants: Vec<String>,
    /// Empty: the token acts as itself (on update: whatever it acts as).
    pub user: String,
    /// `None`: no expiry on create, unchanged on update.
    pub expires_at: Option<Micros>,
}

/// A token just made, with its secret.
pub struct Issued {
    pub token: Obj<Token>,
    pub secret: String,
}

impl App {
    pub async fn create_token(&self, actor: &Actor, input: TokenInput) -> Result<Receipt<Issued>, AppError> {
        valid_id("id", "token id", &input.id, MAX_ID)?;
        valid_input(&input)?;
        if !input.user.is_empty()
            && let Some(message) = super::id_grammar(&input.user, MAX_ID)
        {
            return Err(AppError::invalid("userId", format!("user {message}")));
        }
        let secret = new_secret()?;
        let state = TokenState {
            name: input.name.clone(),
            digest: self.tokens.digest(&secret),
            active: input.active.unwrap_or(true),
            tenants: input.tenants.clone(),
            user: input.user.clone(),
            expires_at: input.expires_at,
        };
        let id = input.id.as_str();
        let instance = self.instance.id.clone();
        let ((), written) = self
            .write(actor, |draft| {
                absent::<Token>(draft, id)?;
                if !state.user.is_empty() {
                    let resource = format!("iam:users:{}", state.user);
                    if !allowed(draft.engine(), actor, "iam:users:tokens:create", &resource, None) {
                        return Err(denied(actor, "iam:users:tokens:create", &resource));
                    }
                    if draft.get::<User>(&state.user).is_none() {
                        return Err(not_found::<User>(&state.user).by_state());
                    }
                }
                may_assign_tenants(draft.engine(), actor, &[], &state.tenants)?;
                tenants_exist(draft, state.tenants.iter())?;
                Ok(draft.create::<Token>(id, &instance, TokenEvent::Added(state.clone()))?)
            })
            .await?;
        let token = written.get::<Token>(id).ok_or_else(missing_commit)?;
        Ok(Receipt::of(Issued { token, secret }, &written))
    }

    pub async fn list_tokens(&self, filter: &TenantFilter) -> Result<Vec<Obj<Token>>, AppError> {
        Ok(filter.list::<Token>(&*self.objects()?))
    }

    pub async fn token(&self, id: &str, filter: &TenantFilter) -> Result<Obj<Token>, AppError> {
        find::<Token>(&*self.objects()?, id, filter)
    }

    /// Overwrites the name and the tenants; `active` and the expiry change only when given.
    pub async fn update_token(
        &self,
        actor: &Actor,
        input: TokenInput,
        filter: &TenantFilter,
        expected: Option<u64>,
    ) -> Result<Receipt<Obj<Token>>, AppError> {
        valid_input(&input)?;
        let id = input.id.as_str();
        let (unchanged, written) = self
            .write(actor, |draft| {
                let current = find_in::<Token>(draft, id, filter)?;
                check_version(expected, &current.meta, "token")?;
                if !input.user.is_empty() && input.user != current.user {
                    return Err(AppError::invalid(
                        "userId",
                        format!("the token `{id}` acts as `{}`: a token's user cannot change", current.user),
                    ));
                }
                may_assign_tenants(draft.engine(), actor, &current.tenants, &input.tenants)?;
                tenants_exist(draft, input.tenants.iter())?;
                let event = TokenEvent::Changed {
                    name: (current.name != input.name).then(|| input.name.clone()),
                    active: input.active.filter(|a| *a != current.active),
                    tenants: (current.tenants != input.tenants).then(|| input.tenants.clone()),
                    expires_at: input.expires_at.filter(|at| Some(*at) != current.expires_at),
                };
                if event == (TokenEvent::Changed { name: None, active: None, tenants: None, expires_at: None }) {
                    return Ok(Some(current));
                }
                draft.change(&current, event)?;
                Ok(None)
            })
            .await?;
        changed_or_current(unchanged, &written, id)
    }

    pub async fn delete_token(
        &self,
        actor: &Actor,
        id: &str,
        filter: &TenantFilter,
        expected: Option<u64>,
    ) -> Result<Receipt<()>, AppError> {
        self.delete_shown::<Token>(actor, id, filter, expected, |_| Ok(())).await
    }
}

/// What create and update both check: a name, tenants, and an expiry yet to come.
fn valid_input(input: &TokenInput) -> Result<(), AppError> {
    required("name", "token name", &input.name)?;
    valid_own_tenants("tenants", &input.tenants)?;
    if input.expires_at.is_some_and(|at| at <= now()) {
        return Err(AppError::invalid("expiresAt", "a token's expiry must lie in the future"));
    }
    Ok(())
}
