//! Prometheus remote write 1.0: the registry pushed as a snappy-compressed
//! `prometheus.WriteRequest` (`POST`, `Content-Encoding: snappy`,
//! `X-Prometheus-Remote-Write-Version: 0.1.0`) at an interval, for workers
//! nothing can scrape (behind NAT, short-lived) feeding Prometheus
//! (`--web.enable-remote-write-receiver`), Mimir, Thanos Receive or
//! VictoriaMetrics.
//!
//! Each interval reads the registry once (every series, one sample each, the
//! read's timestamp; counters as `<name>_total`, histograms as
//! `_bucket{le}`/`_sum`/`_count`, as the text format names them) and queues
//! it as batches of at most `max_samples_per_request` samples, one request
//! each, so that a receiver's size limit refuses one request, never a whole
//! read. Batches are sent oldest first, so each series' samples arrive in
//! time order. A `5xx`, `429`, timeout or refused connection is retried with
//! backoff (the shared `beluga-http-client` policy, which also bounds any
//! `Retry-After`) until the next interval, and the batch stays queued; a
//! `4xx` is not retried: the batch is dropped and its samples counted as
//! failed. The queue holds at most `max_queued_samples` samples; when a new
//! read does not fit, the oldest batches are dropped and counted (the
//! oldest of the new read's own batches too, when the read alone is larger
//! than the queue). Values are cumulative, so a dropped batch loses
//! resolution, never totals: the next delivered batch carries them.
//! [`RemoteWriter::shutdown`] reads the registry a last time and sends what
//! is queued within its deadline; it reports samples left undelivered, or
//! refused by the receiver at any time, as an error.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use beluga_http_client::http::header::{self, HeaderValue};
use beluga_http_client::http::Method;
use beluga_http_client::{
    ClientConfig, Endpoint, EndpointError, HttpClient, Outcome, RetryError, RetryPolicy,
};
use beluga_metrics::{
    Counter, Descriptor, Labels, MetricType, Opts, Registry, RegistryError, Value, Visitor,
};
use bytes::Bytes;
use http_body_util::Full;
use tokio::sync::watch;
use tokio::time::Instant;

/// How many samples one request carries unless
/// [`RemoteWriteBuilder::max_samples_per_request`] says otherwise.
pub const DEFAULT_MAX_SAMPLES_PER_REQUEST: usize = 2_000;

/// The self-metric counting samples by `outcome`: `sent`, `failed` (refused
/// with a `4xx`, or still undelivered at shutdown) and `dropped` (pushed out
/// of the full queue).
pub const REMOTE_WRITE_SAMPLES_METRIC: &str = "beluga_remote_write_samples_total";

/// Why remote write could not start or deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteWriteError {
    /// The URL is not `http://host:port/path`.
    InvalidUrl {
        /// The URL with any credentials replaced by `***`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An external label name is not a valid label name.
    InvalidLabel {
        /// The name given.
        name: String,
    },
    /// The self-metric could not be registered.
    Registry(RegistryError),
    /// `spawn` was called outside a tokio runtime.
    NoRuntime,
    /// The final send did not deliver everything before the shutdown
    /// deadline; the samples left are counted as failed.
    Undelivered {
        /// Samples not delivered.
        samples: u64,
        /// The last failure seen, if any.
        last: Option<String>,
    },
    /// Everything was sent, but the receiver refused some of it (a `4xx`)
    /// while the writer ran: those samples are lost.
    Rejected {
        /// Samples the receiver refused since the writer started.
        samples: u64,
        /// The last refusal: the status and the start of its body.
        last: String,
    },
}

