//! `ApiError`: every failure an API handler returns, rendered as the catalogue's
//! `{type, code, message, fix}` body with the entry's status. The services' errors map to it
//! one to one: their problems as they are, their internal failures as 5xx.
//!
//! A 5xx body carries only an error id; the cause's whole chain is logged once, under that id.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use byos_domain::{ErrorChain, ErrorCode, Problem};
use byos_service::ServiceError;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error type, such as `Invalid Parameter`.
    #[serde(rename = "type")]
    pub error_type: &'static str,
    /// The catalogue's stable code, such as `missing-bucket-name`.
    pub code: &'static str,
    pub message: String,
    /// What to do about it.
    pub fix: &'static str,
}

/// A failed request: a catalogue problem, and for internal errors the cause to log.
#[derive(Debug)]
pub struct ApiError {
    problem: Problem,
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An internal error: the client sees an id, the log gets the cause.
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ApiError {
        ApiError { problem: Problem::internal("pending"), cause: Some(cause.into()) }
    }

    pub fn problem(&self) -> &Problem {
        &self.problem
    }
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> ApiError {
        ApiError { problem, cause: None }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        match e {
            ServiceError::Problem(problem) => problem.into(),
            ServiceError::Internal(cause) => ApiError::internal(cause),
        }
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> ApiError {
        Problem::from(code).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match self.cause {
            Some(cause) => {
                let error_id = uuid::Uuid::new_v4().simple().to_string();
                tracing::error!(error_id, error = %ErrorChain(cause.as_ref()), "internal error");
                Problem::internal(&error_id)
            }
            None => self.problem,
        };
        problem_response(&problem)
    }
}

/// The response for a problem: its entry's status and the catalogue body.
pub(crate) fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.entry().status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(ErrorBody::from(problem))).into_response()
}

impl From<&Problem> for ErrorBody {
    fn from(problem: &Problem) -> ErrorBody {
        let entry = problem.entry();
        ErrorBody {
            error_type: entry.error_type,
            code: entry.code,
            message: problem.message().to_owned(),
            fix: entry.fix,
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        match rejection {
            JsonRejection::MissingJsonContentType(e) => {
                Problem::new(ErrorCode::UnsupportedMediaType, &[("message", &e.body_text())]).into()
            }
            e if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                // The limit is the router's; the message names it.
                Problem::new(ErrorCode::PayloadTooLarge, &[("limit", &crate::BODY_LIMIT_BYTES.to_string())]).into()
            }
            JsonRejection::JsonDataError(e) => Problem::invalid_request(&serde_detail(&e.body_text())).into(),
            JsonRejection::JsonSyntaxError(e) => Problem::invalid_request(&serde_detail(&e.body_text())).into(),
            e => Problem::invalid_request(&e.body_text()).into(),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        Problem::invalid_request(&format!("path: {}", rejection.body_text())).into()
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        Problem::invalid_request(&format!("query: {}", rejection.body_text())).into()
    }
}

/// axum's JSON messages start with "Failed to deserialize the JSON body into the target type: ";
/// the part after it names the field and the rule.
fn serde_detail(text: &str) -> String {
    let detail = text.split_once("target type: ").map_or(text, |(_, rest)| rest);
    let detail = text.strip_prefix("Failed to parse the request body as JSON: ").unwrap_or(detail);
    format!("body: {detail}")
}

/// The answer for a path no route matches.
pub(crate) async fn route_not_found(uri: Uri) -> ApiError {
    Problem::new(ErrorCode::RouteNotFound, &[("path", uri.path())]).into()
}

/// The answer for a method a route does not take.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    Problem::new(ErrorCode::MethodNotAllowed, &[("method", method.as_str()), ("path", uri.path())]).into()
}
