//! iamd: an IAM policy service. One set of protobuf-defined handlers answers native gRPC,
//! gRPC-web and JSON REST on one port. See ARCHITECTURE.md for the layers and a request's
//! path from the wire to the store.

pub mod api;
pub mod app;
pub mod body;
pub mod codec;
pub mod config;
pub mod kinds;
pub mod methods;
pub mod metrics;
pub mod model;
pub mod observe;
pub mod oidc;
pub mod openapi;
pub mod pb;
pub mod protocol;
pub mod request_id;
pub mod server;
pub mod store;
pub mod transcode;
pub mod wkt;

#[cfg(test)]
mod tidy;

/// mimalloc rather than glibc's malloc, for the server and everything that measures it (the
/// benchmarks and tests link this crate, so they run on the allocator the server ships with).
/// A request allocates on one worker thread and often frees on the other; glibc then takes
/// its arenas' locks, which showed as futex waits on the JSON path under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The header (and gRPC metadata key) of consistency tokens: the log position of a write.
pub const CONSISTENCY_TOKEN: &str = "x-iamd-consistency-token";

/// The `domain` of every `google.rpc.ErrorInfo` iamd sends.
pub const ERROR_DOMAIN: &str = "iamd";