impl fmt::Display for RemoteWriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteWriteError::InvalidUrl { url, reason } => {
                write!(f, "invalid remote-write URL {url:?}: {reason}")
            }
            RemoteWriteError::InvalidLabel { name } => write!(
                f,
                "external label name {name:?} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
            ),
            RemoteWriteError::Registry(e) => write!(f, "cannot register the remote-write self-metric: {e}"),
            RemoteWriteError::NoRuntime => f.write_str("remote write needs a tokio runtime: call spawn() inside one"),
            RemoteWriteError::Rejected { samples, last } => write!(
                f,
                "the remote-write receiver refused {samples} sample(s) (last: {last}); check the URL and what the receiver accepts"
            ),
            RemoteWriteError::Undelivered { samples, last } => {
                write!(f, "{samples} sample(s) not delivered before the shutdown deadline")?;
                if let Some(last) = last {
                    write!(f, " (last failure: {last})")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for RemoteWriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RemoteWriteError::Registry(e) => Some(e),
            _ => None,
        }
    }
}

// `prompb` messages (prometheus/prompb/remote.proto and types.proto), only
// the fields remote write 1.0 senders fill.
#[derive(Clone, PartialEq, prost::Message)]
struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Label {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Sample {
    #[prost(double, tag = "1")]
    value: f64,
    #[prost(int64, tag = "2")]
    timestamp: i64,
}

/// Settings for a [`RemoteWriter`].
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use beluga_exporter_prometheus::RemoteWriteBuilder;
/// let writer = RemoteWriteBuilder::new("http://127.0.0.1:9090/api/v1/write")
///     .registry(&beluga_metrics::Registry::global())
///     .external_label("job", "agent")
///     .external_label("instance", "worker-7")
///     .interval(Duration::from_secs(15))
///     .spawn()?;
/// // ... the worker records ...
/// writer.shutdown(Duration::from_secs(5)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RemoteWriteBuilder {
    url: String,
    registry: Option<Registry>,
    interval: Duration,
    external_labels: Vec<(String, String)>,
    max_queued_samples: usize,
    max_samples_per_request: usize,
    timeout: Duration,
    backoff: (Duration, Duration),
}

impl fmt::Debug for RemoteWriteBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteWriteBuilder")
            .field("url", &Endpoint::redact(&self.url))
            .field("interval", &self.interval)
            .field("external_labels", &self.external_labels)
            .field("max_queued_samples", &self.max_queued_samples)
            .field("max_samples_per_request", &self.max_samples_per_request)
            .finish_non_exhaustive()
    }
}

impl RemoteWriteBuilder {
    /// Writing to `url` (for Prometheus: `http://host:9090/api/v1/write`).
    pub fn new(url: impl Into<String>) -> Self {
        RemoteWriteBuilder {
            url: url.into(),
            registry: None,
            interval: Duration::from_secs(15),
            external_labels: Vec::new(),
            max_queued_samples: 100_000,
            max_samples_per_request: DEFAULT_MAX_SAMPLES_PER_REQUEST,
            timeout: Duration::from_secs(10),
            backoff: (Duration::from_millis(100), Duration::from_secs(5)),
        }
    }

