//! One OTLP/HTTP request, retried as the OTLP specification says: with
//! exponential backoff and jitter on 429, 502, 503, 504, connection errors and
//! timeouts, honouring `Retry-After`, never on other statuses, never past
//! the caller's deadline.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::config::Target;
use crate::ExportError;

pub(crate) struct Transport {
    pub(crate) target: Target,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) gzip: bool,
    pub(crate) timeout: Duration,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
}

/// What the collector said about a delivered request.
pub(crate) struct Delivered {
    pub(crate) rejected_data_points: i64,
    pub(crate) message: String,
}

enum Failure {
    /// Worth another attempt, after `retry_after` if the server said so.
    Retry {
        why: String,
        retry_after: Option<Duration>,
    },
    /// Final.
    Fatal(ExportError),
}

/// A factor in [0.5, 1.0) so that many exporters do not retry in lockstep.
fn jitter() -> f64 {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    0.5 + (random % 1000) as f64 / 2000.0
}

fn retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    let seconds: u64 = value?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

impl Transport {
    /// Sends `body` (already protobuf-encoded and, if configured, gzipped)
    /// until it is delivered, refused, or `deadline` passes.
    pub(crate) async fn send(
        &self,
        body: Bytes,
        deadline: Instant,
    ) -> Result<Delivered, ExportError> {
        let mut backoff = self.initial_backoff;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ExportError::DeadlineExceeded {
                    attempts: attempts - 1,
                });
            }
            let outcome =
                tokio::time::timeout(self.timeout.min(left), self.attempt(body.clone())).await;
            let (why, retry_after) = match outcome {
                Ok(Ok(delivered)) => return Ok(delivered),
                Ok(Err(Failure::Fatal(error))) => return Err(error),
                Ok(Err(Failure::Retry { why, retry_after })) => (why, retry_after),
                Err(_) => (
                    format!("no answer within {:?}", self.timeout.min(left)),
                    None,
                ),
            };
            let wait = retry_after.unwrap_or_else(|| backoff.mul_f64(jitter()));
            backoff = (backoff * 2).min(self.max_backoff);
            if Instant::now() + wait >= deadline {
                return Err(ExportError::Unreachable {
                    attempts,
                    last: why,
                });
            }
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(&self, body: Bytes) -> Result<Delivered, Failure> {
        let retry = |why: String| Failure::Retry {
            why,
            retry_after: None,
        };
        let stream = TcpStream::connect(&self.target.authority)
            .await
            .map_err(|e| retry(format!("connect to {}: {e}", self.target.authority)))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| retry(format!("handshake: {e}")))?;
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(&self.target.path)
            .header(header::HOST, &self.target.authority)
            .header(header::CONTENT_TYPE, "application/x-protobuf")
            .header(
                header::USER_AGENT,
                concat!("beluga-metrics/", env!("CARGO_PKG_VERSION")),
            );
        if self.gzip {
            request = request.header(header::CONTENT_ENCODING, "gzip");
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| Failure::Fatal(ExportError::InvalidConfig(e.to_string())))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| retry(format!("request: {e}")))?;
        let status = response.status();
        let wait = retry_after(response.headers().get(header::RETRY_AFTER));
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| retry(format!("reading the response: {e}")))?
            .to_bytes();
        if status.is_success() {
            let decoded = ExportMetricsServiceResponse::decode(body).unwrap_or_default();
            let partial = decoded.partial_success.unwrap_or_default();
            return Ok(Delivered {
                rejected_data_points: partial.rejected_data_points,
                message: partial.error_message,
            });
        }
        let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
        match status {
            StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => Err(Failure::Retry {
                why: format!("{status}"),
                retry_after: wait,
            }),
            _ => Err(Failure::Fatal(ExportError::Rejected {
                status: status.as_u16(),
                message: text,
            })),
        }
    }
}
