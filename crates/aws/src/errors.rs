//! The SDK's errors, sorted into the ports' [`UpstreamError`] by what the caller should do.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use personalize_braze_core::upstream::UpstreamError;

/// Sorts any AWS SDK error by what the caller should do about it. Error codes are
/// checked as strings because throttling is not a modelled error in every service.
pub fn upstream_error<E>(err: &SdkError<E, HttpResponse>) -> UpstreamError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let detail = DisplayErrorContext(err).to_string();
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            UpstreamError::Unavailable(detail)
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            classify(err.code(), status, detail)
        }
        // Construction failures are our own bug or configuration, never the caller's.
        _ => UpstreamError::Misconfigured(detail),
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
