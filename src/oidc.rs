//! OIDC bearer tokens: verifies the JWTs (ID or access tokens) of one identity provider
//! against its published keys (a JWKS) and names the principals they carry.
//!
//! `Authorization: Bearer <jwt>` → [`Verifier::looks_like_jwt`] routes it here →
//! [`Verifier::verify`]: header (only RS256, ES256 and EdDSA, before any key is touched) →
//! key by `kid` (an unknown one reads the JWKS again, at most once per
//! [`DEFAULT_MIN_REFETCH_INTERVAL`]) → signature → claims (`exp`/`nbf` with
//! [`LEEWAY_SECS`], `iss`, `aud`, `sub`, the groups claim) → [`OidcIdentity`].
//!
//! Limitations: the JWKS is read at start and on an unknown `kid` only, so a key the
//! provider withdraws stays trusted until iamd restarts; `jku`, `x5u` and `x5c` headers are
//! ignored (a token never chooses where its key comes from).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::time::Instant;

/// The claim that lists a user's groups unless `--oidc-groups-claim` names another.
pub const DEFAULT_GROUPS_CLAIM: &str = "groups";
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: i64 = 60;
/// The shortest time between two reads of the JWKS caused by unknown `kid`s.
pub const DEFAULT_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// Bounds one read of a JWKS URL, from connecting to the last byte of the body.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A real JWKS is a few KiB; anything near this is not one.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
const MIN_RSA_MODULUS_BITS: usize = 2048;
const MAX_RSA_MODULUS_BITS: usize = 4096;
const NO_CRYPTO_PROVIDER: &str = "jsonwebtoken has no crypto provider: this build enables none or both of its `rust_crypto` and `aws_lc_rs` features";
const ALGORITHMS_ACCEPTED: &str = "only RS256, ES256 and EdDSA tokens are accepted";

/// Settings, from flags --oidc-issuer, --oidc-audience, --oidc-jwks, --oidc-groups-claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcSettings {
    /// The `iss` every token must carry, compared exactly (no trailing-slash folding).
    pub issuer: String,
    /// A value the token's `aud` (a string or an array) must contain exactly.
    pub audience: String,
    /// A file path, or an `https://` URL (`http://` only on a loopback host).
    pub jwks: String,
    /// The top-level claim holding the user's groups, an array of strings.
    pub groups_claim: String,
}

impl OidcSettings {
    /// Settings with the default groups claim.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, jwks: impl Into<String>) -> Self {
        OidcSettings {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks: jwks.into(),
            groups_claim: DEFAULT_GROUPS_CLAIM.to_owned(),
        }
    }
}

/// Who a verified token speaks for, as iamd names principals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcIdentity {
    /// `user:oidc:<sub>`, with `%`, `:`, `*` and whitespace of `sub` percent-encoded.
    pub subject: String,
    /// `team:oidc:<group>` for each group of the groups claim, encoded like `subject`.
    pub teams: Vec<String>,
    /// The token's `exp`, in seconds since the epoch.
    pub expires_at: Option<i64>,
}

/// Why a token or the settings were refused. Messages never quote the token or its claims:
/// they end up in logs and in answers to whoever sent the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token is not meant for this service: its audience does not include it")]
    BadAudience,
    #[error("the token was not issued by the configured issuer")]
    BadIssuer,
    /// Which rule the algorithm broke: not accepted at all, or not the named key's.
    #[error("{0}")]
    BadAlgorithm(&'static str),
    #[error("the token's signing key is not in the issuer's key set")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    BadSignature,
    /// What is wrong, in iamd's words: never a value taken from the token.
    #[error("the token is malformed: {0}")]
    Malformed(String),
    #[error("the issuer's key set is unavailable: {0}")]
    JwksUnavailable(String),
    #[error("invalid OIDC settings: {0}")]
    BadSettings(String),
}

impl OidcError {
    /// Stable, UPPER_SNAKE: callers and logs branch on it, so it never changes once shipped.
    pub fn reason(&self) -> &'static str {
        match self {
            OidcError::Expired => "EXPIRED",
            OidcError::NotYetValid => "NOT_YET_VALID",
            OidcError::BadAudience => "BAD_AUDIENCE",
            OidcError::BadIssuer => "BAD_ISSUER",
            OidcError::BadAlgorithm(_) => "BAD_ALGORITHM",
            OidcError::UnknownKey => "UNKNOWN_KEY",
            OidcError::BadSignature => "BAD_SIGNATURE",
            OidcError::Malformed(_) => "MALFORMED",
            OidcError::JwksUnavailable(_) => "JWKS_UNAVAILABLE",
            OidcError::BadSettings(_) => "BAD_SETTINGS",
        }
    }

    fn malformed(message: impl Into<String>) -> Self {
        OidcError::Malformed(message.into())
    }
}

/// Verifies the tokens of one issuer. Cloning is cheap: clones share the keys and the
/// refetch limit.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
    min_refetch_interval: Duration,
}

struct Inner {
    issuer: String,
    audience: String,
    groups_claim: String,
    source: Source,
    keys: RwLock<Arc<KeySet>>,
    /// When an unknown `kid` last made us read the JWKS. Held across the read, so that
    /// concurrent unknown kids wait for one read instead of starting their own.
    last_refetch: tokio::sync::Mutex<Option<Instant>>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .field("jwks", &self.inner.source)
            .field("keys", &self.current().keys.len())
            .finish()
    }
}

impl Verifier {
    /// Loads the JWKS once: a start with an unreadable or invalid JWKS, or with none of its
    /// keys usable, is an error rather than a server that refuses every token.
    pub async fn new(settings: OidcSettings) -> Result<Verifier, OidcError> {
        let OidcSettings { issuer, audience, jwks, groups_claim } = settings;
        for (flag, value) in [("issuer", &issuer), ("audience", &audience), ("groups claim", &groups_claim)] {
            if value.is_empty() {
                return Err(OidcError::BadSettings(format!("the {flag} is empty")));
            }
        }
        // jsonwebtoken panics on a token when it has no provider; say so at start instead.
        if CryptoProvider::try_get_default().is_none() {
            return Err(OidcError::BadSettings(NO_CRYPTO_PROVIDER.to_owned()));
        }
        let source = Source::parse(&jwks)?;
        let keys = source.load().await?;
        tracing::info!(jwks = %source, keys = keys.keys.len(), "loaded the OIDC key set");
        Ok(Verifier {
            inner: Arc::new(Inner {
                issuer,
                audience,
                groups_claim,
                source,
                keys: RwLock::new(Arc::new(keys)),
                last_refetch: tokio::sync::Mutex::new(None),
            }),
            min_refetch_interval: DEFAULT_MIN_REFETCH_INTERVAL,
        })
    }

