//! The one handler set. `Api` implements every generated tonic service; gRPC, gRPC-web
//! and JSON all end here. Handlers are thin: request message -> domain call -> response
//! message. Only this module and `transcode` see protobuf types.

mod admin;
mod organizations;
pub mod status;

use std::sync::Arc;

use tonic::metadata::MetadataMap;

use crate::app::{Actor, App, Details};
use crate::pb::iamd::admin::v1::ObjectDetails;
use crate::wkt::Timestamp;

#[derive(Clone)]
pub struct Api {
    app: Arc<App>,
    bootstrap_token: Option<Arc<str>>,
}

impl Api {
    pub fn new(app: Arc<App>, bootstrap_token: Option<String>) -> Self {
        Api { app, bootstrap_token: bootstrap_token.map(Arc::from) }
    }

    /// Who is calling, for the event log. Authentication is not enforced yet: a request that
    /// presents the bootstrap token acts as the bootstrap admin, any other as `anonymous`.
    fn actor(&self, metadata: &MetadataMap) -> Actor {
        let presented = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("AccessKey ")));
        match (presented, &self.bootstrap_token) {
            (Some(token), Some(expected)) if token == &**expected => Actor("user:local:admin".into()),
            _ => Actor("anonymous".into()),
        }
    }
}

fn object_details(details: Details) -> ObjectDetails {
    ObjectDetails {
        sequence: details.sequence,
        creation_date: Some(Timestamp::from_micros(details.created_at)),
        change_date: Some(Timestamp::from_micros(details.changed_at)),
        resource_owner: details.owner,
    }
}