    /// The registry to send (default: [`Registry::global`]).
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// How often the registry is read and sent (default 15 s).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(10));
        self
    }

    /// A label added to every series that does not have it already
    /// (`instance`, `job`, `region`...).
    pub fn external_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.external_labels.push((name.into(), value.into()));
        self
    }

    /// The most samples kept while the receiver is unreachable (default
    /// 100,000); older batches are dropped (and counted) to make room.
    pub fn max_queued_samples(mut self, samples: usize) -> Self {
        self.max_queued_samples = samples.max(1);
        self
    }

    /// The most samples one request carries (default 2,000, as Prometheus'
    /// own `max_samples_per_send`); a larger read is sent as several
    /// requests.
    pub fn max_samples_per_request(mut self, samples: usize) -> Self {
        self.max_samples_per_request = samples.max(1);
        self
    }

    /// Timeout of one request (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// First and longest wait between retries (default 100 ms and 5 s).
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = (initial, max.max(initial));
        self
    }

    /// Starts sending on the current tokio runtime.
    pub fn spawn(self) -> Result<RemoteWriter, RemoteWriteError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| RemoteWriteError::NoRuntime)?;
        let endpoint = Endpoint::parse(&self.url).map_err(|e: EndpointError| {
            RemoteWriteError::InvalidUrl {
                url: Endpoint::redact(&self.url),
                reason: e.to_string(),
            }
        })?;
        let mut external = Vec::new();
        for (name, value) in self.external_labels {
            if !valid_label_name(&name) {
                return Err(RemoteWriteError::InvalidLabel { name });
            }
            external.retain(|(n, _): &(String, String)| *n != name);
            external.push((name, value));
        }
        let registry = self.registry.unwrap_or_else(|| Registry::global().clone());
        let samples = registry
            .counter_family(
                Opts::new(
                    REMOTE_WRITE_SAMPLES_METRIC,
                    "Remote-write samples, by outcome (sent, failed, dropped).",
                )
                .labels(["outcome"]),
            )
            .map_err(RemoteWriteError::Registry)?;
        let counted = |outcome| {
            samples.with_labels(&[outcome]).map_err(|_| {
                RemoteWriteError::Registry(RegistryError::Conflict {
                    name: REMOTE_WRITE_SAMPLES_METRIC.into(),
                    differs_in: "label values",
                })
            })
        };
        let outcomes = Outcomes {
            sent: counted("sent")?,
            failed: counted("failed")?,
            dropped: counted("dropped")?,
            queued: Arc::new(AtomicU64::new(0)),
        };
        let sender = Sender {
            registry,
            endpoint,
            external,
            client: HttpClient::new(ClientConfig::default().request_timeout(self.timeout)),
            retry: RetryPolicy::new(self.backoff.0, self.backoff.1),
            queue: VecDeque::new(),
            queued_samples: 0,
            max_queued_samples: self.max_queued_samples,
            max_samples_per_request: self.max_samples_per_request,
            last_refusal: None,
            outcomes: outcomes.clone(),
        };
        let (stop, stopped) = watch::channel(None::<Instant>);
        let task = runtime.spawn(sender.run(self.interval, stopped));
        Ok(RemoteWriter {
            stop,
            task,
            outcomes,
        })
    }
}

fn valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.starts_with("__")
}

#[derive(Clone, Debug)]
struct Outcomes {
    sent: Counter,
    failed: Counter,
    dropped: Counter,
    /// Samples waiting in the queue.
    queued: Arc<AtomicU64>,
}

struct Batch {
    request: WriteRequest,
    samples: u64,
}

struct Sender {
    registry: Registry,
    endpoint: Endpoint,
    external: Vec<(String, String)>,
    client: HttpClient,
    retry: RetryPolicy,
    queue: VecDeque<Batch>,
    queued_samples: u64,
    max_queued_samples: usize,
    max_samples_per_request: usize,
    /// The receiver's last `4xx`, reported at shutdown.
    last_refusal: Option<String>,
    outcomes: Outcomes,
}

/// A failure that ends sending for now: retryable ones keep the batch.
enum SendFailure {
    Retryable(String),
    Refused(String),
}

