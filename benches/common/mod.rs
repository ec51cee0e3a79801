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
