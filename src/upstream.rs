//! What can go wrong when we call an upstream (Personalize, DynamoDB), in the terms the
//! contract needs: retry later (503), or fix the deployment (500), or fix the request (400).
//!
//! A 4xx caused by a value the caller sent must be a 400, never a 500 and an ERROR log. Where a
//! caller's value reaches an upstream:
//! - Personalize (runtime and events) checks what it cannot take (filter values, context keys,
//!   event fields) and answers `InvalidInputException`: `Rejected`, a 400.
//! - DynamoDB sees only item ids as keys. The API refuses ids that are empty or longer than
//!   Personalize's 256 characters (at most 1 KiB, inside DynamoDB's 2 KiB key limit), and the
//!   catalog drops duplicates and any id no key can be before asking. So its
//!   `ValidationException` means the table does not match (wrong key schema): `Misconfigured`.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// The error both ports return. The `String` is detail for the logs only; callers never see it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream asked us to slow down (throttling, unprocessed keys that would not drain).
    #[error("throttled: {0}")]
    Throttled(String),
    /// Connection failures, upstream 5xx, attempts that timed out.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The request's time budget ran out before the upstream answered.
    #[error("the request's time budget ran out")]
    TimedOut,
    /// The upstream refused the request's parameters (e.g. a filter missing a value).
    #[error("rejected the request: {0}")]
    Rejected(String),
    /// The deployment is wrong: resource not found, access denied, bad credentials.
    #[error("misconfigured: {0}")]
    Misconfigured(String),
    /// The recommender holds all it may (local mode bounds what `/events` adds). The text is
    /// the service's own, so the caller may see it.
    #[error("full: {0}")]
    Full(String),
}

impl UpstreamError {
    /// Sorts any AWS SDK error by what the caller should do about it. Error codes are
    /// checked as strings because throttling is not a modelled error in every service.
    pub fn from_sdk<E>(err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let detail = DisplayErrorContext(err).to_string();
        match err {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => UpstreamError::Unavailable(detail),
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                classify(err.code(), status, detail)
            }
            // Construction failures are our own bug or configuration, never the caller's.
            _ => UpstreamError::Misconfigured(detail),
        }
    }

    /// True when the caller should retry later (503 + Retry-After).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            UpstreamError::Throttled(_) | UpstreamError::Unavailable(_) | UpstreamError::TimedOut
        )
    }
}

fn classify(code: Option<&str>, status: u16, detail: String) -> UpstreamError {
    match code.unwrap_or_default() {
        "ThrottlingException"
        | "TooManyRequestsException"
        | "ProvisionedThroughputExceededException"
        | "RequestLimitExceeded"
        | "LimitExceededException" => UpstreamError::Throttled(detail),
        "InvalidInputException" => UpstreamError::Rejected(detail),
        "ResourceNotFoundException"
        | "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException"
        | "MissingAuthenticationTokenException" => UpstreamError::Misconfigured(detail),
        _ if status == 429 => UpstreamError::Throttled(detail),
        _ if status >= 500 => UpstreamError::Unavailable(detail),
        // Any other 4xx means we built a request the upstream cannot serve: our deployment's fault.
        _ => UpstreamError::Misconfigured(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_decide_before_status() {
        let kind = |code, status| classify(code, status, String::new());
        assert!(matches!(
            kind(Some("ThrottlingException"), 400),
            UpstreamError::Throttled(_)
        ));
        assert!(matches!(
            kind(Some("ProvisionedThroughputExceededException"), 400),
            UpstreamError::Throttled(_)
        ));
        assert!(matches!(
            kind(Some("InvalidInputException"), 400),
            UpstreamError::Rejected(_)
        ));
        assert!(matches!(
            kind(Some("ResourceNotFoundException"), 404),
            UpstreamError::Misconfigured(_)
        ));
        assert!(matches!(kind(None, 429), UpstreamError::Throttled(_)));
        assert!(matches!(
            kind(Some("InternalServerError"), 500),
            UpstreamError::Unavailable(_)
        ));
        assert!(matches!(kind(None, 503), UpstreamError::Unavailable(_)));
        assert!(matches!(
            kind(Some("Whatever"), 403),
            UpstreamError::Misconfigured(_)
        ));
        // No caller value reaches DynamoDB unchecked: a table that does not match is ours to fix.
        assert!(matches!(
            kind(Some("ValidationException"), 400),
            UpstreamError::Misconfigured(_)
        ));
    }
}
