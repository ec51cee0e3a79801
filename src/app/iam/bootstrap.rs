//! The first administrator (A.6): on a store that has never bootstrapped, the user `admin`,
//! the team `admins` holding it (which the managed `administrator-access` policy names) and a
//! token acting as `admin` whose secret is the configured bootstrap token, or a generated one
//! that the server prints once. All of it, and the record that it happened, is one write whose
//! record is created only if absent, so replicas that start together on one empty database
//! bootstrap once and the others find it done. Only the first start's secret is ever stored,
//! as a digest.

use super::super::access::new_secret;
use super::super::{Actor, App, AppError};
use super::teams::ADMINS;
use super::users::ADMIN;
use crate::kinds::bootstrap::{BOOTSTRAP_ID, Bootstrap, BootstrapEvent, BootstrapState};
use crate::kinds::team::{Team, TeamEvent, TeamState};
use crate::kinds::token::{Token, TokenEvent, TokenState};
use crate::kinds::user::{User, UserEvent, UserState};

/// The id of the token the bootstrap makes.
pub const BOOTSTRAP_TOKEN: &str = "bootstrap";

/// What a start found or did.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrapped {
    /// This start bootstrapped; `generated` is the secret it made, to show once.
    Now { generated: Option<String> },
    /// An earlier start (or another replica) did; `ignored` when the configured secret is
    /// not the one stored then.
    Before { ignored: bool },
}

impl App {
    /// Bootstraps the instance unless it is already (see the module's comment).
    pub async fn bootstrap(&self, configured: Option<&str>) -> Result<Bootstrapped, AppError> {
        let done = self.objects()?.get::<Bootstrap>(BOOTSTRAP_ID);
        if let Some(done) = done {
            return Ok(Bootstrapped::Before { ignored: self.ignored(configured, &done.digest) });
        }
        let (secret, generated) = match configured {
            Some(secret) => (secret.to_owned(), false),
            None => (new_secret()?, true),
        };
        let digest = self.tokens.digest(&secret);
        let instance = self.instance.id.clone();
        let (made, _) = self
            .write(&Actor::system(), |draft| {
                if draft.get::<Bootstrap>(BOOTSTRAP_ID).is_some() {
                    return Ok(false);
                }
                if draft.get::<User>(ADMIN).is_none() {
                    let admin = UserState { name: "Administrator".into(), properties: Default::default() };
                    draft.create::<User>(ADMIN, &instance, UserEvent::Added(admin))?;
                }
                match draft.get::<Team>(ADMINS) {
                    Some(team) if !team.users.iter().any(|u| u == ADMIN) => {
                        draft.change(&team, TeamEvent::UsersAdded { users: vec![ADMIN.into()] })?;
                    }
                    Some(_) => {}
                    None => {
                        let team =
                            TeamState { name: "Administrators".into(), tenants: Vec::new(), users: vec![ADMIN.into()] };
                        draft.create::<Team>(ADMINS, &instance, TeamEvent::Added(team))?;
                    }
                }
                let token = TokenState {
                    name: "Bootstrap".into(),
                    digest: digest.clone(),
                    active: true,
                    tenants: Vec::new(),
                    user: ADMIN.into(),
                    expires_at: None,
                };
                if let Some(taken) = draft.get::<Token>(BOOTSTRAP_TOKEN) {
                    draft.delete(&taken, TokenEvent::Removed {})?;
                }
                draft.create::<Token>(BOOTSTRAP_TOKEN, &instance, TokenEvent::Added(token))?;
                let done = BootstrapState { token: BOOTSTRAP_TOKEN.into(), digest: digest.clone() };
                draft.create::<Bootstrap>(BOOTSTRAP_ID, &instance, BootstrapEvent::Done(done))?;
                Ok(true)
            })
            .await?;
        if made {
            return Ok(Bootstrapped::Now { generated: generated.then_some(secret) });
        }
        let done = self.objects()?.get::<Bootstrap>(BOOTSTRAP_ID);
        Ok(Bootstrapped::Before { ignored: done.is_some_and(|done| self.ignored(configured, &done.digest)) })
    }

    /// Whether a configured secret differs from the one the bootstrap stored.
    fn ignored(&self, configured: Option<&str>, stored: &str) -> bool {
        configured.is_some_and(|secret| self.tokens.digest(secret) != stored)
    }
}
