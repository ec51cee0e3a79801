//! The use-case error: a kind (which becomes the gRPC code), a stable reason, a readable
//! message and, for bad input, the fields at fault. `api::status` is the only place that
//! turns it into a `tonic::Status`.

use crate::model::ModelError;
use crate::store::StoreError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    Aborted,
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
}

impl AppError {
    pub fn new(kind: ErrorKind, reason: &'static str, message: impl Into<String>) -> Self {
        AppError { kind, reason, message: message.into(), violations: Vec::new() }
    }

    /// Bad input in one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        AppError {
            kind: ErrorKind::InvalidArgument,
            reason: "INVALID_ARGUMENT",
            violations: vec![(field.to_owned(), message.clone())],
            message,
        }
    }

    pub fn not_found(reason: &'static str, message: impl Into<String>) -> Self {
        AppError::new(ErrorKind::NotFound, reason, message)
    }

    /// Whether the state this replica holds decided the error, so a fresher state might not.
    pub fn may_depend_on_state(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::NotFound | ErrorKind::FailedPrecondition | ErrorKind::Aborted | ErrorKind::AlreadyExists
        )
    }
}

impl From<ModelError> for AppError {
    fn from(error: ModelError) -> Self {
        match error {
            ModelError::StillReferenced { target, by } => {
                let mut names: Vec<String> =
                    by.iter().take(10).map(|key| format!("{} `{}`", label(key.kind), key.id)).collect();
                if by.len() > names.len() {
                    names.push(format!("{} more", by.len() - names.len()));
                }
                AppError::new(
                    ErrorKind::FailedPrecondition,
                    "STILL_REFERENCED",
                    format!("the {} `{}` is still in use by {}", label(target.kind), target.id, names.join(", ")),
                )
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

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { kind, id, .. } => AppError::new(
                ErrorKind::Aborted,
                "CONCURRENT_MODIFICATION",
                format!("the {kind} `{id}` was changed by another request; read it again and retry"),
            ),
            StoreError::NameTaken { kind, name } => AppError::new(
                ErrorKind::AlreadyExists,
                "NAME_TAKEN",
                format!("{} named `{name}` already exists", super::with_article(&label(&kind))),
            ),
            StoreError::Referenced { kind, id, by } => {
                let names: Vec<String> = by.iter().map(|key| format!("{} `{}`", label(&key.kind), key.id)).collect();
                AppError::new(
                    ErrorKind::FailedPrecondition,
                    "STILL_REFERENCED",
                    format!("the {} `{id}` is still in use by {}", label(&kind), names.join(", ")),
                )
            }
            StoreError::Unavailable(message) => {
                tracing::warn!(%message, "store unavailable");
                AppError::new(ErrorKind::Unavailable, "STORE_UNAVAILABLE", "the store is unavailable; retry later")
            }
            StoreError::Internal(message) => {
                tracing::error!(%message, "store failure");
                AppError::new(ErrorKind::Internal, "INTERNAL", "an internal error occurred")
            }
        }
    }
}
