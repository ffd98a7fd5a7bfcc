//! Pushing to a Prometheus Pushgateway, for jobs too short-lived to scrape.
//!
//! `PUT {gateway}/metrics/job/<job>/<label>/<value>...` replaces every metric
//! of the group with the registry's current exposition (text 0.0.4). Values
//! that are empty or contain `/` travel base64url-encoded (`<label>@base64/<value>`),
//! as the Pushgateway specifies. Connection errors, timeouts, `429` and `5xx`
//! are retried with exponential backoff and jitter (a `Retry-After` no longer
//! than the longest backoff is honoured); other `4xx` are not (the gateway
//! said the push itself is wrong). Requests go through the shared
//! `beluga-http-client`: pooled connections, bounded timeouts, and at most
//! 64 KiB of any answer read.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use beluga_http_client::http::header::{self, HeaderValue};
use beluga_http_client::http::Method;
use beluga_http_client::{
    ClientConfig, Endpoint, EndpointError, HttpClient, Outcome, RetryError, RetryPolicy,
};
use beluga_metrics::{Format, Registry};
use bytes::Bytes;
use http_body_util::Full;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::auth::Auth;

/// Why a push failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushError {
    /// The gateway URL is not `http://host:port[/prefix]`, or the job name
    /// is empty.
    InvalidUrl {
        /// The URL as given, with any credentials in it replaced by `***`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Every attempt failed to connect, timed out or got a `429`/`5xx`.
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The gateway refused the push with a `4xx`; retrying would not help.
    Rejected {
        /// The status code.
        status: u16,
        /// The start of the gateway's explanation.
        body: String,
    },
    /// The deadline of [`PeriodicPush::shutdown`] passed before the final
    /// push was delivered.
    DeadlineExceeded {
        /// Attempts the final push made.
        attempts: u32,
    },
    /// No tokio runtime could be found or built for the request, or
    /// [`PushGateway::push_blocking`] was called inside one.
    Runtime(String),
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::InvalidUrl { url, reason } => write!(
                f,
                "invalid Pushgateway URL {url:?}: {reason}; use http://host:port"
            ),
            PushError::Unavailable { attempts, last } => write!(
                f,
                "Pushgateway unreachable after {attempts} attempt(s), last: {last}; check that it runs \
                 and the URL is right"
            ),
            PushError::Rejected { status, body } => write!(
                f,
                "Pushgateway refused the push ({status}): {body}"
            ),
            PushError::DeadlineExceeded { attempts } => write!(
                f,
                "the final push was not delivered before the shutdown deadline ({attempts} attempt(s))"
            ),
            PushError::Runtime(e) => write!(f, "cannot run the push: {e}"),
        }
    }
}

impl std::error::Error for PushError {}

/// Configures a [`PushGateway`].
#[derive(Clone)]
pub struct PushGatewayBuilder {
    url: String,
    job: String,
    grouping: Vec<(String, String)>,
    registry: Option<Registry>,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    max_backoff: Duration,
    auth: Option<Auth>,
}

impl fmt::Debug for PushGatewayBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushGatewayBuilder")
            .field("url", &Endpoint::redact(&self.url))
            .field("job", &self.job)
            .field("grouping", &self.grouping)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl PushGatewayBuilder {
    /// Adds a grouping label (`instance`, `batch`, ...) to the push URL.
    pub fn grouping_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.grouping.push((name.into(), value.into()));
        self
    }

    /// The registry to push (default: [`Registry::global`]).
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Per-attempt timeout, connect to response (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Retries after the first attempt (default 3).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// First backoff between attempts, doubled each time (default 200 ms).
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// Longest wait between attempts (default 5 s); a gateway whose
    /// `Retry-After` asks for longer gets no further attempt.
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max;
        self
    }

    /// Credentials for a gateway behind authentication.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Checks the URL and builds the client.
    ///
    /// ```
    /// use beluga_exporter_prometheus::{PushError, PushGateway};
    /// let bad = PushGateway::builder("https://gw:9091", "nightly").build();
    /// assert!(matches!(bad, Err(PushError::InvalidUrl { .. })));
    /// let ok = PushGateway::builder("http://127.0.0.1:9091", "nightly").grouping_label("instance", "a/b").build()?;
    /// assert_eq!(ok.path(), "/metrics/job/nightly/instance@base64/YS9i");
    /// # Ok::<(), PushError>(())
    /// ```
    pub fn build(self) -> Result<PushGateway, PushError> {
        let invalid = |reason: String| PushError::InvalidUrl {
            url: Endpoint::redact(&self.url),
            reason,
        };
        let gateway =
            Endpoint::parse(&self.url).map_err(|e: EndpointError| invalid(e.to_string()))?;
        if self.job.is_empty() {
            return Err(invalid("the job name is empty".into()));
        }
        let mut path = format!("{}/metrics/{}", gateway.path(), segment("job", &self.job));
        for (name, value) in &self.grouping {
            path.push('/');
            path.push_str(&segment(name, value));
        }
        let auth =
            match &self.auth {
                Some(auth) => Some(auth.sensitive_header_value().ok_or_else(|| {
                    invalid("the credentials cannot be an HTTP header value".into())
                })?),
                None => None,
            };
        Ok(PushGateway {
            client: HttpClient::new(ClientConfig::default().request_timeout(self.timeout)),
            endpoint: gateway.with_path(&path),
            registry: self.registry.unwrap_or_else(|| Registry::global().clone()),
            retry: RetryPolicy::new(self.backoff, self.max_backoff)
                .max_attempts(self.retries.saturating_add(1)),
            auth,
        })
    }
}

