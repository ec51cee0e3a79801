//! The use-case error: a kind (which becomes the gRPC code), a stable reason, a readable
//! message and, for bad input, the fields at fault. `api::status` is the only place that
//! turns it into a `tonic::Status`.

use crate::model::ModelError;
use crate::store::{REFERRERS_NAMED, StoreError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidArgument,
    /// No credential, or one that is not valid.
    Unauthenticated,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    FailedPrecondition,
    Aborted,
    /// A position past anything the store holds (a consistency token no write answered).
    OutOfRange,
    /// A resource the request needs has run out: the store's volume is full.
    ResourceExhausted,
    Unavailable,
    Internal,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    pub kind: ErrorKind,
    /// Stable, UPPER_SNAKE: clients branch on it, so it never changes once shipped.
    pub reason: &'static str,
    pub message: String,
    /// (field, description) pairs for `google.rpc.BadRequest`.
    pub violations: Vec<(String, String)>,
    /// The replica's state decided it, so a fresher state might not: the write loop reads
    /// the objects the plan read again before it answers.
    pub by_state: bool,
}

impl AppError {
    pub fn new(kind: ErrorKind, reason: &'static str, message: impl Into<String>) -> Self {
        let by_state = matches!(
            kind,
            ErrorKind::NotFound | ErrorKind::FailedPrecondition | ErrorKind::Aborted | ErrorKind::AlreadyExists
        );
        AppError { kind, reason, message: message.into(), violations: Vec::new(), by_state }
    }

    /// Bad input in one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        AppError {
            kind: ErrorKind::InvalidArgument,
            reason: "INVALID_ARGUMENT",
            violations: vec![(field.to_owned(), message.clone())],
            message,
            by_state: false,
        }
    }

    /// The same error, decided by the state (an input naming an object that does not exist).
    pub fn by_state(mut self) -> Self {
        self.by_state = true;
        self
    }

    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = reason;
        self
    }

    pub fn not_found(reason: &'static str, message: impl Into<String>) -> Self {
        AppError::new(ErrorKind::NotFound, reason, message)
    }

    /// Whether the state this replica holds decided the error, so a fresher state might not.
    pub fn may_depend_on_state(&self) -> bool {
        self.by_state
    }
}

impl From<ModelError> for AppError {
    fn from(error: ModelError) -> Self {
        match error {
            ModelError::StillReferenced { target, by } => {
                still_referenced(target.kind, &target.id, by.len(), by.iter().map(|key| (key.kind, &*key.id)))
            }
            other => {
                tracing::error!(error = %other, "the object model refused a write");
                AppError::new(ErrorKind::Internal, "INTERNAL", "an internal error occurred")
            }
        }
    }
}

/// A kind's name in messages: its stored name with spaces.
pub(crate) fn label(kind: &str) -> String {
    kind.replace('_', " ")
}

/// `an organization`, `a domain policy`.
fn with_article(label: &str) -> String {
    let vowel = label.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {label}", if vowel { "an" } else { "a" })
}

/// A unique name the store refused; `reason` is the kind's own, when the registry has one.
pub(crate) fn name_taken(reason: &'static str, kind: &str, name: &str) -> AppError {
    let what = with_article(&label(kind));
    AppError::new(ErrorKind::AlreadyExists, reason, format!("{what} named `{name}` already exists"))
}

/// A delete refused for its referrers: `count` of them, the first few by name.
fn still_referenced<'a>(
    kind: &str,
    id: &str,
    count: usize,
    named: impl Iterator<Item = (&'a str, &'a str)>,
) -> AppError {
    let mut names: Vec<String> =
        named.take(REFERRERS_NAMED as usize).map(|(kind, id)| format!("{} `{id}`", label(kind))).collect();
    if count > names.len() {
        names.push(format!("{} more", count - names.len()));
    }
    let message = format!("the {} `{id}` is still in use by {}", label(kind), names.join(", "));
    AppError::new(ErrorKind::FailedPrecondition, "STILL_REFERENCED", message)
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { kind, id, .. } => AppError::new(
                ErrorKind::Aborted,
                "CONCURRENT_MODIFICATION",
                format!("the {kind} `{id}` was changed by another request; read it again and retry"),
            ),
            StoreError::NameTaken { kind, name } => name_taken("NAME_TAKEN", &kind, &name),
            StoreError::Referenced { kind, id, by } => {
                still_referenced(&kind, &id, by.len(), by.iter().map(|key| (key.kind.as_str(), key.id.as_str())))
            }
            StoreError::Unavailable(message) => {
                tracing::warn!(%message, "store unavailable");
                AppError::new(ErrorKind::Unavailable, "STORE_UNAVAILABLE", "the store is unavailable; retry later")
            }
            StoreError::Full(message) => {
                tracing::error!(%message, "the store's volume is full: writes are refused, reads go on");
                AppError::new(
                    ErrorKind::ResourceExhausted,
                    "STORE_FULL",
                    "the store's volume is full, so nothing was written; retry once space is freed",
                )
            }
            StoreError::ReadOnly(message) => {
                tracing::error!(%message, "the store's volume is read-only: writes are refused, reads go on");
                AppError::new(
                    ErrorKind::Unavailable,
                    "STORE_READ_ONLY",
                    "the store's volume is read-only, so nothing was written; retry once it is writable again",
                )
            }
            StoreError::Internal(message) => {
                tracing::error!(%message, "store failure");
                AppError::new(ErrorKind::Internal, "INTERNAL", "an internal error occurred")
            }
        }
    }
}
