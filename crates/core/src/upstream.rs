//! What can go wrong when we call an upstream (Personalize, DynamoDB), in the terms the
//! contract needs: retry later (503), or fix the deployment (500), or fix the request (400).
//! The AWS adapters sort the SDK's errors into it (`personalize_braze_aws::errors`).
//!
//! A 4xx caused by a value the caller sent must be a 400, never a 500 and an ERROR log. Where a
//! caller's value reaches an upstream:
//! - Personalize (runtime and events) checks what it cannot take (filter values, context keys,
//!   event fields) and answers `InvalidInputException`: `Rejected`, a 400.
//! - DynamoDB sees only item ids as keys. The API refuses ids that are empty or longer than
//!   Personalize's 256 characters (at most 1 KiB, inside DynamoDB's 2 KiB key limit), and the
//!   catalog drops duplicates and any id no key can be before asking. So its
//!   `ValidationException` means the table does not match (wrong key schema): `Misconfigured`.

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
    /// True when the caller should retry later (503 + Retry-After).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            UpstreamError::Throttled(_) | UpstreamError::Unavailable(_) | UpstreamError::TimedOut
        )
    }
}
