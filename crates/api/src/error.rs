//! Every error a caller can see, and the one place that decides its status and body.
//! Bodies never carry upstream detail: no ARN, no AWS request id, no stack trace.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::query::InvalidParameter;
use personalize_braze_core::service::{PartlyRecorded, ServiceError};
use personalize_braze_core::upstream::UpstreamError;

/// Seconds a caller should wait after a 503; Braze's `:retry` backs off on its own too.
const RETRY_AFTER_SECONDS: &str = "1";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid parameter {}: {}", .0.parameter, .0.message)]
    InvalidParameter(#[from] InvalidParameter),
    #[error("no such route")]
    NotFound,
    /// The route exists, but this deployment does not serve it; `setting` would enable it.
    #[error("{route} is not enabled")]
    NotEnabled {
        route: &'static str,
        setting: &'static str,
    },
    /// The methods the route takes, as an `Allow` header lists them.
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    #[error("body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// A POST body not declared as `Content-Type: application/json`.
    #[error("body is not declared as JSON")]
    NotJson,
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// `POST /events` where some events were recorded and others not: the answer says how many
    /// were, and the status is the failure's, so Braze retries the body when that may help.
    #[error(transparent)]
    PartlyRecorded(#[from] PartlyRecorded),
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
    /// How many events were recorded, on a `POST /events` that failed for some.
    #[serde(skip_serializing_if = "Option::is_none")]
    accepted: Option<usize>,
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
    fn describe(&self) -> (StatusCode, &'static str, Cow<'_, str>) {
        let upstream = match self {
            ApiError::InvalidParameter(p) => {
                return (
                    StatusCode::BAD_REQUEST,
                    "invalid_parameter",
                    Cow::Borrowed(&p.message),
                );
            }
            ApiError::NotFound => {
                return (
                    StatusCode::NOT_FOUND,
                    "not_found",
                    Cow::Borrowed(
                        "No such route. Try GET /recommendations?user_id=USER_ID; the others are \
                         /related-items, /rankings and /events.",
                    ),
                );
            }
            ApiError::NotEnabled { route, setting } => {
                return (
                    StatusCode::NOT_FOUND,
                    "not_enabled",
                    Cow::Owned(format!(
                        "{route} is not enabled in this deployment; set {setting} to enable it."
                    )),
                );
            }
            ApiError::MethodNotAllowed(methods) => {
                return (
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    Cow::Owned(format!(
                        "Use {} for this route.",
                        methods.replace(", ", " or ")
                    )),
                );
            }
            ApiError::BodyTooLarge { limit } => {
                return (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    Cow::Owned(format!("The body must be at most {limit} bytes.")),
                );
            }
            ApiError::NotJson => {
                return (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    Cow::Borrowed(
                        "Send the body as JSON, with the header Content-Type: application/json.",
                    ),
                );
            }
            ApiError::Service(e) => e.upstream(),
            ApiError::PartlyRecorded(e) => e.error.upstream(),
        };
        let (status, code, message) = match upstream {
            UpstreamError::Full(message) => {
                return (
                    StatusCode::INSUFFICIENT_STORAGE,
                    "recommender_full",
                    Cow::Owned(format!("{message}.")),
                );
            }
            UpstreamError::Throttled(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_throttled",
                "The recommender is throttling requests; retry shortly.",
            ),
            UpstreamError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_unavailable",
                "The recommender is temporarily unavailable; retry shortly.",
            ),
            UpstreamError::TimedOut => (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_timeout",
                "The recommender took too long; retry shortly.",
            ),
            UpstreamError::Rejected(_) => (
                StatusCode::BAD_REQUEST,
                "rejected_by_recommender",
                "The recommender rejected the request; check the filter_ and context_ values against the filter, or the event fields.",
            ),
            UpstreamError::Misconfigured(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "misconfigured",
                "The service is misconfigured; its operators have been told in the logs.",
            ),
        };
        (status, code, Cow::Borrowed(message))
    }
}

impl ApiError {
    /// The upstream failure behind this error, if one is.
    pub(super) fn upstream(&self) -> Option<&UpstreamError> {
        match self {
            ApiError::Service(e) => Some(e.upstream()),
            ApiError::PartlyRecorded(e) => Some(e.error.upstream()),
            _ => None,
        }
    }

    /// Logs what the caller must not see (upstream detail), at a level that matches who must act.
    pub(super) fn into_response_logged(self) -> Response {
        let service = match &self {
            ApiError::Service(e) => e,
            ApiError::PartlyRecorded(e) => &e.error,
            _ => return self.into_response(),
        };
        match service.upstream() {
            e if e.is_transient() => tracing::warn!(error = %self, "upstream unavailable"),
            UpstreamError::Rejected(_) => {
                tracing::info!(error = %self, "upstream rejected the request")
            }
            UpstreamError::Full(_) => tracing::warn!(error = %self, "recommender full"),
            _ => tracing::error!(error = %self, "deployment misconfigured"),
        }
        self.into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.describe();
        let parameter = match &self {
            ApiError::InvalidParameter(p) => Some(p.parameter.as_str()),
            _ => None,
        };
        let accepted = match &self {
            ApiError::PartlyRecorded(e) => Some(e.accepted),
            _ => None,
        };
        let body = Body {
            error: Detail {
                code,
                message: &message,
                parameter,
            },
            accepted,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (status, json).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let ApiError::MethodNotAllowed(methods) = &self {
            headers.insert(header::ALLOW, HeaderValue::from_static(methods));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}
