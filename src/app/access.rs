//! The front door's two questions, in domain terms. Who a request comes from: an API token,
//! found by the keyed digest of its secret (never compared in clear, never stored), active and
//! not expired; OIDC callers are verified by the server's verifier and arrive as an [`Actor`]
//! already. And whether that caller may do a method's action on its resource: the engine
//! decides, with the system statements, and answers the tenants the call may act in (§2.8),
//! which the tenant-scoped lists and reads of the IAM v2 surface then keep to.

use std::hash::BuildHasher;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use iamd_engine::{Context, Engine, Request, Tenants};
use sha2::Sha256;

use super::iam::{HeaderFilter, TenantFilter};
use super::{Actor, App, AppError, ErrorKind};
use crate::kinds::system::PROTECTION;
use crate::kinds::token::{DIGEST_INDEX, Token};
use crate::kinds::user::user_subject;
use crate::metrics::DecisionSource;

/// What the front door admitted a call as: who asks, and what it may see of tenant-scoped
/// objects. The server puts it into each admitted request for the handlers.
#[derive(Clone, Debug)]
pub struct Admitted {
    pub actor: Actor,
    pub tenants: TenantFilter,
}

/// How many admitted questions [`Decisions`] keeps; it starts over when full.
const MAX_DECISIONS: usize = 4096;

/// The front door's allowed decisions for one state of the objects, so a caller that repeats
/// a call (the common case: a client reading, a service checking) does not ask the engine
/// again. Every input of a decision is in its key and the state's change count stamps the
/// whole map: any change of any object, a write, a follower's event or a refresh, starts it
/// over, so an entry never outlives the state that decided it. Refusals are not kept.
#[derive(Default)]
pub(crate) struct Decisions {
    inner: RwLock<DecisionMap>,
    hasher: foldhash::fast::RandomState,
}

#[derive(Default)]
struct DecisionMap {
    /// The state (`Objects::changes`) every entry was decided on.
    state: u64,
    /// By the hash of the question; a hash shared by two questions holds both.
    entries: std::collections::HashMap<u64, Vec<(Asked, Arc<Tenants>)>, foldhash::fast::RandomState>,
    len: usize,
}

/// A question as the front door asks it, borrowed from the request.
struct Question<'a> {
    actor: &'a Actor,
    action: &'a str,
    resource: &'a str,
    header: &'a HeaderFilter,
}

/// A question kept, to tell it apart from another of the same hash.
struct Asked {
    actor: Actor,
    action: String,
    resource: String,
    header: HeaderFilter,
}

impl Asked {
    fn is(&self, question: &Question<'_>) -> bool {
        self.actor == *question.actor
            && self.action == question.action
            && self.resource == question.resource
            && self.header == *question.header
    }
}

impl Decisions {
    fn hash(&self, question: &Question<'_>) -> u64 {
        let Question { actor, action, resource, header } = question;
        self.hasher.hash_one((&actor.subject, &actor.teams, action, resource, header))
    }

    fn get(&self, state: u64, question: &Question<'_>) -> Option<Arc<Tenants>> {
        let map = self.inner.read().ok()?;
        if map.state != state {
            return None;
        }
        let entries = map.entries.get(&self.hash(question))?;
        entries.iter().find(|(asked, _)| asked.is(question)).map(|(_, tenants)| tenants.clone())
    }

    fn put(&self, state: u64, question: &Question<'_>, tenants: Arc<Tenants>) {
        let Ok(mut map) = self.inner.write() else { return };
        if map.state != state || map.len >= MAX_DECISIONS {
            map.entries.clear();
            map.len = 0;
            map.state = state;
        }
        let asked = Asked {
            actor: question.actor.clone(),
            action: question.action.to_owned(),
            resource: question.resource.to_owned(),
            header: question.header.clone(),
        };
        let hash = self.hash(question);
        map.entries.entry(hash).or_default().push((asked, tenants));
        map.len += 1;
    }
}

/// Bytes of a token secret, from the operating system's random source.
const SECRET_BYTES: usize = 32;