/// `name/value`, or `name@base64/<base64url>` when the value needs it.
fn segment(name: &str, value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
    if plain {
        format!("{name}/{value}")
    } else {
        // The gateway spells an empty value as a lone `=`.
        let encoded = base64::engine::general_purpose::URL_SAFE.encode(value.as_bytes());
        format!(
            "{name}@base64/{}",
            if encoded.is_empty() { "=" } else { &encoded }
        )
    }
}

/// A Pushgateway client for one grouping key. Its `Debug` never shows the
/// credentials (the header value is marked sensitive).
#[derive(Debug, Clone)]
pub struct PushGateway {
    client: HttpClient,
    /// The gateway with this grouping key's full path.
    endpoint: Endpoint,
    registry: Registry,
    retry: RetryPolicy,
    auth: Option<HeaderValue>,
}

impl PushGateway {
    /// Starts configuring a client for the gateway at `url`
    /// (`http://host:port`) and job name `job`.
    pub fn builder(url: impl Into<String>, job: impl Into<String>) -> PushGatewayBuilder {
        PushGatewayBuilder {
            url: url.into(),
            job: job.into(),
            grouping: Vec::new(),
            registry: None,
            timeout: Duration::from_secs(5),
            retries: 3,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            auth: None,
        }
    }

    /// The request path of this grouping key.
    pub fn path(&self) -> &str {
        self.endpoint.path()
    }

    /// Replaces the group's metrics on the gateway with the registry's
    /// current values (`PUT`).
    pub async fn push(&self) -> Result<(), PushError> {
        self.push_before(None).await
    }

    async fn push_before(&self, deadline: Option<Instant>) -> Result<(), PushError> {
        let body = Bytes::from(self.registry.encode(Format::PrometheusText));
        self.send(Method::PUT, body, deadline).await
    }

    /// Deletes the group from the gateway (`DELETE`).
    pub async fn delete(&self) -> Result<(), PushError> {
        self.send(Method::DELETE, Bytes::new(), None).await
    }

