//! Server settings: one typed `Config`, read from flags, environment variables and an optional
//! TOML file, with one precedence rule: flag > env > file > default.
//!
//! Each setting is declared once, as a field of `Config`: its `#[arg]` gives the flag, the
//! environment variable, the default and the parser, its doc comment the help, and its name
//! the file key. Every layer hands the setting its value as text for that one parser, so a
//! value means the same wherever it is written. Tests and embedders build a `Config` directly.

use std::ffi::{OsStr, OsString};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::builder::Resettable;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use serde::{Serialize, Serializer};

/// One limit for request bodies on every protocol (gRPC and gRPC-web messages, JSON bodies).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Serialized only for `iamd config`, which is why secrets serialize masked.
#[derive(Clone, Debug, clap::Args, Serialize)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "IAMD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory of the embedded SQLite store (unused with --database-url).
    #[arg(long, env = "IAMD_DATA_DIR", default_value = "./iamd-data")]
    pub data_dir: PathBuf,
    /// PostgreSQL store instead of SQLite, as `postgres://user:password@host:port/database`.
    #[arg(long, env = "IAMD_DATABASE_URL", hide_env_values = true)]
    #[serde(serialize_with = "masked_url")]
    pub database_url: Option<Secret>,
    /// Secret of the bootstrap admin's token, sent as `Authorization: Bearer <token>`. Used
    /// only on the first start; when unset then, iamd generates one and prints it once.
    #[arg(long, env = "IAMD_BOOTSTRAP_TOKEN", hide_env_values = true)]
    pub bootstrap_token: Option<Secret>,
    /// Browser origins allowed to call the API (CORS), comma-separated; `*` allows any.
    #[arg(long, env = "IAMD_CORS_ALLOWED_ORIGINS", default_value = "*", value_delimiter = ',')]
    pub cors_allowed_origins: Vec<String>,
    /// How long a request carrying a consistency token may wait for this replica to catch
    /// up before it is UNAVAILABLE.
    #[arg(long, env = "IAMD_CONSISTENCY_WAIT", default_value = "2s", value_parser = parse_duration)]
    #[serde(serialize_with = "duration_text")]
    pub consistency_wait: Duration,
    /// How often the replica polls the event log for other replicas' writes.
    #[arg(long, env = "IAMD_FOLLOW_INTERVAL", default_value = "50ms", value_parser = parse_duration)]
    #[serde(serialize_with = "duration_text")]
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
    #[serde(serialize_with = "duration_text")]
    pub shutdown_grace: Duration,
    /// Serve `/metrics` and count requests for it; off, nothing is counted.
    #[arg(long, env = "IAMD_METRICS", default_value_t = true, action = ArgAction::Set)]
    pub metrics: bool,
    #[command(flatten)]
    #[serde(flatten)]
    pub limits: Limits,
}

/// What one client may take of the server: each limit answers with its own error while the
/// server goes on serving the others.
#[derive(Clone, Copy, Debug, clap::Args, Serialize)]
pub struct Limits {
    /// Largest request body or message accepted, in bytes.
    #[arg(long, env = "IAMD_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// How long a client may take to send a request's headers (HTTP/1.1) or the connection
    /// preface (HTTP/2) before its connection is closed.
    #[arg(long, env = "IAMD_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    #[serde(serialize_with = "duration_text")]
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no request in progress.
    #[arg(long, env = "IAMD_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    #[serde(serialize_with = "duration_text")]
    pub idle_timeout: Duration,
    /// Most connections open at once; one more is answered 503 and closed.
    #[arg(long, env = "IAMD_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Most concurrent streams an HTTP/2 client may open on one connection.
    #[arg(long, env = "IAMD_MAX_CONCURRENT_STREAMS", default_value_t = 256)]
    pub max_concurrent_streams: u32,
    /// Most HTTP/2 streams a client may open and reset before they are served, at once;
    /// beyond, the connection is closed (rapid-reset floods).
    #[arg(long, env = "IAMD_MAX_PENDING_RESETS", default_value_t = 20)]
    pub max_pending_resets: usize,
    /// Most HTTP/2 streams the server may reset for a client's protocol errors on one
    /// connection; beyond, the connection is closed.
    #[arg(long, env = "IAMD_MAX_ERROR_RESETS", default_value_t = 1024)]
    pub max_error_resets: usize,
    /// Largest request header list, in bytes as HTTP/2 counts them (each field's name and
    /// value, plus 32).
    #[arg(long, env = "IAMD_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,
    /// Most API requests in flight at once; beyond, requests are shed with
    /// RESOURCE_EXHAUSTED (429 and `Retry-After`).
    #[arg(long, env = "IAMD_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,
    /// The deadline of a request that sends no `grpc-timeout`.
    #[arg(long, env = "IAMD_DEFAULT_DEADLINE", default_value = "30s", value_parser = parse_duration)]
    #[serde(serialize_with = "duration_text")]
    pub default_deadline: Duration,
    /// Deepest nesting of arrays and objects a JSON request body may have.
    #[arg(long, env = "IAMD_MAX_JSON_DEPTH", default_value_t = 64)]
    pub max_json_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_concurrent_streams: 256,
            max_pending_resets: 20,
            max_error_resets: 1024,
            max_header_bytes: 16 * 1024,
            max_in_flight: 1024,
            default_deadline: Duration::from_secs(30),
            max_json_depth: 64,
        }
    }
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
            cors_allowed_origins: vec!["*".into()],
            consistency_wait: Duration::from_secs(2),
            follow_interval: Duration::from_millis(50),
            shutdown_grace: Duration::from_secs(10),
            metrics: true,
            limits: Limits::default(),
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