/// Turns token secrets into the digests the store indexes: HMAC-SHA256 under a key derived
/// from the instance key, so a digest read out of the store cannot be tested against guesses
/// (a bootstrap secret an operator chose may be guessable) without that key too.
pub(crate) struct TokenDigester {
    keyed: Hmac<Sha256>,
}

impl TokenDigester {
    pub(crate) fn new(instance_key: &[u8]) -> Result<TokenDigester, AppError> {
        let unusable = || AppError::new(ErrorKind::Internal, "INTERNAL", "the instance key is unusable for tokens");
        let mut derive = <Hmac<Sha256> as KeyInit>::new_from_slice(instance_key).map_err(|_| unusable())?;
        derive.update(b"iamd token digest v1");
        let key = derive.finalize().into_bytes();
        let keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).map_err(|_| unusable())?;
        Ok(TokenDigester { keyed })
    }

    /// The hex digest of a secret.
    pub(crate) fn digest(&self, secret: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(secret.as_bytes());
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(64);
        for byte in mac.finalize().into_bytes() {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        hex
    }
}

/// A new token secret: 32 random bytes, base64url without padding (43 characters).
pub(crate) fn new_secret() -> Result<String, AppError> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| {
        AppError::new(
            ErrorKind::Unavailable,
            "NO_RANDOMNESS",
            format!("the operating system's random source failed: {e}"),
        )
    })?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// UNAUTHENTICATED, with a reason the client can branch on; the message never repeats the
/// credential.
pub fn unauthenticated(reason: &'static str, message: impl Into<String>) -> AppError {
    AppError::new(ErrorKind::Unauthenticated, reason, message)
}

impl App {
    /// The caller an API token secret stands for: `token:<id>`, or the user it names.
    pub fn authenticate_token(&self, secret: &str, now: crate::store::Micros) -> Result<Actor, AppError> {
        let digest = self.tokens.digest(secret);
        let objects = self.objects()?;
        let token =
            objects.lookup(DIGEST_INDEX, &digest).next().and_then(|key| objects.get::<Token>(&key.id)).ok_or_else(
                || unauthenticated("TOKEN_UNKNOWN", "the token presented is not one iamd issued, or it was deleted"),
            )?;
        if !token.active {
            return Err(unauthenticated("TOKEN_INACTIVE", format!("the token `{}` is not active", token.id)));
        }
        if token.expires_at.is_some_and(|at| at <= now) {
            return Err(unauthenticated("TOKEN_EXPIRED", format!("the token `{}` has expired", token.id)));
        }
        let subject = match token.user.as_str() {
            "" => format!("token:{}", token.id),
            user => user_subject(user),
        };
        Ok(Actor { subject, teams: Vec::new() })
    }

    /// The log position of the state this replica decides by.
    pub fn position(&self) -> Result<u64, AppError> {
        Ok(self.objects()?.position())
    }

    /// Whether `actor` may do `action` on `resource`, in the tenants the `tenants` header
    /// asks for: PERMISSION_DENIED when it may not in any of them, else the filter the call's
    /// reads keep to.
    pub fn authorize(
        &self,
        actor: &Actor,
        action: &str,
        resource: &str,
        header: HeaderFilter,
    ) -> Result<TenantFilter, AppError> {
        let started = Instant::now();
        let objects = self.objects()?;
        let question = Question { actor, action, resource, header: &header };
        let state = objects.changes();
        let context = Context::new();
        let request = question_of(actor, action, resource, None, &context);
        if let Some(tenants) = self.decisions.get(state, &question) {
            self.decided(DecisionSource::Guard, &request, true, started);
            return Ok(TenantFilter::new(header, Some(tenants)));
        }
        let engine = objects.engine();
        let tenants = engine.tenants(&request);
        let allowed = match &header {
            HeaderFilter::All => tenants.any(),
            HeaderFilter::Only(only) => only.iter().any(|t| tenants.permits(t)),
        };
        self.decided(DecisionSource::Guard, &request, allowed, started);
        if allowed {
            let tenants = Arc::new(tenants);
            self.decisions.put(state, &question, tenants.clone());
            return Ok(TenantFilter::new(header, Some(tenants)));
        }
        // The protection of managed objects denies even their owners: say so.
        let decision = engine.check(&request);
        if decision.reasons.iter().any(|m| &*m.policy == PROTECTION) {
            return Err(AppError::new(
                ErrorKind::PermissionDenied,
                "MANAGED",
                format!("`{resource}` is managed by iamd: `{action}` is refused on it whoever asks"),
            ));
        }
        Err(denied(actor, action, resource))
    }
}