    /// The same verifier with another shortest time between refetches (tests, mostly).
    pub fn with_min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
    }

    /// Cheap test used to route credentials: three base64url segments separated by dots,
    /// whose first decodes as a JSON object with an `alg`. Signs nothing and trusts nothing;
    /// an unsigned `alg: none` token passes, so that [`Verifier::verify`] refuses it by name.
    pub fn looks_like_jwt(token: &str) -> bool {
        let mut segments = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (segments.next(), segments.next(), segments.next(), segments.next())
        else {
            return false;
        };
        let base64url = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        !header.is_empty()
            && !payload.is_empty()
            && [header, payload, signature].into_iter().all(base64url)
            && decode_header(header).is_ok_and(|h| h.get("alg").is_some_and(Value::is_string))
    }

    /// The identity a valid token carries, or why it is refused (see [`OidcError::reason`]).
    /// Reads the JWKS again only for an unknown `kid` of an accepted algorithm.
    pub async fn verify(&self, token: &str) -> Result<OidcIdentity, OidcError> {
        let header = TokenHeader::parse(token)?;
        let mut keys = self.current();
        if matches!(keys.find(&header), Err(OidcError::UnknownKey)) {
            keys = self.refetch(&keys).await;
        }
        let key = keys.find(&header)?;
        let claims = check_signature(token, key)?;
        identity(&self.inner, &claims, chrono::Utc::now().timestamp())
    }

    fn current(&self) -> Arc<KeySet> {
        // The lock only guards swapping an Arc, so a poisoned one still holds a whole set.
        self.inner.keys.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Reads the JWKS again for an unknown `kid`, unless a read finished while this call
    /// waited for its turn or the last one is too recent; an attacker's random kids must not
    /// turn iamd into a load generator against the provider.
    async fn refetch(&self, seen: &Arc<KeySet>) -> Arc<KeySet> {
        let mut last = self.inner.last_refetch.lock().await;
        let current = self.current();
        if !Arc::ptr_eq(&current, seen) {
            return current;
        }
        if last.is_some_and(|at| at.elapsed() < self.min_refetch_interval) {
            return current;
        }
        *last = Some(Instant::now());
        match self.inner.source.load().await {
            Ok(keys) => {
                tracing::info!(jwks = %self.inner.source, keys = keys.keys.len(), "reloaded the OIDC key set");
                let keys = Arc::new(keys);
                *self.inner.keys.write().unwrap_or_else(PoisonError::into_inner) = keys.clone();
                keys
            }
            Err(e) => {
                tracing::warn!(jwks = %self.inner.source, error = %e, "reloading the OIDC key set failed; keeping the old keys");
                current
            }
        }
    }
}

/// The fields of a JOSE header iamd reads. Parsed here, not by jsonwebtoken, so that an
/// `alg` it has no variant for (`none`) is refused as an algorithm, not as garbage.
struct TokenHeader {
    kind: KeyKind,
    kid: Option<String>,
}

impl TokenHeader {
    fn parse(token: &str) -> Result<TokenHeader, OidcError> {
        let mut segments = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (segments.next(), segments.next(), segments.next(), segments.next())
        else {
            return Err(OidcError::malformed("not three dot-separated segments"));
        };
        let header = decode_header(header)?;
        let kind = match header.get("alg") {
            Some(Value::String(alg)) => KeyKind::for_alg(alg).ok_or(OidcError::BadAlgorithm(ALGORITHMS_ACCEPTED))?,
            Some(_) => return Err(OidcError::malformed("the header's `alg` is not a string")),
            None => return Err(OidcError::malformed("the header has no `alg`")),
        };
        let kid = match header.get("kid") {
            Some(Value::String(kid)) => Some(kid.clone()),
            None => None,
            Some(_) => return Err(OidcError::malformed("the header's `kid` is not a string")),
        };
        Ok(TokenHeader { kind, kid })
    }
}

fn decode_header(segment: &str) -> Result<Map<String, Value>, OidcError> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| OidcError::malformed("the header is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| OidcError::malformed("the header is not a JSON object"))
}

/// The key types iamd verifies with, one algorithm each: a key never verifies a token of
/// another family, whatever its header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    EcP256,
    Ed25519,
}

impl KeyKind {
    fn for_alg(alg: &str) -> Option<KeyKind> {
        match alg {
            "RS256" => Some(KeyKind::Rsa),
            "ES256" => Some(KeyKind::EcP256),
            "EdDSA" => Some(KeyKind::Ed25519),
            _ => None,
        }
    }

    fn alg(self) -> &'static str {
        match self {
            KeyKind::Rsa => "RS256",
            KeyKind::EcP256 => "ES256",
            KeyKind::Ed25519 => "EdDSA",
        }
    }

    fn algorithm(self) -> Algorithm {
        match self {
            KeyKind::Rsa => Algorithm::RS256,
            KeyKind::EcP256 => Algorithm::ES256,
            KeyKind::Ed25519 => Algorithm::EdDSA,
        }
    }
}

struct Key {
    kid: Option<String>,
    kind: KeyKind,
    decoding: DecodingKey,
}

