//! One OTLP/HTTP export, retried as the OTLP specification says: with
//! exponential backoff and jitter on 429, 502, 503, 504, connection errors and
//! timeouts, honouring `Retry-After`, never on other statuses, never past
//! the caller's deadline. Connections, timeouts, the response-size cap and
//! the retry loop are the shared `beluga-http-client`'s.

use std::time::Duration;

use beluga_http_client::http::header::{self, HeaderName, HeaderValue};
use beluga_http_client::http::StatusCode;
use beluga_http_client::{retry_after, Endpoint, HttpClient, Outcome, RetryError, RetryPolicy};
use bytes::Bytes;
use http_body_util::Full;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;
use tokio::time::Instant;

use crate::ExportError;

pub(crate) struct Transport {
    pub(crate) client: HttpClient,
    pub(crate) endpoint: Endpoint,
    /// User headers; values marked sensitive (they often carry API keys).
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) gzip: bool,
    pub(crate) retry: RetryPolicy,
}

/// What the collector said about a delivered request.
pub(crate) struct Delivered {
    pub(crate) rejected_data_points: i64,
    pub(crate) message: String,
}

impl Transport {
    /// Sends `body` (already protobuf-encoded and, if configured, gzipped)
    /// until it is delivered, refused, or `deadline` passes.
    pub(crate) async fn send(
        &self,
        body: Bytes,
        deadline: Instant,
    ) -> Result<Delivered, ExportError> {
        let result = self
            .retry
            .run(Some(deadline), |left| self.attempt(body.clone(), left))
            .await;
        result.map_err(|error| match error {
            RetryError::Fatal { error, .. } => error,
            RetryError::GaveUp { attempts, last } => ExportError::Unreachable { attempts, last },
            RetryError::DeadlineExceeded { attempts, .. } => {
                ExportError::DeadlineExceeded { attempts }
            }
        })
    }

    async fn attempt(
        &self,
        body: Bytes,
        left: Option<Duration>,
    ) -> Outcome<Delivered, ExportError> {
        let mut request = self
            .endpoint
            .post(body.clone())
            .header(header::CONTENT_TYPE, "application/x-protobuf");
        if self.gzip {
            request = request.header(header::CONTENT_ENCODING, "gzip");
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let request = match request.body(Full::new(body)) {
            Ok(request) => request,
            Err(e) => return Outcome::Fatal(ExportError::InvalidConfig(e.to_string())),
        };
        let response = match self.client.send_with_time_left(request, left).await {
            Ok(response) => response,
            Err(no_answer) => return no_answer.into(),
        };
        let status = response.status;
        if status.is_success() {
            // A body cut at the cap, or one that is not a response message,
            // reads as full success: the data was accepted.
            let decoded = ExportMetricsServiceResponse::decode(response.body).unwrap_or_default();
            let partial = decoded.partial_success.unwrap_or_default();
            return Outcome::Done(Delivered {
                rejected_data_points: partial.rejected_data_points,
                message: partial.error_message,
            });
        }
        match status {
            StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => Outcome::Retry {
                why: status.to_string(),
                retry_after: retry_after(&response.headers),
            },
            _ => Outcome::Fatal(ExportError::Rejected {
                status: status.as_u16(),
                message: response.body_text(200),
            }),
        }
    }
}
