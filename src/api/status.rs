//! The single error edge: an `AppError` becomes a `tonic::Status` with its code, a
//! `google.rpc.ErrorInfo` carrying the stable reason, and `google.rpc.BadRequest` field
//! violations for bad input. The JSON side derives its HTTP status from the code alone.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::app::{AppError, ErrorKind};

impl From<AppError> for Status {
    fn from(error: AppError) -> Self {
        let code = match error.kind {
            ErrorKind::InvalidArgument => Code::InvalidArgument,
            ErrorKind::Unauthenticated => Code::Unauthenticated,
            ErrorKind::NotFound => Code::NotFound,
            ErrorKind::AlreadyExists => Code::AlreadyExists,
            ErrorKind::PermissionDenied => Code::PermissionDenied,
            ErrorKind::FailedPrecondition => Code::FailedPrecondition,
            ErrorKind::Aborted => Code::Aborted,
            ErrorKind::OutOfRange => Code::OutOfRange,
            ErrorKind::ResourceExhausted => Code::ResourceExhausted,
            ErrorKind::Unavailable => Code::Unavailable,
            ErrorKind::Internal => Code::Internal,
        };
        let mut details = ErrorDetails::with_error_info(error.reason, crate::ERROR_DOMAIN, []);
        for (field, description) in error.violations {
            details.add_bad_request_violation(field, description);
        }
        Status::with_error_details(code, error.message, details)
    }
}
