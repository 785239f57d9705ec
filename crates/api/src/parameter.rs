//! The one error a caller's value gets: which parameter, and what is allowed instead.

/// A parameter the caller got wrong; the message names it and says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidParameter {
    pub parameter: String,
    pub message: String,
}

pub fn invalid(parameter: impl Into<String>, message: impl Into<String>) -> InvalidParameter {
    InvalidParameter {
        parameter: parameter.into(),
        message: message.into(),
    }
}
