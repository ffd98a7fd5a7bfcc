//! The monitor's errors and the bounded set of error kinds.

use std::fmt;

use beluga_metrics::{LabelError, RegistryError};

/// Why a monitor call failed. Recording never panics; it returns one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MonitorError {
    /// Registering a metric failed.
    Registry(RegistryError),
    /// Label values did not fit the metric's label names.
    Label(LabelError),
    /// A custom metric was recorded to before it was registered.
    NotRegistered {
        /// The name recorded to.
        name: String,
    },
    /// A custom metric was recorded to as the wrong kind.
    WrongKind {
        /// The metric's name.
        name: String,
        /// What it was registered as.
        registered_as: &'static str,
    },
}

impl fmt::Display for MonitorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MonitorError::Registry(e) => e.fmt(f),
            MonitorError::Label(e) => e.fmt(f),
            MonitorError::NotRegistered { name } => write!(
                f,
                "custom metric {name:?} is not registered; call register_custom_counter or \
                 register_custom_histogram with this name first"
            ),
            MonitorError::WrongKind {
                name,
                registered_as,
            } => write!(
                f,
                "custom metric {name:?} is registered as a {registered_as}; record it with the \
                 matching record_custom_{registered_as} method"
            ),
        }
    }
}

impl std::error::Error for MonitorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MonitorError::Registry(e) => Some(e),
            MonitorError::Label(e) => Some(e),
            _ => None,
        }
    }
}

impl From<RegistryError> for MonitorError {
    fn from(e: RegistryError) -> Self {
        MonitorError::Registry(e)
    }
}

impl From<LabelError> for MonitorError {
    fn from(e: LabelError) -> Self {
        MonitorError::Label(e)
    }
}

/// Common kinds of failure in an agent loop, for the `error_type` label.
///
/// Error labels must come from a bounded set: never put `err.to_string()`
/// in a label (every distinct message would become a series). Use one of
/// these, or a `&'static str` of your own.
///
/// ```
/// use beluga_monitor::ErrorKind;
/// assert_eq!(ErrorKind::RateLimited.as_str(), "rate_limited");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The operation ran out of time.
    Timeout,
    /// The provider refused the call for quota or rate reasons (HTTP 429).
    RateLimited,
    /// The provider or a dependency was unavailable (HTTP 5xx, connection refused).
    Unavailable,
    /// The response could not be parsed or failed validation.
    InvalidResponse,
    /// A tool call failed.
    ToolFailure,
    /// The request was refused as invalid (HTTP 4xx other than 429).
    InvalidRequest,
    /// The operation was cancelled.
    Cancelled,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::InvalidResponse => "invalid_response",
            ErrorKind::ToolFailure => "tool_failure",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Other => "_OTHER",
        }
    }
}

impl From<ErrorKind> for &'static str {
    fn from(kind: ErrorKind) -> Self {
        kind.as_str()
    }
}
