//! The error edge of the JSON side: a `tonic::Status` becomes the grpc-gateway HTTP status
//! and a `google.rpc.Status` JSON body. Nothing on the REST side answers an error any other
//! way, so every failure, the transcoder's own included, has the same shape.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Map, Value, json};
use tonic::Code;
use tonic_types::{ErrorDetail, StatusExt};

use crate::body::{ResponseBody, full};

/// grpc-gateway v2 `HTTPStatusFromCode`.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        // Deliberately not 412, as grpc-gateway.
        Code::FailedPrecondition => StatusCode::BAD_REQUEST,
        Code::Aborted => StatusCode::CONFLICT,
        Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
    }
}

/// The `google.rpc.Status` JSON of a status, with its details as typed `Any` objects.
pub fn status_json(status: &tonic::Status) -> Value {
    let details: Vec<Value> = status.get_error_details_vec().into_iter().map(detail_json).collect();
    json!({
        "code": status.code() as i32,
        "message": status.message(),
        "details": details,
    })
}

/// An error answer with the table's status, or `http` where the transcoder itself decided
/// (404, 405, 413, 415 are outside the table).
pub fn error_response(status: &tonic::Status, http: Option<StatusCode>) -> Response<ResponseBody> {
    let code = http.unwrap_or_else(|| http_status(status.code()));
    let body = serde_json::to_vec(&status_json(status))
        .unwrap_or_else(|_| br#"{"code":13,"message":"error could not be written as JSON","details":[]}"#.to_vec());
    let mut response = Response::new(full(Bytes::from(body)));
    *response.status_mut() = code;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if status.code() == Code::Unauthenticated {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

const TYPE_PREFIX: &str = "type.googleapis.com/google.rpc.";

fn detail_json(detail: ErrorDetail) -> Value {
    match detail {
        ErrorDetail::ErrorInfo(info) => {
            let metadata: Map<String, Value> = info.metadata.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            json!({
                "@type": format!("{TYPE_PREFIX}ErrorInfo"),
                "reason": info.reason,
                "domain": info.domain,
                "metadata": metadata,
            })
        }
        ErrorDetail::BadRequest(bad) => {
            let violations: Vec<Value> = bad
                .field_violations
                .into_iter()
                .map(|v| json!({"field": v.field, "description": v.description}))
                .collect();
            json!({
                "@type": format!("{TYPE_PREFIX}BadRequest"),
                "fieldViolations": violations,
            })
        }
        ErrorDetail::PreconditionFailure(failure) => {
            let violations: Vec<Value> = failure
                .violations
                .into_iter()
                .map(|v| json!({"type": v.r#type, "subject": v.subject, "description": v.description}))
                .collect();
            json!({
                "@type": format!("{TYPE_PREFIX}PreconditionFailure"),
                "violations": violations,
            })
        }
        ErrorDetail::RetryInfo(retry) => {
            let delay = retry.retry_delay.map(|d| format!("{}s", d.as_secs_f64())).unwrap_or_default();
            json!({"@type": format!("{TYPE_PREFIX}RetryInfo"), "retryDelay": delay})
        }
        ErrorDetail::ResourceInfo(info) => json!({
            "@type": format!("{TYPE_PREFIX}ResourceInfo"),
            "resourceType": info.resource_type,
            "resourceName": info.resource_name,
            "owner": info.owner,
            "description": info.description,
        }),
        ErrorDetail::RequestInfo(info) => json!({
            "@type": format!("{TYPE_PREFIX}RequestInfo"),
            "requestId": info.request_id,
            "servingData": info.serving_data,
        }),
        // iamd attaches none of the others; they still keep their type name.
        other => json!({"@type": format!("{TYPE_PREFIX}{}", detail_name(&other))}),
    }
}

fn detail_name(detail: &ErrorDetail) -> &'static str {
    match detail {
        ErrorDetail::DebugInfo(_) => "DebugInfo",
        ErrorDetail::QuotaFailure(_) => "QuotaFailure",
        ErrorDetail::Help(_) => "Help",
        ErrorDetail::LocalizedMessage(_) => "LocalizedMessage",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::{ErrorDetails, FieldViolation};

    #[test]
    fn every_code_maps_as_grpc_gateway() {
        let table = [
            (Code::Ok, 200),
            (Code::Cancelled, 499),
            (Code::Unknown, 500),
            (Code::InvalidArgument, 400),
            (Code::DeadlineExceeded, 504),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::PermissionDenied, 403),
            (Code::ResourceExhausted, 429),
            (Code::FailedPrecondition, 400),
            (Code::Aborted, 409),
            (Code::OutOfRange, 400),
            (Code::Unimplemented, 501),
            (Code::Internal, 500),
            (Code::Unavailable, 503),
            (Code::DataLoss, 500),
            (Code::Unauthenticated, 401),
        ];
        for (code, http) in table {
            assert_eq!(http_status(code).as_u16(), http, "{code:?}");
        }
    }

    #[test]
    fn body_is_google_rpc_status_with_typed_details() {
        let mut details = ErrorDetails::with_error_info("NAME_TAKEN", "iamd", [("name".to_owned(), "acme".to_owned())]);
        details.set_bad_request(vec![FieldViolation::new("name", "is taken")]);
        let status = tonic::Status::with_error_details(Code::AlreadyExists, "the name `acme` is taken", details);
        let body = status_json(&status);
        assert_eq!(body["code"], 6);
        assert_eq!(body["message"], "the name `acme` is taken");
        assert_eq!(body["details"][0]["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
        assert_eq!(body["details"][0]["reason"], "NAME_TAKEN");
        assert_eq!(body["details"][0]["metadata"]["name"], "acme");
        assert_eq!(body["details"][1]["@type"], "type.googleapis.com/google.rpc.BadRequest");
        assert_eq!(body["details"][1]["fieldViolations"][0]["field"], "name");
    }

    #[test]
    fn unauthenticated_sets_www_authenticate() {
        let response = error_response(&tonic::Status::unauthenticated("no token"), None);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }
}