impl Sender {
    async fn run(
        mut self,
        interval: Duration,
        mut stopped: watch::Receiver<Option<Instant>>,
    ) -> Result<(), RemoteWriteError> {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_failure = None;
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    self.enqueue_reading();
                    let until = Instant::now() + interval;
                    tokio::select! {
                        failure = self.drain(Some(until)) => if failure.is_some() { last_failure = failure },
                        _ = stopped.changed() => break,
                    }
                }
                _ = stopped.changed() => break,
            }
        }
        let deadline = *stopped.borrow();
        self.enqueue_reading();
        if let Some(failure) = self.drain(deadline).await {
            last_failure = Some(failure);
        }
        let left = self.queued_samples;
        if left > 0 {
            self.outcomes.failed.add(left);
            self.outcomes.queued.store(0, Relaxed);
            return Err(RemoteWriteError::Undelivered {
                samples: left,
                last: last_failure,
            });
        }
        match self.last_refusal {
            Some(last) => Err(RemoteWriteError::Rejected {
                samples: self.outcomes.failed.get(),
                last,
            }),
            None => Ok(()),
        }
    }

    /// Reads the registry into batches of at most `max_samples_per_request`
    /// samples and queues them, dropping the oldest batches while the queue
    /// holds more than `max_queued_samples`.
    fn enqueue_reading(&mut self) {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let mut reader = Reader {
            external: &self.external,
            timestamp,
            series: Vec::new(),
        };
        self.registry.visit(&mut reader);
        let mut series = reader.series;
        while !series.is_empty() {
            let rest = series.split_off(series.len().min(self.max_samples_per_request));
            let samples = series.len() as u64;
            self.queue.push_back(Batch {
                request: WriteRequest { timeseries: series },
                samples,
            });
            self.queued_samples += samples;
            series = rest;
        }
        while self.queued_samples > self.max_queued_samples as u64 {
            let Some(old) = self.queue.pop_front() else {
                break;
            };
            self.queued_samples -= old.samples;
            self.outcomes.dropped.add(old.samples);
        }
        self.outcomes.queued.store(self.queued_samples, Relaxed);
    }

    /// Sends queued batches, oldest first, until the queue is empty or a
    /// batch cannot be delivered before `deadline`; returns the last failure.
    async fn drain(&mut self, deadline: Option<Instant>) -> Option<String> {
        let mut last = None;
        while let Some(batch) = self.queue.front() {
            let body = snappy(&batch.request);
            let samples = batch.samples;
            match self.send(body, deadline).await {
                Ok(()) => self.outcomes.sent.add(samples),
                Err(SendFailure::Refused(why)) => {
                    self.outcomes.failed.add(samples);
                    self.last_refusal = Some(why.clone());
                    last = Some(why);
                }
                Err(SendFailure::Retryable(why)) => return Some(why),
            }
            self.queue.pop_front();
            self.queued_samples -= samples;
            self.outcomes.queued.store(self.queued_samples, Relaxed);
        }
        last
    }

    async fn send(&self, body: Bytes, deadline: Option<Instant>) -> Result<(), SendFailure> {
        let result = self
            .retry
            .run(deadline, |left| self.attempt(body.clone(), left))
            .await;
        result.map_err(|error| match error {
            RetryError::Fatal { error, .. } => SendFailure::Refused(error),
            RetryError::GaveUp { last, .. } => SendFailure::Retryable(last),
            RetryError::DeadlineExceeded { last, .. } => {
                SendFailure::Retryable(last.unwrap_or_else(|| "deadline reached".into()))
            }
        })
    }

    async fn attempt(&self, body: Bytes, left: Option<Duration>) -> Outcome<(), String> {
        let request = self
            .endpoint
            .request(Method::POST)
            .header(header::CONTENT_TYPE, "application/x-protobuf")
            .header(header::CONTENT_ENCODING, "snappy")
            .header(
                "X-Prometheus-Remote-Write-Version",
                HeaderValue::from_static("0.1.0"),
            )
            .header(
                header::USER_AGENT,
                concat!("beluga-metrics/", env!("CARGO_PKG_VERSION")),
            )
            .header(header::CONTENT_LENGTH, body.len())
            .body(Full::new(body));
        let request = match request {
            Ok(request) => request,
            Err(e) => return Outcome::Fatal(e.to_string()),
        };
        let response = match self.client.send_with_time_left(request, left).await {
            Ok(response) => response,
            Err(no_answer) => return no_answer.into(),
        };
        match beluga_http_client::push_outcome(&response) {
            Outcome::Done(()) => Outcome::Done(()),
            Outcome::Retry { why, retry_after } => Outcome::Retry { why, retry_after },
            Outcome::Fatal((status, text)) => Outcome::Fatal(format!("{status}: {text}")),
        }
    }
}

fn snappy(request: &WriteRequest) -> Bytes {
    use prost::Message;
    let raw = request.encode_to_vec();
    // Snappy block format, as remote write specifies. Compressing a buffer
    // we just built cannot fail but for inputs over 4 GiB; send it raw then
    // (the receiver refuses it with a 400, counted as failed).
    Bytes::from(snap::raw::Encoder::new().compress_vec(&raw).unwrap_or(raw))
}

/// One registry read as time series, labels sorted by name.
struct Reader<'a> {
    external: &'a [(String, String)],
    timestamp: i64,
    series: Vec<TimeSeries>,
}

