//! # beluga-http-client
//!
//! The one HTTP client path that beluga-metrics' push exporters share
//! (Pushgateway pushes, OTLP/HTTP exports, and the remote-write and gRPC
//! exporters to come), so connection reuse, timeouts, response limits, URL
//! checks and retries are written and tested once:
//!
//! * [`Endpoint`]: an `http://host:port/path` URL checked once, at build
//!   time, with [`http::Uri`]: no user info, no query or fragment, a port that
//!   fits in 16 bits. A bad URL is an [`EndpointError`] the builder returns,
//!   not an "unreachable" error an hour later.
//! * [`HttpClient`]: hyper-util's pooled client (HTTP/1.1 keep-alive), a
//!   bounded connect timeout, a per-request timeout that covers reading the
//!   answer, and a cap on how much of a response body is read (the rest is
//!   dropped with the connection), so a peer that answers with an endless
//!   body costs at most [`ClientConfig::max_response_body`] bytes.
//! * [`RetryPolicy`]: exponential backoff with jitter, `Retry-After`, an
//!   attempt limit and a deadline; each exporter says which answers are worth
//!   another attempt.
//!
//! Core stays free of tokio and hyper: only exporters depend on this crate.
//!
//! ```
//! use beluga_http_client::{ClientConfig, Endpoint, HttpClient};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), beluga_http_client::EndpointError> {
//! let endpoint = Endpoint::parse("http://127.0.0.1:9/v1/metrics")?;
//! assert_eq!(endpoint.authority(), "127.0.0.1:9");
//! let client = HttpClient::new(ClientConfig::default());
//! let request = endpoint.post(bytes::Bytes::from_static(b"x")).body(Default::default());
//! // Nothing listens on port 9: a connection error, reported, never a panic.
//! assert!(client.send(request.unwrap()).await.is_err());
//! # Ok(()) }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod client;
mod endpoint;
mod retry;

pub use client::{ClientConfig, HttpClient, Response, SendError};
pub use endpoint::{Endpoint, EndpointError};
pub use hyper::http;
pub use retry::{push_outcome, retry_after, Outcome, RetryError, RetryPolicy};

/// A header value marked sensitive, so that hyper never indexes it and its
/// `Debug` prints `Sensitive` instead of the credentials. `None` when the
/// text cannot be a header value (a control character, say).
///
/// ```
/// let value = beluga_http_client::sensitive_header("Bearer s3cret").unwrap();
/// assert!(value.is_sensitive());
/// assert!(!format!("{value:?}").contains("s3cret"));
/// ```
pub fn sensitive_header(text: &str) -> Option<http::HeaderValue> {
    let mut value = http::HeaderValue::from_str(text).ok()?;
    value.set_sensitive(true);
    Some(value)
}