/// The command line's share of the settings: `--config` and the flags given, kept as text
/// until [`Flags::resolve`] lays them over the environment, the file and the defaults.
///
/// As clap `Args` it shows each setting's flag, environment variable and default in `--help`,
/// but it leaves the environment and the rules between settings (`requires`) to `resolve`:
/// clap would check those rules on the flags alone, and report a bad environment value under
/// its flag's name.
#[derive(Clone, Default)]
pub struct Flags {
    file: Option<PathBuf>,
    given: Vec<(String, Vec<OsString>)>,
}

/// The configuration file's flag, and its environment variable.
const FILE_FLAG: &str = "config";
const FILE_ENV: &str = "IAMD_CONFIG";

impl Flags {
    /// The effective settings: each from its flag, else its environment variable (read with
    /// `env`), else its key in the configuration file, else its default.
    pub fn resolve(&self, env: impl Fn(&str) -> Option<OsString>) -> Result<Settings, ConfigError> {
        let file = self.file.clone().or_else(|| env(FILE_ENV).map(PathBuf::from));
        let file = match file {
            Some(path) => Some(File { table: read_file(&path)?, path }),
            None => None,
        };
        let declared = declared();
        if let Some(file) = &file {
            file.check_keys(&declared)?;
        }
        let mut argv = vec![OsString::from("iamd")];
        let mut sources = Vec::new();
        for arg in declared.get_arguments() {
            let (source, values) = self.layer(arg, &env, file.as_ref())?;
            argv.extend(values.iter().map(|value| flag(arg, value)));
            sources.push((arg.get_id().to_string(), source));
        }
        let matches = declared.mut_args(without_env).try_get_matches_from(argv).map_err(inconsistent)?;
        let config = Config::from_arg_matches(&matches).map_err(inconsistent)?;
        Ok(Settings { config, sources })
    }

    /// The layer `arg` takes its value from, with the value as its flag would carry it (none
    /// for the default).
    fn layer(
        &self,
        arg: &Arg,
        env: &impl Fn(&str) -> Option<OsString>,
        file: Option<&File>,
    ) -> Result<(Source, Vec<OsString>), ConfigError> {
        let key = arg.get_id().as_str();
        if let Some((_, values)) = self.given.iter().find(|(given, _)| given == key) {
            return Ok((Source::Flag, values.clone()));
        }
        if let Some(var) = arg.get_env().and_then(OsStr::to_str)
            && let Some(value) = env(var)
        {
            let values = vec![value];
            check(arg, &values).map_err(|e| invalid(format!("environment variable `{var}`"), arg, &e))?;
            return Ok((Source::Env(var.to_owned()), values));
        }
        if let Some(file) = file
            && let Some(value) = file.table.get(key)
        {
            let values = file.values(arg, value)?;
            check(arg, &values).map_err(|e| invalid(format!("`{key}` in `{}`", file.path.display()), arg, &e))?;
            return Ok((Source::File(file.path.clone()), values));
        }
        Ok((Source::Default, Vec::new()))
    }
}

