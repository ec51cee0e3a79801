//! Server settings, from flags with environment fallbacks. Tests build a `Config` directly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// One limit for request bodies on every protocol (gRPC and gRPC-web messages, JSON bodies).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "IAMD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory of the embedded SQLite store (unused with --database-url).
    #[arg(long, env = "IAMD_DATA_DIR", default_value = "./iamd-data")]
    pub data_dir: PathBuf,
    /// PostgreSQL store instead of SQLite, as `postgres://user:password@host:port/database`.
    #[arg(long, env = "IAMD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,
    /// Secret of the bootstrap admin's token, sent as `Authorization: Bearer <token>`. Used
    /// only on the first start; when unset then, iamd generates one and prints it once.
    #[arg(long, env = "IAMD_BOOTSTRAP_TOKEN", hide_env_values = true)]
    pub bootstrap_token: Option<Secret>,
    /// Largest request body or message accepted, in bytes.
    #[arg(long, env = "IAMD_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Browser origins allowed to call the API (CORS), comma-separated; `*` allows any.
    #[arg(long, env = "IAMD_CORS_ALLOWED_ORIGINS", default_value = "*", value_delimiter = ',')]
    pub cors_allowed_origins: Vec<String>,
    /// How long a request carrying a consistency token may wait for this replica to catch
    /// up before it is UNAVAILABLE.
    #[arg(long, env = "IAMD_CONSISTENCY_WAIT", default_value = "2s", value_parser = parse_duration)]
    pub consistency_wait: Duration,
    /// How often the replica polls the event log for other replicas' writes.
    #[arg(long, env = "IAMD_FOLLOW_INTERVAL", default_value = "50ms", value_parser = parse_duration)]
    pub follow_interval: Duration,
    /// OIDC: the issuer (`iss`) whose JWTs iamd accepts as `Authorization: Bearer <jwt>`;
    /// unset turns OIDC off.
    #[arg(long, env = "IAMD_OIDC_ISSUER", requires_all = ["oidc_audience", "oidc_jwks"])]
    pub oidc_issuer: Option<String>,
    /// OIDC: the audience (`aud`) a JWT must name.
    #[arg(long, env = "IAMD_OIDC_AUDIENCE", requires = "oidc_issuer")]
    pub oidc_audience: Option<String>,
    /// OIDC: the issuer's JWKS, a file path or a URL (https, or http on loopback).
    #[arg(long, env = "IAMD_OIDC_JWKS", requires = "oidc_issuer")]
    pub oidc_jwks: Option<String>,
    /// OIDC: the claim holding the caller's groups, which become teams `team:oidc:<group>`.
    #[arg(long, env = "IAMD_OIDC_GROUPS_CLAIM", default_value = "groups")]
    pub oidc_groups_claim: String,
    /// The URL clients reach iamd at, such as `https://iam.example.com`, for the absolute URLs
    /// of the AuthZEN metadata; unset, they are built from the request's host, over http.
    #[arg(long, env = "IAMD_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,
    /// How long in-flight requests may take to finish after a stop signal.
    #[arg(long, env = "IAMD_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Serve /metrics and count requests for it; off, nothing is counted.
    #[arg(long, env = "IAMD_METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics: bool,
}

impl Config {
    /// Defaults for a data directory, as tests and embedders want them.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            database_url: None,
            bootstrap_token: None,
            oidc_issuer: None,
            oidc_audience: None,
            oidc_jwks: None,
            oidc_groups_claim: "groups".into(),
            public_url: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            cors_allowed_origins: vec!["*".into()],
            consistency_wait: Duration::from_secs(2),
            follow_interval: Duration::from_millis(50),
            shutdown_grace: Duration::from_secs(10),
            metrics: true,
        }
    }
}

impl Config {
    /// The OIDC verifier's settings, when OIDC is on.
    pub fn oidc_settings(&self) -> Option<crate::oidc::OidcSettings> {
        Some(crate::oidc::OidcSettings {
            issuer: self.oidc_issuer.clone()?,
            audience: self.oidc_audience.clone()?,
            jwks: self.oidc_jwks.clone()?,
            groups_claim: self.oidc_groups_claim.clone(),
        })
    }
}

/// A secret setting: the bootstrap token, a database URL (which may hold a password).
/// `Debug` only says that one is set, so a printed `Config` (a log line, a panic) never
/// shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret itself: for the one comparison or call that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(secret: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(secret.to_owned()))
    }
}

impl From<&str> for Secret {
    fn from(secret: &str) -> Secret {
        Secret(secret.to_owned())
    }
}

/// `250ms`, `10s`, `2m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration such as 10s"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("`{text}`: use ms, s or m")),
    }
}

/// An absolute http(s) URL with no query or fragment, without its trailing `/`: the base that
/// paths are appended to.
fn parse_public_url(text: &str) -> Result<String, String> {
    let uri: http::Uri = text.parse().map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.authority().is_none() {
        return Err(format!("`{text}` is not an absolute http or https URL, such as https://iam.example.com"));
    }
    if uri.query().is_some() || text.contains('#') {
        return Err(format!("`{text}`: a base URL has no query or fragment"));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test panics")]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    #[test]
    fn the_database_url_is_optional_and_never_printed() {
        let sqlite = Cli::try_parse_from(["iamd"]).unwrap().config;
        assert_eq!(sqlite.database_url, None);

        let url = "postgres://iamd:s3cret@db:5432/iam";
        let postgres = Cli::try_parse_from(["iamd", "--database-url", url]).unwrap().config;
        assert_eq!(postgres.database_url.as_ref().map(Secret::expose), Some(url));
        let printed = format!("{postgres:?}");
        assert!(printed.contains("Secret(..)") && !printed.contains("s3cret"), "{printed}");
    }

    #[test]
    fn the_bootstrap_token_is_never_printed() {
        let config = Cli::try_parse_from(["iamd", "--bootstrap-token", "t0ken-value"]).unwrap().config;
        assert_eq!(config.bootstrap_token.as_ref().map(Secret::expose), Some("t0ken-value"));
        let printed = format!("{config:?} {config:#?}");
        assert!(printed.contains("Secret(..)") && !printed.contains("t0ken-value"), "{printed}");
    }
}
