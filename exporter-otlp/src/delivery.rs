//! What became of one export, over either transport: what the collector
//! said about a delivered request, and what the retry loop's verdict means
//! for the caller. Both transports use it; neither imports the other.

use beluga_http_client::RetryError;

use crate::ExportError;

/// What the collector said about a delivered request.
pub(crate) struct Delivered {
    pub(crate) rejected_data_points: i64,
    pub(crate) message: String,
}

/// What the retry loop's verdict means for an export.
pub(crate) fn export_error(error: RetryError<ExportError>) -> ExportError {
    match error {
        RetryError::Fatal { error, .. } => error,
        RetryError::GaveUp { attempts, last } => ExportError::Unreachable {
            attempts,
            last: last.into(),
        },
        RetryError::DeadlineExceeded { attempts, .. } => ExportError::DeadlineExceeded { attempts },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_failure_is_the_errors_source() {
        let error = export_error(RetryError::GaveUp {
            attempts: 3,
            last: "503 Service Unavailable".into(),
        });
        let source = std::error::Error::source(&error).expect("a source");
        assert_eq!(source.to_string(), "503 Service Unavailable");
        assert!(error.to_string().contains("after 3 attempt(s)"));
        // What happens to the data is the caller's to say: a final export
        // has no next one, so the error promises no retry.
        assert!(!error.to_string().contains("retr"), "{error}");
    }
}