impl FromArgMatches for Flags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Flags, clap::Error> {
        let mut flags = Flags::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        if let Some(file) = matches.get_one::<PathBuf>(FILE_FLAG) {
            self.file = Some(file.clone());
        }
        for arg in declared().get_arguments() {
            let key = arg.get_id().as_str();
            if matches.value_source(key) == Some(ValueSource::CommandLine) {
                let values = matches.get_raw(key).into_iter().flatten().map(OsStr::to_owned).collect();
                self.given.retain(|(given, _)| given != key);
                self.given.push((key.to_owned(), values));
            }
        }
        Ok(())
    }
}

impl Args for Flags {
    fn augment_args(cmd: Command) -> Command {
        let file = Arg::new(FILE_FLAG)
            .long(FILE_FLAG)
            .env(FILE_ENV)
            .value_name("PATH")
            .value_parser(clap::value_parser!(PathBuf))
            .help("TOML file of settings, keyed by their flags' names in snake_case (`data_dir = \"/var/lib/iamd\"`)");
        let cmd = Config::augment_args(cmd.arg(file));
        let ids: Vec<String> = cmd.get_arguments().map(|arg| arg.get_id().to_string()).collect();
        ids.iter().fold(cmd, |cmd, id| cmd.mut_arg(id, flag_layer_only))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Flags::augment_args(cmd)
    }
}

/// Lists only which flags were given: their values may be secrets.
impl std::fmt::Debug for Flags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let given: Vec<&str> = self.given.iter().map(|(key, _)| key.as_str()).collect();
        f.debug_struct("Flags").field("file", &self.file).field("given", &given).finish()
    }
}

/// The effective settings, and the layer each came from.
#[derive(Debug)]
pub struct Settings {
    pub config: Config,
    sources: Vec<(String, Source)>,
}

impl Settings {
    /// Where the setting `key` (its file key) came from.
    pub fn source(&self, key: &str) -> Option<&Source> {
        self.sources.iter().find(|(k, _)| k == key).map(|(_, source)| source)
    }

    /// The settings as a configuration file would give them, every key with its value and
    /// where it came from, secrets masked; an unset setting is a comment.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        let values = toml::Table::try_from(&self.config)?;
        let mut out = String::from("# iamd's effective settings (flag > env > file > default), secrets masked\n");
        for arg in declared().get_arguments() {
            let key = arg.get_id().as_str();
            let source = self.source(key).unwrap_or(&Source::Default);
            let masked = if arg.is_hide_env_values_set() { ", masked" } else { "" };
            out.push_str(&match values.get(key) {
                Some(value) => format!("{key} = {value}  # {source}{masked}\n"),
                None => format!("# {key} is unset  # {source}\n"),
            });
        }
        Ok(out)
    }
}

/// The layer a setting's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Flag,
    /// The variable's name.
    Env(String),
    /// The configuration file's path.
    File(PathBuf),
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag => f.write_str("flag"),
            Source::Env(var) => write!(f, "env {var}"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A setting that cannot be read, or a configuration file that cannot. Each names the flag,
/// variable or file key, and the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file `{}`: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the configuration file `{place}` is not valid TOML: {message}")]
    Syntax { place: String, message: String },
    #[error("unknown setting `{key}` in `{}`; the settings are {known}", path.display())]
    UnknownKey { path: PathBuf, key: String, known: String },
    #[error("`{key}` in `{}`: expected {expected}, found {found}", path.display())]
    WrongType { path: PathBuf, key: String, expected: &'static str, found: &'static str },
    #[error("{origin}: invalid value{value}: {reason}")]
    Invalid { origin: String, value: String, reason: String },
    #[error("{} must be set too, as the other settings given require", .0.join(", "))]
    Missing(Vec<String>),
    #[error("the settings do not fit together: {0}")]
    Inconsistent(String),
}

/// A secret setting: the bootstrap token, a database URL (which may hold a password).
/// `Debug` only says that one is set, so a printed `Config` (a log line, a panic) never
/// shows it; nor does a serialized one.
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

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(MASK)
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

const MASK: &str = "***";

/// The settings as `Config` declares them. (Building them reads the environment into clap's
/// own `env` values, which nothing here uses.)
fn declared() -> Command {
    Config::augment_args(Command::new("iamd"))
}