impl Reader<'_> {
    fn push(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &Labels<'_>,
        le: Option<String>,
        value: f64,
    ) {
        let mut out = vec![Label {
            name: "__name__".into(),
            value: format!("{name}{suffix}"),
        }];
        for (n, v) in labels.iter() {
            out.push(Label {
                name: n.into(),
                value: v.into(),
            });
        }
        if let Some(le) = le {
            out.push(Label {
                name: "le".into(),
                value: le,
            });
        }
        for (n, v) in self.external {
            if !out.iter().any(|l| l.name == *n) {
                out.push(Label {
                    name: n.clone(),
                    value: v.clone(),
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        self.series.push(TimeSeries {
            labels: out,
            samples: vec![Sample {
                value,
                timestamp: self.timestamp,
            }],
        });
    }
}

impl Visitor for Reader<'_> {
    fn family(&mut self, _: &Descriptor) {}

    fn series(&mut self, family: &Descriptor, labels: Labels<'_>, value: Value<'_>) {
        let name = family.name();
        match (family.metric_type(), value) {
            (MetricType::Counter, Value::Counter(n)) => {
                self.push(name, "_total", &labels, None, n as f64)
            }
            (MetricType::Counter, Value::FloatCounter(v)) => {
                self.push(name, "_total", &labels, None, v)
            }
            (_, Value::Gauge(v)) => self.push(name, "", &labels, None, v),
            (_, Value::Histogram(h)) => {
                for (bound, cumulative) in h.cumulative() {
                    let le = if bound.is_infinite() {
                        "+Inf".to_string()
                    } else {
                        format!("{bound:?}")
                    };
                    self.push(name, "_bucket", &labels, Some(le), cumulative as f64);
                }
                self.push(name, "_sum", &labels, None, h.sum());
                self.push(name, "_count", &labels, None, h.count() as f64);
            }
            (_, Value::Counter(n)) => self.push(name, "", &labels, None, n as f64),
            (_, Value::FloatCounter(v)) => self.push(name, "", &labels, None, v),
        }
    }
}

/// Sends a registry by remote write in the background; see
/// [`RemoteWriteBuilder`].
#[derive(Debug)]
pub struct RemoteWriter {
    stop: watch::Sender<Option<Instant>>,
    task: tokio::task::JoinHandle<Result<(), RemoteWriteError>>,
    outcomes: Outcomes,
}

impl RemoteWriter {
    /// Samples delivered so far.
    pub fn samples_sent(&self) -> u64 {
        self.outcomes.sent.get()
    }

    /// Samples refused by the receiver (`4xx`), or left at shutdown.
    pub fn samples_failed(&self) -> u64 {
        self.outcomes.failed.get()
    }

    /// Samples dropped from the full queue.
    pub fn samples_dropped(&self) -> u64 {
        self.outcomes.dropped.get()
    }

    /// Samples read but not delivered yet (the queue).
    pub fn samples_queued(&self) -> u64 {
        self.outcomes.queued.load(Relaxed)
    }

    /// Stops the schedule, reads the registry once more and sends everything
    /// queued, within `deadline`. `Err(Undelivered)` counts what was left;
    /// `Err(Rejected)` counts what the receiver refused while the writer
    /// ran, even though the last sends went through.
    pub async fn shutdown(self, deadline: Duration) -> Result<(), RemoteWriteError> {
        let deadline = Instant::now()
            .checked_add(deadline)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600));
        let _ = self.stop.send(Some(deadline));
        let abort = self.task.abort_handle();
        match tokio::time::timeout_at(deadline + Duration::from_millis(250), self.task).await {
            Ok(Ok(result)) => result,
            // The sending task ended without a result (it panicked): what
            // it still held was not delivered.
            Ok(Err(e)) => Err(RemoteWriteError::Undelivered {
                samples: self.outcomes.queued.load(Relaxed),
                last: Some(e.to_string()),
            }),
            Err(_) => {
                abort.abort();
                Err(RemoteWriteError::Undelivered {
                    samples: self.outcomes.queued.load(Relaxed),
                    last: Some("the final send outran its deadline".into()),
                })
            }
        }
    }
}