/// The usable signing keys of one read of the JWKS.
struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    /// Keys iamd cannot use (encryption keys, other curves, `oct`) are skipped, and so is a
    /// broken one, with a warning: one odd key must not hide the provider's others.
    fn parse(bytes: &[u8]) -> Result<KeySet, String> {
        #[derive(Deserialize)]
        struct RawSet {
            keys: Vec<Value>,
        }
        let raw: RawSet = serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS ({e})"))?;
        let mut keys = Vec::new();
        for (i, value) in raw.keys.into_iter().enumerate() {
            match serde_json::from_value::<RawKey>(value).map_err(|e| e.to_string()).and_then(RawKey::into_key) {
                Ok(Some(key)) => keys.push(key),
                Ok(None) => {}
                Err(e) => tracing::warn!(index = i, error = %e, "skipping a key of the OIDC key set"),
            }
        }
        if keys.is_empty() {
            return Err("it holds no RS256, ES256 or EdDSA signing key".to_owned());
        }
        Ok(KeySet { keys })
    }

    fn find(&self, header: &TokenHeader) -> Result<&Key, OidcError> {
        let fits = |key: &&Key| key.kind == header.kind;
        match &header.kid {
            Some(kid) => {
                let mut named = self.keys.iter().filter(|key| key.kid.as_deref() == Some(kid)).peekable();
                if named.peek().is_none() {
                    return Err(OidcError::UnknownKey);
                }
                named.find(fits).ok_or(OidcError::BadAlgorithm("the token's algorithm does not fit its key's type"))
            }
            // Without a kid, only an unambiguous key will do.
            None => {
                let mut fitting = self.keys.iter().filter(fits);
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => Ok(key),
                    _ => Err(OidcError::UnknownKey),
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct RawKey {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    key_use: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

fn b64_field(kind: KeyKind, name: &str, value: &Option<String>) -> Result<Vec<u8>, String> {
    let value = value.as_deref().ok_or_else(|| format!("a {} key without `{name}`", kind.alg()))?;
    URL_SAFE_NO_PAD.decode(value).map_err(|_| format!("`{name}` of a {} key is not base64url", kind.alg()))
}

impl RawKey {
    /// `Ok(None)` for a key iamd does not verify with, `Err` for a broken one.
    fn into_key(self) -> Result<Option<Key>, String> {
        if self.key_use.as_deref().is_some_and(|u| u != "sig") {
            return Ok(None);
        }
        let kind = match (self.kty.as_str(), self.crv.as_deref()) {
            ("RSA", _) => KeyKind::Rsa,
            ("EC", Some("P-256")) => KeyKind::EcP256,
            ("OKP", Some("Ed25519")) => KeyKind::Ed25519,
            _ => return Ok(None),
        };
        // A key pinned to another algorithm (RS512, PS256…) is one iamd refuses anyway.
        if self.alg.as_deref().is_some_and(|alg| alg != kind.alg()) {
            return Ok(None);
        }
        let decoding = match kind {
            KeyKind::Rsa => {
                let (n, e) = (b64_field(kind, "n", &self.n)?, b64_field(kind, "e", &self.e)?);
                let n_bits = match n.iter().position(|b| *b != 0) {
                    Some(first) => (n.len() - first) * 8 - n.get(first).map_or(0, |b| b.leading_zeros() as usize),
                    None => 0,
                };
                // The RSA verifier refuses moduli past 4096 bits at every token: say so once.
                if !(MIN_RSA_MODULUS_BITS..=MAX_RSA_MODULUS_BITS).contains(&n_bits) {
                    return Err(format!(
                        "an RSA key of {n_bits} bits, outside {MIN_RSA_MODULUS_BITS}..={MAX_RSA_MODULUS_BITS}"
                    ));
                }
                DecodingKey::from_rsa_raw_components(&n, &e)
            }
            KeyKind::EcP256 => {
                let (x, y) = (b64_field(kind, "x", &self.x)?, b64_field(kind, "y", &self.y)?);
                if x.len() != 32 || y.len() != 32 {
                    return Err("a P-256 coordinate that is not 32 bytes".to_owned());
                }
                // An uncompressed SEC1 point, as jsonwebtoken's own `from_ec_components` builds it.
                DecodingKey::from_ec_der(&[&[0x04][..], &x, &y].concat())
            }
            KeyKind::Ed25519 => {
                let x = b64_field(kind, "x", &self.x)?;
                // jsonwebtoken slices the first 32 bytes of an Ed25519 key: a shorter one
                // would panic there at the first token.
                if x.len() != 32 {
                    return Err("an Ed25519 key that is not 32 bytes".to_owned());
                }
                DecodingKey::from_ed_der(&x)
            }
        };
        // Builds the verifier once now, so that a point off its curve is a skipped key at
        // load rather than a BAD_SIGNATURE on every token.
        let provider = CryptoProvider::try_get_default().ok_or(NO_CRYPTO_PROVIDER)?;
        (provider.verifier_factory)(&kind.algorithm(), &decoding)
            .map_err(|_| format!("an invalid {} key", kind.alg()))?;
        Ok(Some(Key { kid: self.kid, kind, decoding }))
    }
}

/// Checks the signature only; the claims are checked by [`identity`], with iamd's own
/// rules (an `iss` that is exactly one string, a required `sub`), which are stricter than
/// jsonwebtoken's defaults.
fn check_signature(token: &str, key: &Key) -> Result<Map<String, Value>, OidcError> {
    let mut validation = Validation::new(key.kind.algorithm());
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    match jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation) {
        Ok(data) => Ok(data.claims),
        Err(e) => Err(match e.kind() {
            JwtErrorKind::InvalidSignature
            | JwtErrorKind::InvalidEcdsaKey
            | JwtErrorKind::InvalidEddsaKey
            | JwtErrorKind::InvalidRsaKey(_) => OidcError::BadSignature,
            JwtErrorKind::InvalidAlgorithm
            | JwtErrorKind::InvalidAlgorithmName
            | JwtErrorKind::UnsupportedAlgorithm => OidcError::BadAlgorithm(ALGORITHMS_ACCEPTED),
            // The library's own text may quote the token (serde's does), so none is passed on.
            _ => OidcError::malformed("the token does not decode as a signed JWT with a JSON object of claims"),
        }),
    }
}

fn identity(inner: &Inner, claims: &Map<String, Value>, now: i64) -> Result<OidcIdentity, OidcError> {
    let exp = match claims.get("exp") {
        Some(value) => numeric_date(value).ok_or_else(|| OidcError::malformed("`exp` is not a number"))?,
        None => return Err(OidcError::malformed("the token has no `exp`")),
    };
    if now > exp.saturating_add(LEEWAY_SECS) {
        return Err(OidcError::Expired);
    }
    if let Some(value) = claims.get("nbf") {
        let nbf = numeric_date(value).ok_or_else(|| OidcError::malformed("`nbf` is not a number"))?;
        if nbf > now.saturating_add(LEEWAY_SECS) {
            return Err(OidcError::NotYetValid);
        }
    }
    if claims.get("iss").and_then(Value::as_str) != Some(inner.issuer.as_str()) {
        return Err(OidcError::BadIssuer);
    }
    let for_us = match claims.get("aud") {
        Some(Value::String(aud)) => *aud == inner.audience,
        Some(Value::Array(auds)) if auds.iter().all(Value::is_string) => {
            auds.iter().any(|aud| aud.as_str() == Some(inner.audience.as_str()))
        }
        Some(_) => return Err(OidcError::malformed("`aud` is neither a string nor an array of strings")),
        None => false,
    };
    if !for_us {
        return Err(OidcError::BadAudience);
    }
    let sub = match claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() => sub,
        Some(Value::String(_)) | None => return Err(OidcError::malformed("the token has no `sub`")),
        Some(_) => return Err(OidcError::malformed("`sub` is not a string")),
    };
    let mut teams: Vec<String> = Vec::new();
    match claims.get(&inner.groups_claim) {
        None => {}
        Some(Value::Array(groups)) => {
            for group in groups {
                let group = group.as_str().ok_or_else(|| not_groups(&inner.groups_claim))?;
                // An empty name grants nothing and names no team; refusing the token for it
                // would lock the user out over the provider's oddity.
                if group.is_empty() {
                    continue;
                }
                let team = format!("team:oidc:{}", escape(group));
                if !teams.contains(&team) {
                    teams.push(team);
                }
            }
        }
        Some(_) => return Err(not_groups(&inner.groups_claim)),
    }
    Ok(OidcIdentity { subject: format!("user:oidc:{}", escape(sub)), teams, expires_at: Some(exp) })
}

fn not_groups(claim: &str) -> OidcError {
    OidcError::malformed(format!("the `{claim}` claim is not an array of strings"))
}

/// A NumericDate may have a fraction (RFC 7519 §2); seconds are enough here.
fn numeric_date(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| value.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

/// Percent-encodes what would change the meaning of a principal name: `:` separates its
/// parts, `*` is a wildcard, `%` escapes, and whitespace splits lists in flags and logs.
fn escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, '%' | ':' | '*') || c.is_whitespace() {
            let mut utf8 = [0; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Where the JWKS is read from.
enum Source {
    File(PathBuf),
    Url { url: reqwest::Url, client: reqwest::Client },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Url { url, .. } => write!(f, "{url}"),
        }
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl Source {
    fn parse(jwks: &str) -> Result<Source, OidcError> {
        let lower = jwks.to_ascii_lowercase();
        if !lower.starts_with("https://") && !lower.starts_with("http://") {
            if jwks.contains("://") {
                return Err(OidcError::BadSettings(format!(
                    "the JWKS `{jwks}` is neither a file path nor an http(s) URL"
                )));
            }
            if jwks.is_empty() {
                return Err(OidcError::BadSettings("the JWKS is empty".to_owned()));
            }
            return Ok(Source::File(PathBuf::from(jwks)));
        }
        let url = reqwest::Url::parse(jwks)
            .map_err(|e| OidcError::BadSettings(format!("the JWKS URL `{jwks}` is invalid: {e}")))?;
        if !url_allowed(&url) {
            return Err(OidcError::BadSettings(format!(
                "the JWKS URL `{jwks}` must be https (http is allowed only on a loopback host)"
            )));
        }
        let mut client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .user_agent(concat!("iamd/", env!("CARGO_PKG_VERSION")))
            // A redirect must not lead the keys over plain http.
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                if attempt.previous().len() >= 5 {
                    attempt.error("too many redirects")
                } else if url_allowed(attempt.url()) {
                    attempt.follow()
                } else {
                    attempt.error("a redirect to a URL that is not https")
                }
            }));
        // A proxy would reach its own loopback, not ours.
        if is_loopback(&url) {
            client = client.no_proxy();
        }
        let client =
            client.build().map_err(|e| OidcError::JwksUnavailable(format!("cannot build the HTTP client: {e}")))?;
        Ok(Source::Url { url, client })
    }

    async fn load(&self) -> Result<KeySet, OidcError> {
        let bytes = match self {
            Source::File(path) => read_file(path.clone()).await,
            Source::Url { url, client } => fetch(client, url).await,
        }
        .map_err(|e| OidcError::JwksUnavailable(format!("{self}: {e}")))?;
        KeySet::parse(&bytes).map_err(|e| OidcError::JwksUnavailable(format!("{self}: {e}")))
    }
}

fn url_allowed(url: &reqwest::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => is_loopback(url),
        _ => false,
    }
}

