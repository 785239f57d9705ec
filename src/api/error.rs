//! Every error a caller can see, and the one place that decides its status and body.
//! Bodies never carry upstream detail: no ARN, no AWS request id, no stack trace.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::query::InvalidParameter;
use crate::service::ServiceError;
use crate::upstream::UpstreamError;

/// Seconds a caller should wait after a 503; Braze's `:retry` backs off on its own too.
const RETRY_AFTER_SECONDS: &str = "1";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid parameter {}: {}", .0.parameter, .0.message)]
    InvalidParameter(InvalidParameter),
    #[error("no such route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error(transparent)]
    Service(#[from] ServiceError),
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameter: Option<&'a str>,
}

impl ApiError {
    /// Status, machine-readable code and the message a caller may see.
    fn describe(&self) -> (StatusCode, &'static str, &str) {
        let upstream = match self {
            ApiError::InvalidParameter(p) => {
                return (StatusCode::BAD_REQUEST, "invalid_parameter", &p.message);
            }
            ApiError::NotFound => {
                return (
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "No such route. Try GET /recommendations?user_id=USER_ID",
                );
            }
            ApiError::MethodNotAllowed => {
                return (
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "Use GET for this route.",
                );
            }
            ApiError::Service(e) => e.upstream(),
        };
        match upstream {
            UpstreamError::Throttled(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_throttled",
                "Recommendations are being throttled; retry shortly.",
            ),
            UpstreamError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_unavailable",
                "Recommendations are temporarily unavailable; retry shortly.",
            ),
            UpstreamError::TimedOut => (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_timeout",
                "Recommendations took too long; retry shortly.",
            ),
            UpstreamError::Rejected(_) => (
                StatusCode::BAD_REQUEST,
                "rejected_by_recommender",
                "The recommender rejected the request; check the filter_ and context_ values against the filter.",
            ),
            UpstreamError::Misconfigured(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "misconfigured",
                "The service is misconfigured; its operators have been told in the logs.",
            ),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.describe().0
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.describe();
        let parameter = match &self {
            ApiError::InvalidParameter(p) => Some(p.parameter.as_str()),
            _ => None,
        };
        let body = Body {
            error: Detail {
                code,
                message,
                parameter,
            },
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (status, json).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}
