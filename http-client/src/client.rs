//! The pooled HTTP/1.1 client: keep-alive connections, bounded connect and
//! request time, bounded response bodies.

use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::http::{HeaderMap, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// How an [`HttpClient`] connects, waits and reads.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Longest wait for a TCP connection (default 5 s).
    pub connect_timeout: Duration,
    /// Longest wait for one whole request: connect, send, and read the
    /// answer (default 10 s). [`HttpClient::send_within`] overrides it.
    pub request_timeout: Duration,
    /// Most bytes of a response body read (default 64 KiB): enough for an
    /// error message or an OTLP partial-success answer. The rest is dropped
    /// with the connection and [`Response::truncated`] says so.
    pub max_response_body: usize,
    /// How long an idle pooled connection is kept (default 30 s).
    pub idle_timeout: Duration,
    /// Most idle connections kept per host (default 4).
    pub max_idle_per_host: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_response_body: 64 * 1024,
            idle_timeout: Duration::from_secs(30),
            max_idle_per_host: 4,
        }
    }
}

impl ClientConfig {
    /// The default configuration with another request timeout.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let config = beluga_http_client::ClientConfig::default().request_timeout(Duration::from_secs(2));
    /// assert_eq!(config.request_timeout, Duration::from_secs(2));
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The configuration with another cap on response bodies.
    ///
    /// ```
    /// let config = beluga_http_client::ClientConfig::default().max_response_body(1024);
    /// assert_eq!(config.max_response_body, 1024);
    /// ```
    pub fn max_response_body(mut self, bytes: usize) -> Self {
        self.max_response_body = bytes;
        self
    }
}

/// An answer, with at most [`ClientConfig::max_response_body`] bytes of body.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The start of the body.
    pub body: Bytes,
    /// Whether the body was longer than the cap and cut.
    pub truncated: bool,
}

impl Response {
    /// Up to `chars` characters of the body as text, for an error message.
    ///
    /// ```
    /// # use beluga_http_client::Response;
    /// # let response = Response { status: beluga_http_client::http::StatusCode::BAD_REQUEST,
    /// #     headers: Default::default(), body: bytes::Bytes::from_static(b"bad label"), truncated: false };
    /// assert_eq!(response.body_text(3), "bad");
    /// ```
    pub fn body_text(&self, chars: usize) -> String {
        String::from_utf8_lossy(&self.body)
            .chars()
            .take(chars)
            .collect()
    }
}

/// Why one request got no answer. Every kind is worth another attempt;
/// which statuses are is up to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// No connection could be made.
    Connect(String),
    /// The connection failed while sending or waiting for the head.
    Request(String),
    /// Reading the body failed.
    Body(String),
    /// No whole answer within the timeout.
    Timeout(Duration),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Connect(why) => write!(f, "connect: {why}"),
            SendError::Request(why) => write!(f, "request: {why}"),
            SendError::Body(why) => write!(f, "reading the response: {why}"),
            SendError::Timeout(after) => write!(f, "no answer within {after:?}"),
        }
    }
}

impl std::error::Error for SendError {}

/// A pooled HTTP/1.1 client. Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
    config: ClientConfig,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client with its own connection pool. Requests must be sent from
    /// inside a tokio runtime.
    pub fn new(config: ClientConfig) -> HttpClient {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.idle_timeout)
            .pool_max_idle_per_host(config.max_idle_per_host)
            .build(connector);
        HttpClient { client, config }
    }

    /// The configuration this client was made with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Sends `request` and reads the answer within the configured request
    /// timeout.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<Response, SendError> {
        self.send_within(request, self.config.request_timeout).await
    }

    /// Sends `request` within the configured request timeout, cut to `left`
    /// when a deadline leaves less (what [`RetryPolicy::run`](crate::RetryPolicy::run)
    /// hands each attempt).
    pub async fn send_with_time_left(
        &self,
        request: Request<Full<Bytes>>,
        left: Option<Duration>,
    ) -> Result<Response, SendError> {
        let timeout = self.config.request_timeout;
        self.send_within(request, left.map_or(timeout, |left| timeout.min(left)))
            .await
    }

    /// Sends `request` and reads the answer within `timeout`.
    pub async fn send_within(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Response, SendError> {
        tokio::time::timeout(timeout, self.exchange(request))
            .await
            .map_err(|_| SendError::Timeout(timeout))?
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<Response, SendError> {
        let response = self.client.request(request).await.map_err(|e| {
            // The legacy client's Display is terse; its source says why.
            let why = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| e.to_string());
            if e.is_connect() {
                SendError::Connect(why)
            } else {
                SendError::Request(why)
            }
        })?;
        let (parts, mut body) = response.into_parts();
        let cap = self.config.max_response_body;
        let mut read = BytesMut::new();
        let mut truncated = false;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| SendError::Body(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            let room = cap - read.len();
            if data.len() > room {
                read.extend_from_slice(&data[..room]);
                truncated = true;
                // Dropping the body closes the connection instead of
                // reading (or pooling) the rest.
                break;
            }
            read.extend_from_slice(&data);
        }
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body: read.freeze(),
            truncated,
        })
    }
}
