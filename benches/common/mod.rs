//! What more than one benchmark needs.

/// A fresh schema in the PostgreSQL database at `base`: the admin connection, the URL that
/// works in it, its name.
pub async fn scratch_schema(base: &str) -> (tokio_postgres::Client, String, String) {
    let (admin, connection) = tokio_postgres::connect(base, tokio_postgres::NoTls).await.expect("PostgreSQL");
    tokio::spawn(connection);
    let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    admin.batch_execute(&format!("CREATE SCHEMA {name}")).await.expect("a scratch schema");
    let separator = if base.contains('?') { '&' } else { '?' };
    (admin, format!("{base}{separator}options=-c%20search_path%3D{name}"), name)
}

/// The bootstrap administrator's token of every benchmark server: the benchmarks call iamd
/// as a client of a real deployment does, through its front door.
pub const TOKEN: &str = "bench-bootstrap-token";

/// A server's settings in `dir`, with the benchmarks' bootstrap token.
pub fn config(dir: &std::path::Path) -> iamd::config::Config {
    iamd::config::Config { bootstrap_token: Some(TOKEN.into()), ..iamd::config::Config::for_data_dir(dir) }
}

/// A tonic interceptor that sends the administrator's credential with every call.
pub type Credential = fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>;

/// A channel whose every call carries the administrator's credential.
#[allow(dead_code, reason = "not every benchmark names the type")]
pub type Authorized = tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Credential>;

pub fn credential(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    let value = tonic::metadata::MetadataValue::try_from(format!("Bearer {TOKEN}"))
        .map_err(|_| tonic::Status::internal("the token is not a header value"))?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}