/// Whether `actor` may do `action` on `resource` within `tenant`: for rules a use case asks
/// about besides its method's own (assigning tenants, a token acting as a user), against the
/// engine of the state its write is planned on.
pub(crate) fn allowed(engine: &Engine, actor: &Actor, action: &str, resource: &str, tenant: Option<&str>) -> bool {
    let context = Context::new();
    engine.check(&question_of(actor, action, resource, tenant, &context)).allowed
}

/// The engine's question about one of iamd's own actions: no organization, no context.
fn question_of<'a>(
    actor: &'a Actor,
    action: &'a str,
    resource: &'a str,
    tenant: Option<&'a str>,
    context: &'a Context,
) -> Request<'a> {
    Request { subject: &actor.subject, teams: &actor.teams, action, resource, tenant, organization: None, context }
}

/// PERMISSION_DENIED unless `actor` may assign each tenant that `before` and `after` do not
/// share (`iam:tenants:assign` on `iam:tenants:<id>`, within that tenant). iamd's own writes
/// assign freely.
pub(crate) fn may_assign_tenants(
    engine: &Engine,
    actor: &Actor,
    before: &[String],
    after: &[String],
) -> Result<(), AppError> {
    if *actor == Actor::system() {
        return Ok(());
    }
    let changed = after.iter().filter(|t| !before.contains(t)).chain(before.iter().filter(|t| !after.contains(t)));
    for tenant in changed {
        let resource = format!("iam:tenants:{tenant}");
        if !allowed(engine, actor, "iam:tenants:assign", &resource, Some(tenant)) {
            return Err(denied(actor, "iam:tenants:assign", &resource));
        }
    }
    Ok(())
}

/// PERMISSION_DENIED unless `actor` may set a user's properties (`iam:userProperties:update`
/// on `iam:users:<id>`): conditions decide on them, so a user who may rename itself may not
/// give itself the properties a policy grants on. iamd's own writes set them freely.
pub(crate) fn may_set_properties(engine: &Engine, actor: &Actor, user: &str) -> Result<(), AppError> {
    let resource = format!("iam:users:{user}");
    if *actor == Actor::system() || allowed(engine, actor, USER_PROPERTIES_UPDATE, &resource, None) {
        return Ok(());
    }
    Err(denied(actor, USER_PROPERTIES_UPDATE, &resource))
}

/// The action that sets a user's properties, beside the method's own.
pub const USER_PROPERTIES_UPDATE: &str = "iam:userProperties:update";

/// PERMISSION_DENIED, saying which action on which resource.
pub(crate) fn denied(actor: &Actor, action: &str, resource: &str) -> AppError {
    AppError::new(
        ErrorKind::PermissionDenied,
        "PERMISSION_DENIED",
        format!("`{}` may not `{action}` on `{resource}`", actor.subject),
    )
}

/// The time now, as the store keeps it.
pub fn now() -> crate::store::Micros {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_43_characters_of_fresh_randomness_and_digests_are_keyed() {
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        let one = TokenDigester::new(&[1; 32]).unwrap();
        let other = TokenDigester::new(&[2; 32]).unwrap();
        assert_eq!(one.digest(&a), one.digest(&a));
        assert_ne!(one.digest(&a), one.digest(&b));
        assert_ne!(one.digest(&a), other.digest(&a));
        assert_eq!(one.digest(&a).len(), 64);
        assert!(!one.digest(&a).contains(&a));
    }
}
