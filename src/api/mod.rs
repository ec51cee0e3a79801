//! The one handler set. `Api` implements every generated tonic service; gRPC, gRPC-web
//! and JSON all end here. Handlers are thin: request message -> domain call -> response
//! message. Only this module and `transcode` see protobuf types.

mod accounts;
mod admin;
mod authz;
mod authzen;
mod conditions;
mod history;
mod iam;
mod identity;
mod organizations;
pub mod status;

use std::sync::Arc;

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status};

use crate::app::access::Admitted;
use crate::app::iam::TenantFilter;
use crate::app::{Actor, App, Details, Receipt};
use crate::methods::MethodTable;
use crate::model::kind::Kind;
use crate::model::objects::Obj;
use crate::pb::iamd::admin::v1::ObjectDetails;
use crate::transcode::routes::RouteTable;
use crate::wkt::Timestamp;

#[derive(Clone)]
pub struct Api {
    app: Arc<App>,
    /// What introspection asks about: the action and resource of each path.
    routes: Arc<RouteTable>,
    /// Each method's rule, for what a simulated change needs.
    methods: Arc<MethodTable>,
    /// The configured base URL of this server, for absolute URLs in answers.
    public_url: Option<Arc<str>>,
}

impl Api {
    pub fn new(app: Arc<App>, methods: Arc<MethodTable>, routes: Arc<RouteTable>, public_url: Option<&str>) -> Self {
        Api { app, routes, methods, public_url: public_url.map(Arc::from) }
    }
}

/// What the front door admitted the call as. Every method with a rule passes it, so a call
/// without it did not come through the server's stack: refused, never served as anyone.
fn admitted<T>(request: &Request<T>) -> Result<&Admitted, Status> {
    request
        .extensions()
        .get::<Admitted>()
        .ok_or_else(|| Status::unauthenticated("the request was not authenticated by iamd's front door"))
}

/// Who is calling, for the event log.
fn actor<T>(request: &Request<T>) -> Result<Actor, Status> {
    Ok(admitted(request)?.actor.clone())
}

/// What the call may see of tenant-scoped objects.
fn tenants<T>(request: &Request<T>) -> Result<TenantFilter, Status> {
    Ok(admitted(request)?.tenants.clone())
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
