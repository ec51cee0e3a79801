//! Request ids: every answer carries `x-request-id`, the client's when it sent a usable one,
//! else one iamd made; the access log line and every error's `google.rpc.ErrorInfo` carry it
//! too (metadata `requestId`), so the report of a failed call leads to its log line.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use prost::Message;
use tonic::Code;
use tonic_types::pb;

pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The `ErrorInfo` metadata key of the request id.
pub const METADATA_KEY: &str = "requestId";

/// The longest id a client may choose; a longer one is replaced, as it would bloat every
/// log line and answer.
const MAX_LEN: usize = 128;

const ERROR_INFO: &str = "type.googleapis.com/google.rpc.ErrorInfo";

/// The id of a request: the client's `x-request-id` when it is 1 to 128 visible ASCII
/// characters, else a new one.
pub fn of(headers: &HeaderMap) -> HeaderValue {
    let mut id = match headers.get(&REQUEST_ID) {
        Some(id) if usable(id) => id.clone(),
        _ => generate(),
    };
    // Every request has its own: HTTP/2's header compression would add each to its table,
    // evicting the headers that repeat (content type, status), and send those in full again.
    id.set_sensitive(true);
    id
}

fn usable(id: &HeaderValue) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty() && bytes.len() <= MAX_LEN && bytes.iter().all(|b| b.is_ascii_graphic())
}

/// A new id, formatted as a version 4 UUID. Ids need to be unique, not secret: a random
/// process key and a counter through a bijective mix give that without a system call per
/// request.
pub fn generate() -> HeaderValue {
    static KEY: OnceLock<[u64; 2]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let key = KEY.get_or_init(|| {
        let mut bytes = [0u8; 16];
        // Without a random source the ids of two processes may repeat; they stay unique within one.
        let _ = getrandom::fill(&mut bytes);
        let (high, low) = bytes.split_at(8);
        [
            u64::from_le_bytes(high.try_into().unwrap_or_default()),
            u64::from_le_bytes(low.try_into().unwrap_or_default()),
        ]
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let low = mix(n ^ key[1]);
    let uuid =
        uuid::Builder::from_random_bytes(((u128::from(key[0]) << 64) | u128::from(low)).to_be_bytes()).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid.hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// splitmix64's finalizer: a bijection on u64 that scatters consecutive inputs.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Adds the request id to the `ErrorInfo` of a failed answer's `grpc-status-details-bin`
/// (headers of a trailers-only answer, or trailers). OK answers and answers without a
/// status are left alone.
pub fn stamp_headers(headers: &mut HeaderMap, id: &HeaderValue) {
    let Some(status) = tonic::Status::from_header_map(headers).filter(|s| s.code() != Code::Ok) else { return };
    let stamped = stamp_status(&status, id);
    if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(stamped.details()),
    )) {
        headers.insert("grpc-status-details-bin", value);
    }
}

/// The status with the request id in its `ErrorInfo`, adding an `ErrorInfo` that names the
/// code when it had none. Details iamd cannot read are the sender's and stay as they are.
pub fn stamp_status(status: &tonic::Status, id: &HeaderValue) -> tonic::Status {
    let Ok(id) = id.to_str() else { return status.clone() };
    let details = if status.details().is_empty() {
        pb::Status { code: status.code() as i32, message: status.message().to_owned(), details: Vec::new() }
    } else {
        match pb::Status::decode(status.details()) {
            Ok(details) => details,
            Err(_) => return status.clone(),
        }
    };
    tonic::Status::with_details_and_metadata(
        status.code(),
        status.message(),
        Bytes::from(stamp(details, id).encode_to_vec()),
        status.metadata().clone(),
    )
}

fn stamp(mut status: pb::Status, id: &str) -> pb::Status {
    let existing = status.details.iter_mut().find(|any| any.type_url == ERROR_INFO);
    match existing {
        Some(any) => {
            let Ok(mut info) = pb::ErrorInfo::decode(any.value.as_slice()) else { return status };
            info.metadata.insert(METADATA_KEY.to_owned(), id.to_owned());
            any.value = info.encode_to_vec();
        }
        None => {
            let reason = crate::protocol::code_name(Code::from_i32(status.code)).to_owned();
            let info = pb::ErrorInfo {
                reason,
                domain: crate::ERROR_DOMAIN.to_owned(),
                metadata: [(METADATA_KEY.to_owned(), id.to_owned())].into_iter().collect(),
            };
            status.details.push(prost_types::Any { type_url: ERROR_INFO.to_owned(), value: info.encode_to_vec() });
        }
    }
    status
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test panics")]
mod tests {
    use tonic_types::{ErrorDetails, StatusExt};

    use super::*;

    #[test]
    fn a_usable_client_id_is_kept_and_anything_else_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(&REQUEST_ID, HeaderValue::from_static("report-42"));
        assert_eq!(of(&headers), "report-42");
        for bad in ["", "has space", &"x".repeat(129)] {
            headers.insert(&REQUEST_ID, HeaderValue::from_str(bad).unwrap());
            let id = of(&headers);
            assert_ne!(id, bad);
            assert!(uuid::Uuid::parse_str(id.to_str().unwrap()).is_ok(), "{id:?}");
        }
    }

    #[test]
    fn generated_ids_are_version_4_uuids_and_do_not_repeat() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| generate().to_str().unwrap().to_owned()).collect();
        assert_eq!(ids.len(), 10_000);
        let uuid = uuid::Uuid::parse_str(ids.iter().next().unwrap()).unwrap();
        assert_eq!(uuid.get_version_num(), 4);
    }

    #[test]
    fn an_error_info_gains_the_id_and_keeps_what_it_had() {
        let details = ErrorDetails::with_error_info("NAME_TAKEN", "iamd", [("name".to_owned(), "acme".to_owned())]);
        let status = tonic::Status::with_error_details(Code::AlreadyExists, "taken", details);
        let stamped = stamp_status(&status, &HeaderValue::from_static("abc"));
        let info = stamped.get_details_error_info().unwrap();
        assert_eq!(info.reason, "NAME_TAKEN");
        assert_eq!(info.metadata.get("name").map(String::as_str), Some("acme"));
        assert_eq!(info.metadata.get(METADATA_KEY).map(String::as_str), Some("abc"));
        assert_eq!((stamped.code(), stamped.message()), (Code::AlreadyExists, "taken"));
    }

    #[test]
    fn an_error_without_details_gains_an_error_info_naming_its_code() {
        let mut headers = HeaderMap::new();
        tonic::Status::not_found("no such thing").add_header(&mut headers).unwrap();
        stamp_headers(&mut headers, &HeaderValue::from_static("r-1"));
        let status = tonic::Status::from_header_map(&headers).unwrap();
        assert_eq!((status.code(), status.message()), (Code::NotFound, "no such thing"));
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "NOT_FOUND");
        assert_eq!(info.domain, crate::ERROR_DOMAIN);
        assert_eq!(info.metadata.get(METADATA_KEY).map(String::as_str), Some("r-1"));
    }

    #[test]
    fn an_ok_answer_is_left_alone() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static("0"));
        stamp_headers(&mut headers, &HeaderValue::from_static("r-1"));
        assert!(!headers.contains_key("grpc-status-details-bin"));
    }
}