/// 127.0.0.0/8, ::1 and `localhost`: traffic that never leaves the machine.
fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

async fn read_file(path: PathBuf) -> Result<Vec<u8>, String> {
    let read = tokio::task::spawn_blocking(move || {
        use std::io::Read as _;
        let mut bytes = Vec::new();
        std::fs::File::open(&path)?.take(MAX_JWKS_BYTES as u64 + 1).read_to_end(&mut bytes)?;
        Ok::<_, std::io::Error>(bytes)
    });
    let bytes = read.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    if bytes.len() > MAX_JWKS_BYTES {
        return Err("larger than 1 MiB".to_owned());
    }
    Ok(bytes)
}

async fn fetch(client: &reqwest::Client, url: &reqwest::Url) -> Result<Vec<u8>, String> {
    let mut response = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    if response.content_length().is_some_and(|len| len > MAX_JWKS_BYTES as u64) {
        return Err("larger than 1 MiB".to_owned());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err("larger than 1 MiB".to_owned());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// reqwest's own message is only the outermost layer ("error sending request"); the cause
/// (refused, timed out, bad certificate) is what an operator needs.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test panics")]
mod tests {
    use std::convert::Infallible;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::rt::TokioIo;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    const RSA_PEM: &[u8] = include_bytes!("../tests/fixtures/oidc/rsa.pem");
    const RSA_PUBLIC_PEM: &[u8] = include_bytes!("../tests/fixtures/oidc/rsa.pub.pem");
    const EC_PEM: &[u8] = include_bytes!("../tests/fixtures/oidc/ec.pem");
    const ED_PEM: &[u8] = include_bytes!("../tests/fixtures/oidc/ed25519.pem");
    const JWKS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/oidc/jwks.json");
    const ISSUER: &str = "https://idp.example.com";
    const AUDIENCE: &str = "iamd";

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn settings(jwks: &str) -> OidcSettings {
        OidcSettings::new(ISSUER, AUDIENCE, jwks)
    }

    async fn verifier() -> Verifier {
        Verifier::new(settings(JWKS_PATH)).await.unwrap()
    }

    fn claims() -> Value {
        json!({ "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now(), "exp": now() + 300 })
    }

    fn with(mut claims: Value, name: &str, value: Value) -> Value {
        claims.as_object_mut().unwrap().insert(name.to_owned(), value);
        claims
    }

    fn without(mut claims: Value, name: &str) -> Value {
        claims.as_object_mut().unwrap().remove(name);
        claims
    }

    fn sign(alg: Algorithm, kid: &str, claims: &Value) -> String {
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(RSA_PEM),
            Algorithm::ES256 => EncodingKey::from_ec_pem(EC_PEM),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(ED_PEM),
            _ => panic!("no fixture key for {alg:?}"),
        }
        .unwrap();
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }

    /// A token put together by hand, for headers no honest library writes.
    fn craft(header: &Value, claims: &Value, signature: &[u8]) -> String {
        let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
        format!("{}.{}.{}", part(header), part(claims), URL_SAFE_NO_PAD.encode(signature))
    }

    async fn reason(verifier: &Verifier, token: &str) -> &'static str {
        let error = verifier.verify(token).await.unwrap_err();
        assert!(token.is_empty() || !error.to_string().contains(token), "{error}");
        error.reason()
    }

    fn fixture_jwks() -> Value {
        serde_json::from_str(&std::fs::read_to_string(JWKS_PATH).unwrap()).unwrap()
    }

    /// The fixture JWKS with only the keys whose kid passes `keep`.
    fn jwks_with(keep: impl Fn(&str) -> bool) -> String {
        let mut jwks = fixture_jwks();
        jwks["keys"].as_array_mut().unwrap().retain(|key| keep(key["kid"].as_str().unwrap()));
        jwks.to_string()
    }

    /// A loopback HTTP server that serves whatever JWKS (and status) the test sets, and
    /// counts the requests it answers.
    struct JwksServer {
        url: String,
        hits: Arc<AtomicUsize>,
        answer: Arc<Mutex<(u16, String)>>,
    }

    impl JwksServer {
        async fn start(body: String) -> JwksServer {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
            let hits = Arc::new(AtomicUsize::new(0));
            let answer = Arc::new(Mutex::new((200, body)));
            let (served_hits, served_answer) = (hits.clone(), answer.clone());
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (hits, answer) = (served_hits.clone(), served_answer.clone());
                    let service = hyper::service::service_fn(move |_request| {
                        hits.fetch_add(1, Ordering::SeqCst);
                        let (status, body) = answer.lock().unwrap().clone();
                        let response = hyper::Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body)))
                            .unwrap();
                        async move { Ok::<_, Infallible>(response) }
                    });
                    tokio::spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
            JwksServer { url, hits, answer }
        }

        fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }

        fn answer(&self, status: u16, body: String) {
            *self.answer.lock().unwrap() = (status, body);
        }
    }

    #[tokio::test]
    async fn valid_rs256_es256_and_eddsa_tokens_verify() {
        let verifier = verifier().await;
        for (alg, kid) in [(Algorithm::RS256, "rsa-1"), (Algorithm::ES256, "ec-1"), (Algorithm::EdDSA, "ed-1")] {
            let exp = now() + 300;
            let token = sign(alg, kid, &with(claims(), "exp", json!(exp)));
            assert!(Verifier::looks_like_jwt(&token));
            let identity = verifier.verify(&token).await.unwrap();
            assert_eq!(
                identity,
                OidcIdentity { subject: "user:oidc:alice".into(), teams: vec![], expires_at: Some(exp) },
                "{alg:?}"
            );
        }
    }

    #[tokio::test]
    async fn expiry_has_sixty_seconds_of_leeway() {
        let verifier = verifier().await;
        let within = sign(Algorithm::RS256, "rsa-1", &with(claims(), "exp", json!(now() - 30)));
        assert!(verifier.verify(&within).await.is_ok());
        let beyond = sign(Algorithm::RS256, "rsa-1", &with(claims(), "exp", json!(now() - 120)));
        assert_eq!(reason(&verifier, &beyond).await, "EXPIRED");
        let missing = sign(Algorithm::RS256, "rsa-1", &without(claims(), "exp"));
        assert_eq!(reason(&verifier, &missing).await, "MALFORMED");
        let text = sign(Algorithm::RS256, "rsa-1", &with(claims(), "exp", json!("tomorrow")));
        assert_eq!(reason(&verifier, &text).await, "MALFORMED");
    }

    #[tokio::test]
    async fn not_before_is_honoured_with_the_same_leeway() {
        let verifier = verifier().await;
        let within = sign(Algorithm::ES256, "ec-1", &with(claims(), "nbf", json!(now() + 30)));
        assert!(verifier.verify(&within).await.is_ok());
        let beyond = sign(Algorithm::ES256, "ec-1", &with(claims(), "nbf", json!(now() + 120)));
        assert_eq!(reason(&verifier, &beyond).await, "NOT_YET_VALID");
    }

    /// The boundaries exactly, on a fixed clock.
    #[tokio::test]
    async fn leeway_boundaries() {
        let verifier = verifier().await;
        let at = |claims: Value, now: i64| identity(&verifier.inner, claims.as_object().unwrap(), now);
        let base = with(claims(), "exp", json!(1_000));
        assert!(at(base.clone(), 1_060).is_ok());
        assert_eq!(at(base.clone(), 1_061), Err(OidcError::Expired));
        let nbf = with(base, "nbf", json!(900.5));
        assert!(at(nbf.clone(), 841).is_ok());
        assert_eq!(at(nbf, 839), Err(OidcError::NotYetValid));
    }

    #[tokio::test]
    async fn audience_must_be_contained_exactly() {
        let verifier = verifier().await;
        for aud in [json!(AUDIENCE), json!(["other", AUDIENCE])] {
            let token = sign(Algorithm::EdDSA, "ed-1", &with(claims(), "aud", aud));
            assert!(verifier.verify(&token).await.is_ok());
        }
        for aud in [json!("other"), json!("IAMD"), json!("iamd "), json!(["other"]), json!([])] {
            let token = sign(Algorithm::EdDSA, "ed-1", &with(claims(), "aud", aud));
            assert_eq!(reason(&verifier, &token).await, "BAD_AUDIENCE");
        }
        let missing = sign(Algorithm::EdDSA, "ed-1", &without(claims(), "aud"));
        assert_eq!(reason(&verifier, &missing).await, "BAD_AUDIENCE");
        let number = sign(Algorithm::EdDSA, "ed-1", &with(claims(), "aud", json!([AUDIENCE, 7])));
        assert_eq!(reason(&verifier, &number).await, "MALFORMED");
    }

    #[tokio::test]
    async fn issuer_must_match_exactly() {
        let verifier = verifier().await;
        let wrong = [json!("https://evil.example.com"), json!("https://idp.example.com/"), json!([ISSUER])];
        for iss in wrong {
            let token = sign(Algorithm::RS256, "rsa-1", &with(claims(), "iss", iss));
            assert_eq!(reason(&verifier, &token).await, "BAD_ISSUER");
        }
        let missing = sign(Algorithm::RS256, "rsa-1", &without(claims(), "iss"));
        assert_eq!(reason(&verifier, &missing).await, "BAD_ISSUER");
    }

    #[tokio::test]
    async fn alg_none_is_refused() {
        let verifier = verifier().await;
        for alg in ["none", "None", "NONE"] {
            let token = craft(&json!({ "alg": alg, "typ": "JWT" }), &claims(), b"");
            assert!(Verifier::looks_like_jwt(&token), "routed here, to be refused by name");
            assert_eq!(reason(&verifier, &token).await, "BAD_ALGORITHM");
            let with_kid = craft(&json!({ "alg": alg, "kid": "rsa-1" }), &claims(), b"");
            assert_eq!(reason(&verifier, &with_kid).await, "BAD_ALGORITHM");
        }
    }

    /// The classic key confusion: an HMAC token whose secret is the issuer's public RSA key,
    /// which a verifier that lets the token pick the algorithm would accept.
    #[tokio::test]
    async fn hmac_signed_with_the_public_key_is_refused() {
        let verifier = verifier().await;
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(alg);
            header.kid = Some("rsa-1".into());
            let token =
                jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(RSA_PUBLIC_PEM).unwrap()).unwrap();
            assert_eq!(reason(&verifier, &token).await, "BAD_ALGORITHM", "{alg:?}");
        }
    }

    #[tokio::test]
    async fn other_algorithms_are_refused_before_any_key_is_used() {
        let verifier = verifier().await;
        let signed = sign(Algorithm::RS256, "rsa-1", &claims());
        let signature = URL_SAFE_NO_PAD.decode(signed.rsplit('.').next().unwrap()).unwrap();
        for alg in ["RS384", "RS512", "PS256", "ES384", "ES512", "Ed25519", "rs256", ""] {
            // A real RS256 signature: only the algorithm is wrong.
            let token = craft(&json!({ "alg": alg, "kid": "rsa-1" }), &claims(), &signature);
            assert_eq!(reason(&verifier, &token).await, "BAD_ALGORITHM", "{alg}");
        }
        // An unknown kid with a refused algorithm is refused without reading the JWKS.
        let token = craft(&json!({ "alg": "HS256", "kid": "nobody" }), &claims(), b"x");
        assert_eq!(reason(&verifier, &token).await, "BAD_ALGORITHM");
    }

    #[tokio::test]
    async fn algorithm_must_fit_the_key_type() {
        let verifier = verifier().await;
        let cases = [
            (Algorithm::ES256, "rsa-1"),
            (Algorithm::EdDSA, "rsa-1"),
            (Algorithm::RS256, "ec-1"),
            (Algorithm::EdDSA, "ec-1"),
            (Algorithm::RS256, "ed-1"),
            (Algorithm::ES256, "ed-1"),
        ];
        for (alg, kid) in cases {
            let token = sign(alg, kid, &claims());
            assert_eq!(reason(&verifier, &token).await, "BAD_ALGORITHM", "{alg:?} with {kid}");
        }
    }

    #[tokio::test]
    async fn a_tampered_token_has_a_bad_signature() {
        let verifier = verifier().await;
        for (alg, kid) in [(Algorithm::RS256, "rsa-1"), (Algorithm::ES256, "ec-1"), (Algorithm::EdDSA, "ed-1")] {
            let token = sign(alg, kid, &claims());
            let forged_claims = URL_SAFE_NO_PAD.encode(with(claims(), "sub", json!("admin")).to_string());
            let parts: Vec<&str> = token.split('.').collect();
            let forged = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
            assert_eq!(reason(&verifier, &forged).await, "BAD_SIGNATURE", "{alg:?}");
            // A signature that is not even of the right length.
            let resigned = format!("{}.{}.{}", parts[0], parts[1], "AAAA");
            assert_eq!(reason(&verifier, &resigned).await, "BAD_SIGNATURE", "{alg:?}");
        }
    }

    #[tokio::test]
    async fn malformed_tokens() {
        let verifier = verifier().await;
        let good = sign(Algorithm::RS256, "rsa-1", &claims());
        let parts: Vec<&str> = good.split('.').collect();
        let cases = [
            String::new(),
            "not a token".into(),
            format!("{}.{}", parts[0], parts[1]),
            format!("{good}.extra"),
            format!("!!.{}.{}", parts[1], parts[2]),
            format!("{}.{}.{}", URL_SAFE_NO_PAD.encode("[1]"), parts[1], parts[2]),
            craft(&json!({ "kid": "rsa-1" }), &claims(), b"x"),
            craft(&json!({ "alg": 256, "kid": "rsa-1" }), &claims(), b"x"),
            craft(&json!({ "alg": "RS256", "kid": 1 }), &claims(), b"x"),
        ];
        for token in cases {
            assert_eq!(reason(&verifier, &token).await, "MALFORMED", "{token}");
        }
    }

    #[tokio::test]
    async fn groups_become_percent_encoded_teams() {
        let verifier = verifier().await;
        let claims = with(
            with(claims(), "sub", json!("a:b c*")),
            "groups",
            json!(["eng", "a:b c*", "100%", "tab\there", "nbsp\u{a0}x", "ünï/cödé", "", "eng"]),
        );
        let identity = verifier.verify(&sign(Algorithm::ES256, "ec-1", &claims)).await.unwrap();
        assert_eq!(identity.subject, "user:oidc:a%3Ab%20c%2A");
        assert_eq!(
            identity.teams,
            [
                "team:oidc:eng",
                "team:oidc:a%3Ab%20c%2A",
                "team:oidc:100%25",
                "team:oidc:tab%09here",
                "team:oidc:nbsp%C2%A0x",
                "team:oidc:ünï/cödé"
            ]
        );
    }

    #[tokio::test]
    async fn groups_claim_missing_renamed_or_not_an_array() {
        let verifier = verifier().await;
        let none = verifier.verify(&sign(Algorithm::EdDSA, "ed-1", &claims())).await.unwrap();
        assert!(none.teams.is_empty());
        for groups in [json!("eng"), json!({ "eng": true }), json!(["eng", 1]), json!(null)] {
            let token = sign(Algorithm::EdDSA, "ed-1", &with(claims(), "groups", groups));
            let error = verifier.verify(&token).await.unwrap_err();
            assert_eq!(error.reason(), "MALFORMED");
            assert!(error.to_string().contains("`groups`"), "{error}");
        }
        let renamed =
            Verifier::new(OidcSettings { groups_claim: "roles".into(), ..settings(JWKS_PATH) }).await.unwrap();
        let token = sign(Algorithm::EdDSA, "ed-1", &with(with(claims(), "roles", json!(["ops"])), "groups", json!(1)));
        assert_eq!(renamed.verify(&token).await.unwrap().teams, ["team:oidc:ops"]);
    }

    #[tokio::test]
    async fn sub_is_required_and_not_empty() {
        let verifier = verifier().await;
        for claims in [without(claims(), "sub"), with(claims(), "sub", json!("")), with(claims(), "sub", json!(42))] {
            let token = sign(Algorithm::RS256, "rsa-1", &claims);
            assert_eq!(reason(&verifier, &token).await, "MALFORMED");
        }
    }

    #[tokio::test]
    async fn unknown_kid_refetches_at_most_once_per_interval() {
        let server = JwksServer::start(jwks_with(|kid| kid == "rsa-1")).await;
        let verifier = Verifier::new(settings(&server.url)).await.unwrap();
        assert_eq!(server.hits(), 1, "loaded once at start");

        let first = sign(Algorithm::RS256, "random-1", &claims());
        assert_eq!(reason(&verifier, &first).await, "UNKNOWN_KEY");
        assert_eq!(server.hits(), 2, "the first unknown kid reads the JWKS again");
        let second = sign(Algorithm::RS256, "random-2", &claims());
        assert_eq!(reason(&verifier, &second).await, "UNKNOWN_KEY");
        assert_eq!(server.hits(), 2, "the second, within the interval, does not");

        // The provider rotates a key in; within the interval it is not read yet.
        server.answer(200, fixture_jwks().to_string());
        let rotated = sign(Algorithm::EdDSA, "ed-1", &claims());
        assert_eq!(reason(&verifier, &rotated).await, "UNKNOWN_KEY");
        assert_eq!(server.hits(), 2);

        // Once the interval has passed (zero here, rather than a minute of sleep), the next
        // unknown kid reads it, and a clone shares the keys it found.
        let later = verifier.clone().with_min_refetch_interval(Duration::ZERO);
        assert_eq!(later.verify(&rotated).await.unwrap().subject, "user:oidc:alice");
        assert_eq!(server.hits(), 3);
        assert!(verifier.verify(&rotated).await.is_ok());
        assert!(verifier.verify(&sign(Algorithm::RS256, "rsa-1", &claims())).await.is_ok());
        assert_eq!(server.hits(), 3, "known kids never read the JWKS");
    }

    #[tokio::test]
    async fn concurrent_unknown_kids_share_one_refetch() {
        let server = JwksServer::start(jwks_with(|kid| kid != "ec-1")).await;
        let verifier = Verifier::new(settings(&server.url)).await.unwrap();
        server.answer(200, fixture_jwks().to_string());
        let tokens: Vec<String> = (0..16)
            .map(|i| {
                if i % 2 == 0 {
                    sign(Algorithm::ES256, "ec-1", &claims())
                } else {
                    sign(Algorithm::ES256, &format!("random-{i}"), &claims())
                }
            })
            .collect();
        let results = futures_util::future::join_all(tokens.iter().map(|token| verifier.verify(token))).await;
        for (i, result) in results.iter().enumerate() {
            assert_eq!(result.is_ok(), i % 2 == 0, "{i}: {result:?}");
        }
        assert_eq!(server.hits(), 2, "one load at start, one refetch");
    }

    #[tokio::test]
    async fn a_failed_refetch_keeps_the_old_keys() {
        let server = JwksServer::start(jwks_with(|kid| kid == "rsa-1")).await;
        let verifier = Verifier::new(settings(&server.url)).await.unwrap().with_min_refetch_interval(Duration::ZERO);
        for (status, body) in
            [(500, fixture_jwks().to_string()), (200, "not json".into()), (200, r#"{"keys":[]}"#.into())]
        {
            server.answer(status, body);
            let unknown = sign(Algorithm::EdDSA, "ed-1", &claims());
            assert_eq!(reason(&verifier, &unknown).await, "UNKNOWN_KEY");
            assert!(verifier.verify(&sign(Algorithm::RS256, "rsa-1", &claims())).await.is_ok(), "{status}");
        }
        assert_eq!(server.hits(), 4);
    }

    #[tokio::test]
    async fn a_key_rotated_into_the_file_is_picked_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, jwks_with(|kid| kid == "rsa-1")).unwrap();
        let verifier = Verifier::new(settings(path.to_str().unwrap())).await.unwrap();
        let token = sign(Algorithm::ES256, "ec-1", &claims());
        std::fs::write(&path, fixture_jwks().to_string()).unwrap();
        assert!(verifier.verify(&token).await.is_ok());
    }

    #[tokio::test]
    async fn a_token_without_kid_needs_an_unambiguous_key() {
        let verifier = verifier().await;
        // The fixture holds one key per type, so each type alone is unambiguous.
        let mut header = Header::new(Algorithm::ES256);
        header.kid = None;
        let token = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_ec_pem(EC_PEM).unwrap()).unwrap();
        assert!(verifier.verify(&token).await.is_ok());

        let mut two = fixture_jwks();
        let mut second = two["keys"][1].clone();
        second["kid"] = json!("ec-2");
        two["keys"].as_array_mut().unwrap().push(second);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, two.to_string()).unwrap();
        let ambiguous = Verifier::new(settings(path.to_str().unwrap())).await.unwrap();
        assert_eq!(reason(&ambiguous, &token).await, "UNKNOWN_KEY");
    }

    #[tokio::test]
    async fn jwks_urls_must_be_https_unless_loopback() {
        for url in [
            "http://example.com/jwks.json",
            "http://10.0.0.1/jwks.json",
            "ftp://127.0.0.1/jwks.json",
            "file:///etc/jwks.json",
        ] {
            let error = Verifier::new(settings(url)).await.unwrap_err();
            assert_eq!(error.reason(), "BAD_SETTINGS", "{url}");
        }
        let server = JwksServer::start(fixture_jwks().to_string()).await;
        assert!(Verifier::new(settings(&server.url)).await.is_ok());
        assert!(Verifier::new(settings(&server.url.replace("127.0.0.1", "localhost"))).await.is_ok());

        let allowed = |url: &str| url_allowed(&reqwest::Url::parse(url).unwrap());
        for url in [
            "https://idp.example.com/jwks",
            "http://localhost/j",
            "http://LOCALHOST:9/j",
            "http://127.0.0.1/j",
            "http://127.9.8.7/j",
            "http://[::1]:8080/j",
        ] {
            assert!(allowed(url), "{url}");
        }
        for url in [
            "http://example.com/j",
            "http://localhost.example.com/j",
            "http://[::ffff:7f00:1]/j",
            "http://0.0.0.0/j",
            "ftp://localhost/j",
        ] {
            assert!(!allowed(url), "{url}");
        }
    }

    #[tokio::test]
    async fn a_start_with_an_unusable_jwks_fails() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        let error = Verifier::new(settings(missing.to_str().unwrap())).await.unwrap_err();
        assert_eq!(error.reason(), "JWKS_UNAVAILABLE");
        assert!(error.to_string().contains("missing.json"), "{error}");

        let unusable = [
            "not json".to_owned(),
            r#"{"keys": []}"#.to_owned(),
            r#"[]"#.to_owned(),
            // Only keys iamd does not verify with: a shared secret, an encryption key, P-384.
            json!({ "keys": [
                { "kty": "oct", "kid": "hs", "k": "c2VjcmV0" },
                { "kty": "RSA", "kid": "enc", "use": "enc", "n": fixture_jwks()["keys"][0]["n"], "e": "AQAB" },
                { "kty": "EC", "kid": "p384", "crv": "P-384", "x": "AAAA", "y": "AAAA" },
                { "kty": "OKP", "kid": "short", "crv": "Ed25519", "x": "AAAA" },
                { "kty": "RSA", "kid": "small", "n": URL_SAFE_NO_PAD.encode([0xff; 128]), "e": "AQAB" },
                { "kty": "RSA", "kid": "2047", "n": URL_SAFE_NO_PAD.encode([[0x7f].as_slice(), &[0xff; 255]].concat()), "e": "AQAB" },
                { "kty": "RSA", "kid": "huge", "n": URL_SAFE_NO_PAD.encode([0xff; 1024]), "e": "AQAB" },
            ] })
            .to_string(),
        ];
        for body in unusable {
            let path = dir.path().join("jwks.json");
            std::fs::write(&path, &body).unwrap();
            let error = Verifier::new(settings(path.to_str().unwrap())).await.unwrap_err();
            assert_eq!(error.reason(), "JWKS_UNAVAILABLE", "{body}");
        }

        let server = JwksServer::start(fixture_jwks().to_string()).await;
        server.answer(404, "{}".into());
        assert_eq!(Verifier::new(settings(&server.url)).await.unwrap_err().reason(), "JWKS_UNAVAILABLE");
        // Bounded: a body past 1 MiB is refused, not read to the end.
        server.answer(200, format!("{{\"keys\":[], \"pad\": \"{}\"}}", "x".repeat(MAX_JWKS_BYTES)));
        let error = Verifier::new(settings(&server.url)).await.unwrap_err();
        assert!(error.to_string().contains("1 MiB"), "{error}");
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let error = Verifier::new(settings(&format!("http://{closed}/jwks.json"))).await.unwrap_err();
        assert_eq!(error.reason(), "JWKS_UNAVAILABLE");
    }

    #[tokio::test]
    async fn empty_settings_are_refused() {
        for settings in [
            OidcSettings { issuer: String::new(), ..settings(JWKS_PATH) },
            OidcSettings { audience: String::new(), ..settings(JWKS_PATH) },
            OidcSettings { groups_claim: String::new(), ..settings(JWKS_PATH) },
            settings(""),
        ] {
            assert_eq!(Verifier::new(settings).await.unwrap_err().reason(), "BAD_SETTINGS");
        }
    }

    #[test]
    fn looks_like_jwt_routes_only_jwts() {
        let token = sign(Algorithm::RS256, "rsa-1", &claims());
        assert!(Verifier::looks_like_jwt(&token));
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#);
        assert!(Verifier::looks_like_jwt(&format!("{header}.e30.")));
        for not in [
            "",
            "iamd_0123456789abcdef",
            "a.b.c",
            &format!("{header}.e30"),
            &format!("{header}.e30.sig.more"),
            &format!("{header}..sig"),
            &format!("{header}.e30=.sig"),
            &format!("{}.e30.sig", URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT"}"#)),
            &format!("{}.e30.sig", URL_SAFE_NO_PAD.encode(r#"{"alg":1}"#)),
            &format!("{}.e30.sig", URL_SAFE_NO_PAD.encode("not json")),
        ] {
            assert!(!Verifier::looks_like_jwt(not), "{not}");
        }
    }

    #[test]
    fn escape_encodes_only_separators_wildcards_percent_and_whitespace() {
        assert_eq!(escape("a:b c*"), "a%3Ab%20c%2A");
        assert_eq!(escape("%41"), "%2541");
        assert_eq!(escape("line\nbreak\r\u{2003}"), "line%0Abreak%0D%E2%80%83");
        assert_eq!(escape("user@example.com/ü-_.~+!#"), "user@example.com/ü-_.~+!#");
    }

    #[test]
    fn reasons_are_stable() {
        let cases = [
            (OidcError::Expired, "EXPIRED"),
            (OidcError::NotYetValid, "NOT_YET_VALID"),
            (OidcError::BadAudience, "BAD_AUDIENCE"),
            (OidcError::BadIssuer, "BAD_ISSUER"),
            (OidcError::BadAlgorithm(ALGORITHMS_ACCEPTED), "BAD_ALGORITHM"),
            (OidcError::UnknownKey, "UNKNOWN_KEY"),
            (OidcError::BadSignature, "BAD_SIGNATURE"),
            (OidcError::Malformed("x".into()), "MALFORMED"),
            (OidcError::JwksUnavailable("x".into()), "JWKS_UNAVAILABLE"),
            (OidcError::BadSettings("x".into()), "BAD_SETTINGS"),
        ];
        for (error, reason) in cases {
            assert_eq!(error.reason(), reason);
            assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn verifier_is_send_sync_and_clone() {
        fn shareable<T: Send + Sync + Clone + 'static>() {}
        shareable::<Verifier>();
    }
}