/// `arg` as the flag layer parses it: its environment variable moves into the help, where
/// clap would have shown it, and its `requires` go, as other layers may meet them.
fn flag_layer_only(arg: Arg) -> Arg {
    let Some(var) = arg.get_env().map(|var| var.to_string_lossy().into_owned()) else { return arg };
    let help = arg.get_help().map(|help| format!("{help} [env: {var}]"));
    let long_help = arg.get_long_help().map(|help| format!("{help}\n\n[env: {var}]"));
    let mut arg = without_env(arg).requires(Resettable::Reset);
    if let Some(help) = help {
        arg = arg.help(help);
    }
    if let Some(long_help) = long_help {
        arg = arg.long_help(long_help);
    }
    arg
}

fn without_env(arg: Arg) -> Arg {
    arg.env(Resettable::Reset)
}

/// `--name=value`: the `=` keeps a value that starts with `-` a value.
fn flag(arg: &Arg, value: &OsStr) -> OsString {
    let mut flag = OsString::from(format!("--{}=", arg.get_long().unwrap_or(arg.get_id().as_str())));
    flag.push(value);
    flag
}

/// Parses one setting's values alone, so that a bad one is reported with the layer it came
/// from.
fn check(arg: &Arg, values: &[OsString]) -> Result<(), clap::Error> {
    let alone = Command::new("iamd").arg(without_env(arg.clone()).requires(Resettable::Reset));
    let argv = std::iter::once(OsString::from("iamd")).chain(values.iter().map(|value| flag(arg, value)));
    alone.try_get_matches_from(argv).map(drop)
}

fn invalid(origin: String, arg: &Arg, error: &clap::Error) -> ConfigError {
    let reason = reason(error);
    let value = match error.get(ContextKind::InvalidValue) {
        _ if arg.is_hide_env_values_set() => String::new(),
        // Our own parsers quote the value already.
        Some(ContextValue::String(value)) if !reason.contains(value.as_str()) => format!(" `{value}`"),
        _ => String::new(),
    };
    ConfigError::Invalid { origin, value, reason }
}

/// What clap found wrong with a value, without its rendering, which names the flag.
fn reason(error: &clap::Error) -> String {
    if let Some(cause) = std::error::Error::source(error) {
        return cause.to_string();
    }
    match error.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(valid)) => format!("expected {}", valid.join(" or ")),
        _ => error.kind().to_string(),
    }
}

/// A rule between settings that the layers together break, such as the OIDC settings that
/// need one another.
fn inconsistent(error: clap::Error) -> ConfigError {
    match (error.kind(), error.get(ContextKind::InvalidArg)) {
        (ErrorKind::MissingRequiredArgument, Some(ContextValue::Strings(missing))) => {
            let declared = declared();
            let key = |usage: &String| {
                let long = usage.split(' ').next().unwrap_or_default().trim_start_matches('-');
                let arg = declared.get_arguments().find(|arg| arg.get_long() == Some(long));
                format!("`{}`", arg.map_or(long, |arg| arg.get_id().as_str()))
            };
            ConfigError::Missing(missing.iter().map(key).collect())
        }
        _ => ConfigError::Inconsistent(reason(&error)),
    }
}

/// A configuration file, read.
struct File {
    path: PathBuf,
    table: toml::Table,
}

fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    text.parse::<toml::Table>().map_err(|e| {
        let place = match e.span() {
            Some(span) => {
                format!("{}:{}", path.display(), text.get(..span.start).unwrap_or_default().matches('\n').count() + 1)
            }
            None => path.display().to_string(),
        };
        ConfigError::Syntax { place, message: e.message().trim_end().to_owned() }
    })
}

impl File {
    fn check_keys(&self, declared: &Command) -> Result<(), ConfigError> {
        let known = |key: &str| declared.get_arguments().any(|arg| arg.get_id() == key);
        match self.table.keys().find(|key| !known(key)) {
            Some(key) => Err(ConfigError::UnknownKey {
                path: self.path.clone(),
                key: key.clone(),
                known: declared.get_arguments().map(|arg| arg.get_id().as_str()).collect::<Vec<_>>().join(", "),
            }),
            None => Ok(()),
        }
    }

