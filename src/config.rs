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
    /// Directory of the embedded SQLite store.
    #[arg(long, env = "IAMD_DATA_DIR", default_value = "./iamd-data")]
    pub data_dir: PathBuf,
    /// Secret of the bootstrap admin's token, sent as `Authorization: Bearer <token>`.
    #[arg(long, env = "IAMD_BOOTSTRAP_TOKEN", hide_env_values = true)]
    pub bootstrap_token: Option<String>,
    /// Largest request body or message accepted, in bytes.
    #[arg(long, env = "IAMD_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Browser origins allowed to call the API (CORS), comma-separated; `*` allows any.
    #[arg(long, env = "IAMD_CORS_ALLOWED_ORIGINS", default_value = "*", value_delimiter = ',')]
    pub cors_allowed_origins: Vec<String>,
    /// How long in-flight requests may take to finish after a stop signal.
    #[arg(long, env = "IAMD_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

impl Config {
    /// Defaults for a data directory, as tests and embedders want them.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            bootstrap_token: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            cors_allowed_origins: vec!["*".into()],
            shutdown_grace: Duration::from_secs(10),
        }
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
