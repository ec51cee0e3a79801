//! The one handler set. `Api` implements every generated tonic service; gRPC, gRPC-web
//! and JSON all end here. Handlers are thin: request message -> domain call -> response
//! message. Only this module and `transcode` see protobuf types.

mod accounts;
mod admin;
mod authz;
mod history;
mod iam;
mod organizations;
pub mod status;

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Response, Status};

use crate::app::{Actor, App, Details, Receipt};
use crate::config::Secret;
use crate::model::kind::Kind;
use crate::model::objects::Obj;
use crate::pb::iamd::admin::v1::ObjectDetails;
use crate::wkt::Timestamp;

#[derive(Clone)]
pub struct Api {
    app: Arc<App>,
    bootstrap_token: Option<TokenDigest>,
}

impl Api {
    pub fn new(app: Arc<App>, bootstrap_token: Option<&Secret>) -> Self {
        Api { app, bootstrap_token: bootstrap_token.map(|token| TokenDigest::of(token.expose())) }
    }

    /// Who is calling, for the event log. Authentication is not enforced yet: a request that
    /// presents the bootstrap token acts as the bootstrap admin, any other as `anonymous`.
    fn actor(&self, metadata: &MetadataMap) -> Actor {
        let presented = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("AccessKey ")));
        match (presented, &self.bootstrap_token) {
            (Some(token), Some(expected)) if expected.matches(token) => Actor("user:local:admin".into()),
            _ => Actor("anonymous".into()),
        }
    }
}

/// The SHA-256 digest of a token, which is all the server keeps of it. A presented token is
/// hashed and the digests compared: how long that takes can tell a caller at most how much
/// of its own token's digest matches, which says nothing about the token (SHA-256 is
/// preimage resistant), and the token's length never enters the comparison. A plain `==` on
/// the tokens stops at the first differing byte and so leaks the secret a prefix at a time.
#[derive(Clone)]
struct TokenDigest([u8; 32]);

impl TokenDigest {
    fn of(token: &str) -> TokenDigest {
        TokenDigest(Sha256::digest(token.as_bytes()).into())
    }

    fn matches(&self, presented: &str) -> bool {
        TokenDigest::of(presented).0 == self.0
    }
}

/// An object's version, its `etag`.
fn version<K: Kind>(object: &Obj<K>) -> Option<u64> {
    Some(object.meta.sequence)
}

/// The version a write expects (`If-Match` on JSON, `if-match` metadata on gRPC): `"3"`,
/// `W/"3"` or `3`; `*` or no header means any version.
fn if_match(metadata: &MetadataMap) -> Result<Option<u64>, Status> {
    let Some(value) = metadata.get("if-match") else { return Ok(None) };
    let text = value.to_str().map_err(|_| invalid_if_match("?"))?.trim();
    if text == "*" {
        return Ok(None);
    }
    let bare = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    bare.parse::<u64>().map(Some).map_err(|_| invalid_if_match(text))
}

fn invalid_if_match(text: &str) -> Status {
    crate::app::AppError::invalid(
        "if-match",
        format!("`{text}` is not a version; send the etag you read, such as \"3\""),
    )
    .into()
}

/// A response with the object's version as `etag` and, for writes, the consistency token.
fn respond<T>(message: T, etag: Option<u64>, position: Option<u64>) -> Response<T> {
    let mut response = Response::new(message);
    let metadata = response.metadata_mut();
    if let Some(Ok(value)) = etag.map(|v| MetadataValue::try_from(format!("\"{v}\""))) {
        metadata.insert("etag", value);
    }
    if let Some(position) = position {
        metadata.insert(crate::CONSISTENCY_TOKEN, MetadataValue::from(position));
    }
    response
}

/// A write's answer: its result's version and the receipt's token.
fn written<T, V>(receipt: Receipt<V>, etag: impl Fn(&V) -> Option<u64>, message: impl FnOnce(V) -> T) -> Response<T> {
    let version = etag(&receipt.value);
    respond(message(receipt.value), version, receipt.position)
}

fn object_details(details: Details) -> ObjectDetails {
    ObjectDetails {
        sequence: details.sequence,
        creation_date: Some(Timestamp::from_micros(details.created_at)),
        change_date: Some(Timestamp::from_micros(details.changed_at)),
        resource_owner: details.owner,
    }
}

#[cfg(test)]
mod tests {
    use super::TokenDigest;

    #[test]
    fn only_the_exact_token_matches_its_digest() {
        let expected = TokenDigest::of("s3cret-token");
        assert!(expected.matches("s3cret-token"));
        for other in ["", "s3cret", "s3cret-token ", "S3cret-token", "s3cret-tokem", "s3cret-token-and-more"] {
            assert!(!expected.matches(other), "{other:?}");
        }
    }
}