    /// `value` as the text its flag would carry: a string, an integer or a boolean as
    /// written; for a setting that takes several, a list item by item.
    fn values(&self, arg: &Arg, value: &toml::Value) -> Result<Vec<OsString>, ConfigError> {
        let many = matches!(arg.get_action(), ArgAction::Append);
        let values = match value {
            toml::Value::Array(items) if many && !items.is_empty() => items.iter().map(scalar).collect(),
            value => scalar(value).map(|value| vec![value]),
        };
        values.ok_or_else(|| ConfigError::WrongType {
            path: self.path.clone(),
            key: arg.get_id().to_string(),
            expected: if many {
                "a string or a non-empty list of strings"
            } else {
                "a string, an integer or a boolean"
            },
            found: value.type_str(),
        })
    }
}

fn scalar(value: &toml::Value) -> Option<OsString> {
    match value {
        toml::Value::String(text) => Some(text.into()),
        toml::Value::Integer(n) => Some(n.to_string().into()),
        toml::Value::Boolean(b) => Some(b.to_string().into()),
        toml::Value::Float(_) | toml::Value::Datetime(_) | toml::Value::Array(_) | toml::Value::Table(_) => None,
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

/// A duration as `parse_duration` reads it, in its largest whole unit.
fn duration_text<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    let ms = duration.as_millis();
    let text = match ms {
        0 => "0s".to_owned(),
        _ if ms.is_multiple_of(60_000) => format!("{}m", ms / 60_000),
        _ if ms.is_multiple_of(1000) => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    };
    serializer.serialize_str(&text)
}

/// The server and database a database URL names, never its password (nor its other
/// parameters, which may hold one).
fn masked_url<S: Serializer>(url: &Option<Secret>, serializer: S) -> Result<S::Ok, S::Error> {
    match url.as_ref().map(|url| url.expose().parse::<tokio_postgres::Config>()) {
        None => serializer.serialize_none(),
        Some(Ok(config)) => serializer.serialize_str(&database_target(&config)),
        Some(Err(_)) => serializer.serialize_str(MASK),
    }
}

/// `postgres://user@host:port/dbname`: where a database URL connects, without the password
/// (for the store's log lines and `iamd config`).
pub(crate) fn database_target(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            let port = config.get_ports().get(i).or(config.get_ports().first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    let user = config.get_user().map(|user| format!("{user}@")).unwrap_or_default();
    let dbname = config.get_dbname().or(config.get_user()).unwrap_or_default();
    format!("postgres://{user}{}/{dbname}", hosts.join(","))
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
    use std::collections::HashMap;

    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        flags: Flags,
    }

    /// The settings from `args` and the environment `env`, never the process's.
    fn resolve(args: &[&str], env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env: HashMap<String, OsString> = env.iter().map(|(k, v)| ((*k).to_owned(), OsString::from(v))).collect();
        let flags = Cli::try_parse_from(std::iter::once("iamd").chain(args.iter().copied())).unwrap().flags;
        flags.resolve(|var| env.get(var).cloned())
    }

    fn file(dir: &tempfile::TempDir, text: &str) -> String {
        let path = dir.path().join("iamd.toml");
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    fn error(args: &[&str], env: &[(&str, &str)]) -> String {
        resolve(args, env).unwrap_err().to_string()
    }

    #[test]
    fn each_layer_wins_over_the_ones_below() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, "listen = \"10.0.0.1:1\"\nconsistency_wait = \"3s\"\n");
        let path = path.as_str();
        let env = [("IAMD_LISTEN", "10.0.0.2:2"), ("IAMD_CONSISTENCY_WAIT", "4s")];
        let flag = ["--config", path, "--listen", "10.0.0.3:3", "--consistency-wait", "5s"];

        let default = resolve(&[], &[]).unwrap();
        let from_file = resolve(&["--config", path], &[]).unwrap();
        let from_env = resolve(&["--config", path], &env).unwrap();
        let from_flag = resolve(&flag, &env).unwrap();
        let layers = [(&default, "127.0.0.1:8080", 2), (&from_file, "10.0.0.1:1", 3), (&from_env, "10.0.0.2:2", 4)];
        for (settings, listen, wait) in layers.into_iter().chain([(&from_flag, "10.0.0.3:3", 5)]) {
            assert_eq!(settings.config.listen.to_string(), listen);
            assert_eq!(settings.config.consistency_wait, Duration::from_secs(wait));
        }
        let sources = [&default, &from_file, &from_env, &from_flag].map(|s| s.source("listen").unwrap().clone());
        let file_source = Source::File(PathBuf::from(path));
        assert_eq!(sources, [Source::Default, file_source, Source::Env("IAMD_LISTEN".into()), Source::Flag]);
    }

    #[test]
    fn the_file_is_named_by_flag_or_by_env_and_the_flag_wins() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = (file(&a, "max_body_bytes = 1\n"), file(&b, "max_body_bytes = 2\n"));
        assert_eq!(resolve(&[], &[("IAMD_CONFIG", &a)]).unwrap().config.limits.max_body_bytes, 1);
        assert_eq!(resolve(&["--config", &b], &[("IAMD_CONFIG", &a)]).unwrap().config.limits.max_body_bytes, 2);
    }

    #[test]
    fn a_list_is_an_array_or_a_comma_separated_string_on_every_layer() {
        let dir = tempfile::tempdir().unwrap();
        let origins = |settings: Settings| settings.config.cors_allowed_origins;
        let two = ["https://a", "https://b"];
        let path = file(&dir, "cors_allowed_origins = [\"https://a\", \"https://b\"]\n");
        assert_eq!(origins(resolve(&["--config", &path], &[]).unwrap()), two);
        let path = file(&dir, "cors_allowed_origins = \"https://a,https://b\"\n");
        assert_eq!(origins(resolve(&["--config", &path], &[]).unwrap()), two);
        assert_eq!(origins(resolve(&[], &[("IAMD_CORS_ALLOWED_ORIGINS", "https://a,https://b")]).unwrap()), two);
        assert_eq!(origins(resolve(&["--cors-allowed-origins", "https://a,https://b"], &[]).unwrap()), two);
    }

    #[test]
    fn metrics_is_on_unless_turned_off() {
        let dir = tempfile::tempdir().unwrap();
        assert!(resolve(&[], &[]).unwrap().config.metrics);
        assert!(!resolve(&["--config", &file(&dir, "metrics = false\n")], &[]).unwrap().config.metrics);
        assert!(!resolve(&[], &[("IAMD_METRICS", "false")]).unwrap().config.metrics);
        assert!(!resolve(&["--metrics", "false"], &[]).unwrap().config.metrics);
    }

    #[test]
    fn rules_between_settings_hold_across_layers() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, "oidc_audience = \"iamd\"\noidc_jwks = \"jwks.json\"\n");
        let settings = resolve(&["--config", &path, "--oidc-issuer", "https://idp"], &[]).unwrap();
        assert_eq!(settings.config.oidc_settings().unwrap().audience, "iamd");

        let missing = error(&["--oidc-issuer", "https://idp"], &[("IAMD_OIDC_AUDIENCE", "iamd")]);
        assert!(missing.contains("`oidc_jwks`") && !missing.contains("`oidc_audience`"), "{missing}");
    }

    #[test]
    fn the_printout_masks_secrets_and_names_every_key_and_its_layer() {
        let env = [("IAMD_DATABASE_URL", "postgres://iamd:s3cret@db.example:6432/iam?password=s3cret")];
        let settings = resolve(&["--bootstrap-token", "t0ken-value"], &env).unwrap();
        let printed = settings.to_toml().unwrap();
        assert!(!printed.contains("s3cret") && !printed.contains("t0ken-value"), "{printed}");
        assert!(
            printed.contains("database_url = \"postgres://iamd@db.example:6432/iam\"  # env IAMD_DATABASE_URL, masked")
        );
        assert!(printed.contains("bootstrap_token = \"***\"  # flag, masked"), "{printed}");
        assert!(printed.contains("# oidc_issuer is unset  # default"), "{printed}");
        for arg in declared().get_arguments() {
            assert!(printed.contains(&format!("{} ", arg.get_id())), "{} missing from\n{printed}", arg.get_id());
        }
        let unparsable = resolve(&[], &[("IAMD_DATABASE_URL", "not a url s3cret")]).unwrap().to_toml().unwrap();
        assert!(unparsable.contains("database_url = \"***\""), "{unparsable}");
    }

    #[test]
    fn the_printout_read_back_as_a_file_gives_the_same_settings() {
        let dir = tempfile::tempdir().unwrap();
        let args = ["--max-body-bytes", "77", "--follow-interval", "1500ms", "--shutdown-grace", "120s"];
        let args = [&args[..], &["--public-url", "https://iam.example.com/", "--metrics", "false"]].concat();
        for settings in [resolve(&[], &[]).unwrap(), resolve(&args, &[]).unwrap()] {
            let path = file(&dir, &settings.to_toml().unwrap());
            let again = resolve(&["--config", &path], &[]).unwrap();
            assert_eq!(format!("{:?}", again.config), format!("{:?}", settings.config));
        }
    }

    #[test]
    fn for_data_dir_is_the_defaults_on_a_free_port() {
        let dir = PathBuf::from("/var/lib/iamd");
        let defaults = resolve(&["--listen", "127.0.0.1:0", "--data-dir", "/var/lib/iamd"], &[]).unwrap().config;
        assert_eq!(format!("{:?}", Config::for_data_dir(dir)), format!("{defaults:?}"));
    }

    #[test]
    fn help_shows_every_setting_with_its_variable() {
        let help = Cli::command().render_long_help().to_string();
        for arg in declared().get_arguments() {
            let (long, var) = (arg.get_long().unwrap(), arg.get_env().unwrap().to_str().unwrap());
            assert!(help.contains(&format!("--{long} ")) && help.contains(&format!("[env: {var}]")), "{long}:\n{help}");
        }
        assert!(help.contains("[env: IAMD_CONFIG]") && help.contains("[default: 127.0.0.1:8080]"), "{help}");
    }

    #[test]
    fn file_errors_name_the_file_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("lisen = \"127.0.0.1:1\"\n", "unknown setting `lisen`"),
            ("listen = { port = 1 }\n", "`listen` in"),
            ("data_dir = [\"a\"]\n", "`data_dir` in"),
            ("max_body_bytes = 1.5\n", "`max_body_bytes` in"),
            ("max_body_bytes = \"lots\"\n", "`max_body_bytes` in"),
            ("cors_allowed_origins = []\n", "`cors_allowed_origins` in"),
            ("listen = 8080\n", "`listen` in"),
            ("consistency_wait = \"2h\"\n", "`consistency_wait` in"),
            ("public_url = \"ftp://iam\"\n", "`public_url` in"),
            ("metrics = \"yes\"\n", "`metrics` in"),
            ("\n\nlisten = \n", "iamd.toml:3"),
        ];
        for (text, names) in cases {
            let path = file(&dir, text);
            let message = error(&["--config", &path], &[]);
            assert!(message.contains(names) && message.contains(&path), "{text}: {message}");
        }
        let missing = dir.path().join("missing.toml").display().to_string();
        assert!(error(&["--config", &missing], &[]).contains(&missing));
    }

    #[test]
    fn env_errors_name_the_variable() {
        let cases = [
            ("IAMD_LISTEN", "localhost"),
            ("IAMD_MAX_BODY_BYTES", "-1"),
            ("IAMD_FOLLOW_INTERVAL", "fast"),
            ("IAMD_PUBLIC_URL", "https://iam?x=1"),
            ("IAMD_METRICS", "on"),
        ];
        for (var, value) in cases {
            let message = error(&[], &[(var, value)]);
            assert!(message.starts_with(&format!("environment variable `{var}`: invalid value")), "{message}");
            assert!(message.contains(value), "{message}");
        }
    }

    #[test]
    fn the_database_url_is_optional_and_never_printed() {
        assert_eq!(resolve(&[], &[]).unwrap().config.database_url, None);
        let url = "postgres://iamd:s3cret@db:5432/iam";
        let postgres = resolve(&[], &[("IAMD_DATABASE_URL", url)]).unwrap();
        assert_eq!(postgres.config.database_url.as_ref().map(Secret::expose), Some(url));
        let printed = format!("{postgres:?}");
        assert!(printed.contains("Secret(..)") && !printed.contains("s3cret"), "{printed}");
    }

    #[test]
    fn the_bootstrap_token_is_never_printed() {
        let flags = Cli::try_parse_from(["iamd", "--bootstrap-token", "t0ken-value"]).unwrap().flags;
        let config = flags.resolve(|_| None).unwrap().config;
        assert_eq!(config.bootstrap_token.as_ref().map(Secret::expose), Some("t0ken-value"));
        let printed = format!("{config:?} {config:#?} {flags:?}");
        assert!(printed.contains("Secret(..)") && !printed.contains("t0ken-value"), "{printed}");
    }
}