    /// [`push`](Self::push) for programs without tokio: runs it on a
    /// short-lived single-threaded runtime. Inside a tokio runtime (where
    /// blocking would stall its workers) it returns [`PushError::Runtime`];
    /// use `push().await` there.
    ///
    /// ```
    /// # use beluga_exporter_prometheus::{PushError, PushGateway};
    /// let gateway = PushGateway::builder("http://127.0.0.1:9", "job").build()?;
    /// let inside = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let result = inside.block_on(async { gateway.push_blocking() });
    /// assert!(matches!(result, Err(PushError::Runtime(_))));
    /// # Ok::<(), PushError>(())
    /// ```
    pub fn push_blocking(&self) -> Result<(), PushError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(PushError::Runtime(
                "push_blocking() was called inside a tokio runtime; use push().await there".into(),
            ));
        }
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PushError::Runtime(e.to_string()))?
            .block_on(self.push())
    }

    /// Pushes every `interval` on the current tokio runtime until
    /// [`PeriodicPush::shutdown`], which makes a final push within its
    /// deadline. Failed pushes are counted ([`PeriodicPush::failures`]) and
    /// retried next interval.
    pub fn spawn_periodic(self, interval: Duration) -> PeriodicPush {
        let (stop, mut stopped) = watch::channel(None::<Instant>);
        let failures = Arc::new(AtomicU64::new(0));
        let counted = failures.clone();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {
                        // A push stuck on a hanging gateway must not hold up
                        // the final push: shutdown abandons it.
                        tokio::select! {
                            result = self.push() => if result.is_err() {
                                counted.fetch_add(1, Ordering::Relaxed);
                            },
                            _ = stopped.changed() => break,
                        }
                    }
                    _ = stopped.changed() => break,
                }
            }
            let deadline = *stopped.borrow();
            self.push_before(deadline).await
        });
        PeriodicPush {
            stop,
            task,
            failures,
        }
    }

    async fn send(
        &self,
        method: Method,
        body: Bytes,
        deadline: Option<Instant>,
    ) -> Result<(), PushError> {
        let result = self
            .retry
            .run(deadline, |left| {
                self.attempt(method.clone(), body.clone(), left)
            })
            .await;
        result.map_err(|error| match error {
            RetryError::Fatal { error, .. } => error,
            RetryError::GaveUp { attempts, last } => PushError::Unavailable { attempts, last },
            RetryError::DeadlineExceeded { attempts, .. } => {
                PushError::DeadlineExceeded { attempts }
            }
        })
    }

    async fn attempt(
        &self,
        method: Method,
        body: Bytes,
        left: Option<Duration>,
    ) -> Outcome<(), PushError> {
        let mut request = self
            .endpoint
            .request(method)
            .header(header::CONTENT_TYPE, Format::PrometheusText.content_type())
            .header(header::CONTENT_LENGTH, body.len());
        if let Some(auth) = &self.auth {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        let request = match request.body(Full::new(body)) {
            Ok(request) => request,
            Err(e) => {
                return Outcome::Fatal(PushError::Rejected {
                    status: 0,
                    body: e.to_string(),
                })
            }
        };
        let response = match self.client.send_with_time_left(request, left).await {
            Ok(response) => response,
            Err(no_answer) => return no_answer.into(),
        };
        match beluga_http_client::push_outcome(&response) {
            Outcome::Done(()) => Outcome::Done(()),
            Outcome::Retry { why, retry_after } => Outcome::Retry { why, retry_after },
            Outcome::Fatal((status, body)) => Outcome::Fatal(PushError::Rejected {
                status: status.as_u16(),
                body,
            }),
        }
    }
}

/// A background task pushing periodically; see [`PushGateway::spawn_periodic`].
#[derive(Debug)]
pub struct PeriodicPush {
    stop: watch::Sender<Option<Instant>>,
    task: tokio::task::JoinHandle<Result<(), PushError>>,
    failures: Arc<AtomicU64>,
}

impl PeriodicPush {
    /// Periodic pushes that failed so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Stops the schedule and makes one final push, returning its result
    /// within `deadline`: a periodic push still waiting on a hanging gateway
    /// is abandoned, and the final push's attempts and backoff never run
    /// past the deadline ([`PushError::DeadlineExceeded`] then).
    pub async fn shutdown(self, deadline: Duration) -> Result<(), PushError> {
        let deadline = Instant::now() + deadline;
        let _ = self.stop.send(Some(deadline));
        let abort = self.task.abort_handle();
        // The final push bounds itself; the margin only covers scheduling.
        match tokio::time::timeout_at(deadline + Duration::from_millis(250), self.task).await {
            Ok(joined) => joined.map_err(|e| PushError::Runtime(e.to_string()))?,
            Err(_) => {
                abort.abort();
                Err(PushError::DeadlineExceeded { attempts: 0 })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_segments() {
        assert_eq!(segment("job", "nightly-etl"), "job/nightly-etl");
        assert_eq!(segment("instance", ""), "instance@base64/=");
        assert_eq!(segment("path", "/var/tmp"), "path@base64/L3Zhci90bXA=");
    }

    #[test]
    fn urls() {
        let gw = PushGateway::builder("http://gw.local/prefix/", "j")
            .build()
            .unwrap();
        assert_eq!(
            (gw.endpoint.authority(), gw.path()),
            ("gw.local:80", "/prefix/metrics/job/j")
        );
        for bad in ["http://gw:99999", "http://u:p@gw:1", "http://gw:1/?q=1"] {
            assert!(PushGateway::builder(bad, "j").build().is_err(), "{bad}");
        }
        assert!(PushGateway::builder("http://", "j").build().is_err());
        assert!(PushGateway::builder("http://h:1", "").build().is_err());
    }
}
