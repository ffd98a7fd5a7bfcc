//! Pushing to a Prometheus Pushgateway, for jobs too short-lived to scrape.
//!
//! `PUT {gateway}/metrics/job/<job>/<label>/<value>...` replaces every metric
//! of the group with the registry's current exposition (text 0.0.4). Values
//! that are empty or contain `/` travel base64url-encoded (`<label>@base64/<value>`),
//! as the Pushgateway specifies. Connection errors, timeouts and `5xx` are
//! retried with exponential backoff; other `4xx` are not (the gateway said
//! the push itself is wrong).

use std::fmt;
use std::time::Duration;

use beluga_metrics::{Format, Registry};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::auth::Auth;

/// Why a push failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushError {
    /// The gateway URL is not `http://host:port[/prefix]`.
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Every attempt failed to connect, timed out or got a `5xx`.
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
    /// No tokio runtime could be found or built for the request.
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
            PushError::Runtime(e) => write!(f, "cannot run the push: {e}"),
        }
    }
}

impl std::error::Error for PushError {}

/// Configures a [`PushGateway`].
#[derive(Debug, Clone)]
pub struct PushGatewayBuilder {
    url: String,
    job: String,
    grouping: Vec<(String, String)>,
    registry: Option<Registry>,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    auth: Option<Auth>,
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
        let invalid = |reason| PushError::InvalidUrl {
            url: self.url.clone(),
            reason,
        };
        let rest = self
            .url
            .strip_prefix("http://")
            .ok_or_else(|| invalid("only http:// is supported"))?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(invalid("no host"));
        }
        let authority = if authority.contains(':') && !authority.ends_with(']') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        if self.job.is_empty() {
            return Err(invalid("the job name is empty"));
        }
        let mut path = format!("{prefix}/metrics/{}", segment("job", &self.job));
        for (name, value) in &self.grouping {
            path.push('/');
            path.push_str(&segment(name, value));
        }
        Ok(PushGateway {
            authority,
            path,
            registry: self.registry.unwrap_or_else(|| Registry::global().clone()),
            timeout: self.timeout,
            retries: self.retries,
            backoff: self.backoff,
            auth: self.auth.map(|a| a.header_value()),
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
        let encoded = crate::base64::url_safe(value.as_bytes());
        format!(
            "{name}@base64/{}",
            if encoded.is_empty() { "=" } else { &encoded }
        )
    }
}

/// A Pushgateway client for one grouping key.
#[derive(Debug, Clone)]
pub struct PushGateway {
    authority: String,
    path: String,
    registry: Registry,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    auth: Option<String>,
}

enum Attempt {
    Retry(String),
    Fail(PushError),
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
            auth: None,
        }
    }

    /// The request path of this grouping key.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Replaces the group's metrics on the gateway with the registry's
    /// current values (`PUT`).
    pub async fn push(&self) -> Result<(), PushError> {
        let body = Bytes::from(self.registry.encode(Format::PrometheusText));
        self.send(Method::PUT, body).await
    }

    /// Deletes the group from the gateway (`DELETE`).
    pub async fn delete(&self) -> Result<(), PushError> {
        self.send(Method::DELETE, Bytes::new()).await
    }

    /// [`push`](Self::push) for programs without tokio: runs it on a
    /// short-lived single-threaded runtime.
    pub fn push_blocking(&self) -> Result<(), PushError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PushError::Runtime(e.to_string()))?
            .block_on(self.push())
    }

    /// Pushes every `interval` on the current tokio runtime until
    /// [`PeriodicPush::shutdown`], which makes a final push. Failed pushes
    /// are counted ([`PeriodicPush::failures`]) and retried next interval.
    pub fn spawn_periodic(self, interval: Duration) -> PeriodicPush {
        let (stop, mut stopped) = watch::channel(false);
        let failures = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = failures.clone();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {
                        if self.push().await.is_err() {
                            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    _ = stopped.changed() => break,
                }
            }
            self.push().await
        });
        PeriodicPush {
            stop,
            task,
            failures,
        }
    }

    async fn send(&self, method: Method, body: Bytes) -> Result<(), PushError> {
        let mut delay = self.backoff;
        let mut last = String::new();
        for attempt in 0..=self.retries {
            if attempt > 0 {
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
            }
            match tokio::time::timeout(self.timeout, self.attempt(method.clone(), body.clone()))
                .await
            {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(Attempt::Fail(error))) => return Err(error),
                Ok(Err(Attempt::Retry(why))) => last = why,
                Err(_) => last = format!("no answer within {:?}", self.timeout),
            }
        }
        Err(PushError::Unavailable {
            attempts: self.retries + 1,
            last,
        })
    }

    async fn attempt(&self, method: Method, body: Bytes) -> Result<(), Attempt> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| Attempt::Retry(format!("connect to {}: {e}", self.authority)))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Attempt::Retry(format!("handshake: {e}")))?;
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(&self.path)
            .header(header::HOST, &self.authority)
            .header(header::CONTENT_TYPE, Format::PrometheusText.content_type());
        if let Some(auth) = &self.auth {
            request = request.header(
                header::AUTHORIZATION,
                HeaderValue::from_str(auth).map_err(|_| {
                    Attempt::Fail(PushError::Rejected {
                        status: 0,
                        body: "credentials are not a valid header value".into(),
                    })
                })?,
            );
        }
        let request = request.body(Full::new(body)).map_err(|e| {
            Attempt::Fail(PushError::Rejected {
                status: 0,
                body: e.to_string(),
            })
        })?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| Attempt::Retry(format!("request: {e}")))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response
            .into_body()
            .collect()
            .await
            .map(|b| {
                String::from_utf8_lossy(&b.to_bytes())
                    .chars()
                    .take(300)
                    .collect()
            })
            .unwrap_or_default();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            Err(Attempt::Retry(format!("{status}: {text}")))
        } else {
            Err(Attempt::Fail(PushError::Rejected {
                status: status.as_u16(),
                body: text,
            }))
        }
    }
}

/// A background task pushing periodically; see [`PushGateway::spawn_periodic`].
#[derive(Debug)]
pub struct PeriodicPush {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), PushError>>,
    failures: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl PeriodicPush {
    /// Periodic pushes that failed so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops the schedule and makes one final push, returning its result.
    pub async fn shutdown(self) -> Result<(), PushError> {
        let _ = self.stop.send(true);
        self.task
            .await
            .map_err(|e| PushError::Runtime(e.to_string()))?
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
            (gw.authority.as_str(), gw.path()),
            ("gw.local:80", "/prefix/metrics/job/j")
        );
        assert!(PushGateway::builder("http://", "j").build().is_err());
        assert!(PushGateway::builder("http://h:1", "").build().is_err());
    }
}
