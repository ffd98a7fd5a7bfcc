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
        RetryError::GaveUp { attempts, last } => ExportError::Unreachable { attempts, last },
        RetryError::DeadlineExceeded { attempts, .. } => ExportError::DeadlineExceeded { attempts },
    }
}
