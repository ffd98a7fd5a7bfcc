//! # beluga-exporter-prometheus
//!
//! Serves a [`beluga_metrics::Registry`] at `/metrics` over HTTP (hyper 1 on
//! tokio) for Prometheus to scrape, pushes it to a Prometheus Pushgateway
//! for short-lived jobs, and sends it by Prometheus remote write
//! ([`RemoteWriteBuilder`]) for workers nothing can scrape.
//!
//! ```no_run
//! use beluga_exporter_prometheus::PrometheusExporter;
//! use beluga_metrics::{Opts, Registry};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Registry::new();
//! registry.counter(Opts::new("agent_runs_total", "Agent runs."))?.inc();
//! let exporter = PrometheusExporter::builder()
//!     .registry(&registry)
//!     .listen("0.0.0.0:2222")
//!     .spawn()?; // on the current tokio runtime
//! println!("serving http://{}/metrics", exporter.local_addr());
//! // ... run the agent ...
//! exporter.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `push-gateway` | on | [`PushGateway`]: pushes to a Prometheus Pushgateway |
//! | `remote-write` | on | [`RemoteWriteBuilder`]: Prometheus remote write (prost, snap) |
//!
//! The `/metrics` endpoint is always there; with
//! `default-features = false` it is all this crate builds (no HTTP client,
//! no protobuf crate, no snappy).
//!
//! ## Behaviour
//!
//! * `GET`/`HEAD` on the metrics path (default `/metrics`): the exposition in
//!   OpenMetrics 1.0 when the `Accept` header prefers it (Prometheus ≥ 2.42
//!   does), in the Prometheus protobuf format (delimited `MetricFamily`
//!   messages, histograms with their classic buckets *and* a native
//!   histogram) when it prefers that (Prometheus with
//!   `--enable-feature=native-histograms` does), Prometheus text 0.0.4
//!   otherwise, with the exact `Content-Type`. A `format=text`,
//!   `format=openmetrics` or `format=protobuf` query parameter (settable
//!   with `params:` in a scrape config) overrides `Accept`. The body is
//!   gzipped when `Accept-Encoding` allows it.
//! * `GET /healthz`: `200 ok`. Other paths: `404`. Other methods: `405` with
//!   `Allow: GET, HEAD`. A request with a body: `413`.
//! * Encoding runs on tokio's blocking pool, never on a worker thread, with
//!   encoders (and their buffers) reused between scrapes.
//! * Limits: at most `max_concurrent_scrapes` encodes at once (default 4);
//!   further scrapes wait up to `queue_timeout` (default 5 s), then get `503`
//!   with `Retry-After: 1`. Request headers must arrive within
//!   `header_read_timeout` (default 10 s; a client that connects and sends
//!   nothing is disconnected) and fit in `max_header_bytes` (default 16 KiB;
//!   larger ones get `431`). An encode slower than `response_timeout`
//!   (default 10 s) gets `503` (the encode keeps its slot until it really
//!   ends). At most `max_connections` connections are open (default 256;
//!   more are closed at once); a response the client does not read for
//!   `write_timeout` (default 30 s), or a connection that carries nothing for
//!   `idle_timeout` (default 5 min), is closed. Response bodies not yet
//!   written to their clients are bounded across connections by
//!   `max_unsent_bytes` (default 64 MiB): a scrape whose body would pass it
//!   gets `503`, and while more than half of it is held a client that does
//!   not read is closed after 2 s.
//! * **Security:** without [`ExporterBuilder::auth`] the endpoint is public
//!   to whoever can reach the port. With it, requests without the exact
//!   `Authorization` header get `401` and a `WWW-Authenticate` challenge.
//! * Self-metrics in the served registry: `beluga_exporter_scrapes_total{format}`,
//!   `beluga_exporter_scrape_duration_seconds`, `beluga_exporter_encoded_bytes_total`,
//!   `beluga_exporter_errors_total{reason}`, `beluga_exporter_unsent_bytes`.
//!
//! ## Remote write
//!
//! [`RemoteWriteBuilder`] sends the registry as Prometheus remote write 1.0
//! (protobuf `WriteRequest`, snappy, `X-Prometheus-Remote-Write-Version:
//! 0.1.0`) every interval (default 15 s), with external labels added to
//! every series that lacks them. `5xx`, `429` and connection failures are
//! retried with backoff until the next interval while readings queue up (at
//! most `max_queued_samples`, default 100,000; the oldest readings are
//! dropped first); a `4xx` is not retried. Values are cumulative, so a
//! dropped reading loses resolution, never totals.
//! [`RemoteWriter::shutdown`] sends a last reading and the queue within its
//! deadline. Self-metric: `beluga_remote_write_samples_total{outcome="sent"|"failed"|"dropped"}`.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod auth;
#[cfg(feature = "push-gateway")]
mod push;
#[cfg(feature = "remote-write")]
mod remote_write;
mod self_metrics;
mod server;
mod unsent;

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use beluga_metrics::{Registry, RegistryError};
use tokio::sync::{watch, Semaphore};

pub use auth::Auth;
#[cfg(feature = "push-gateway")]
pub use push::{PeriodicPush, PushError, PushGateway, PushGatewayBuilder};
#[cfg(feature = "remote-write")]
pub use remote_write::{
    RemoteWriteBuilder, RemoteWriteError, RemoteWriter, DEFAULT_MAX_SAMPLES_PER_REQUEST,
    REMOTE_WRITE_SAMPLES_METRIC,
};
pub use self_metrics::{
    ENCODED_BYTES_METRIC, ERRORS_METRIC, SCRAPES_METRIC, SCRAPE_DURATION_METRIC,
    UNSENT_BYTES_METRIC,
};

/// The tutorial's default listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:2222";

/// Why the exporter could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum ExporterError {
    /// The listen address could not be bound (in use, no permission, bad host).
    Bind {
        /// The address as given.
        address: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// `spawn()` was called outside a tokio runtime.
    NoRuntime,
    /// The metrics path is not an absolute path or collides with `/healthz`.
    InvalidPath(String),
    /// The exporter's self-metrics clash with metrics already in the registry.
    Registry(RegistryError),
}

impl fmt::Display for ExporterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExporterError::Bind { address, source } => write!(
                f,
                "cannot listen on {address}: {source}; pick a free port or stop what is using it"
            ),
            ExporterError::NoRuntime => f.write_str(
                "spawn() needs a running tokio runtime; call it inside one, or use serve_in_thread()",
            ),
            ExporterError::InvalidPath(path) => write!(
                f,
                "invalid metrics path {path:?}: it must start with '/' and not be /healthz"
            ),
            ExporterError::Registry(e) => write!(f, "cannot register the exporter's self-metrics: {e}"),
        }
    }
}

impl std::error::Error for ExporterError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExporterError::Bind { source, .. } => Some(source),
            ExporterError::Registry(e) => Some(e),
            _ => None,
        }
    }
}

/// The entry point: `PrometheusExporter::builder()`.
#[derive(Debug)]
pub struct PrometheusExporter;

impl PrometheusExporter {
    /// Starts configuring an exporter.
    ///
    /// ```
    /// let builder = beluga_exporter_prometheus::PrometheusExporter::builder().listen("127.0.0.1:0");
    /// # let _ = builder;
    /// ```
    pub fn builder() -> ExporterBuilder {
        ExporterBuilder::default()
    }
}

/// Configures an exporter; finish with [`spawn`](Self::spawn) or
/// [`serve_in_thread`](Self::serve_in_thread).
#[derive(Debug, Clone)]
pub struct ExporterBuilder {
    registry: Option<Registry>,
    listen: String,
    path: String,
    auth: Option<Auth>,
    max_concurrent_scrapes: usize,
    queue_timeout: Duration,
    header_read_timeout: Duration,
    response_timeout: Duration,
    max_header_bytes: usize,
    max_connections: usize,
    write_timeout: Duration,
    idle_timeout: Duration,
    max_unsent_bytes: u64,
    gzip: bool,
    native_schema: Option<i8>,
}

impl Default for ExporterBuilder {
    fn default() -> Self {
        ExporterBuilder {
            registry: None,
            listen: DEFAULT_LISTEN.to_string(),
            path: "/metrics".to_string(),
            auth: None,
            max_concurrent_scrapes: 4,
            queue_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_connections: 256,
            write_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            max_unsent_bytes: 64 << 20,
            gzip: true,
            native_schema: Some(beluga_metrics::DEFAULT_NATIVE_SCHEMA),
        }
    }
}

impl ExporterBuilder {
    /// The registry to serve (default: [`Registry::global`]).
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// The address to listen on (default `0.0.0.0:2222`; port 0 picks a free one).
    pub fn listen(mut self, address: impl Into<String>) -> Self {
        self.listen = address.into();
        self
    }

    /// The metrics path (default `/metrics`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Requires these credentials on the metrics path (`/healthz` stays open).
    ///
    /// ```
    /// use beluga_exporter_prometheus::{Auth, PrometheusExporter};
    /// let builder = PrometheusExporter::builder().auth(Auth::Bearer("s3cret".into()));
    /// # let _ = builder;
    /// ```
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// How many scrapes may encode at once (default 4, at least 1).
    pub fn max_concurrent_scrapes(mut self, n: usize) -> Self {
        self.max_concurrent_scrapes = n.max(1);
        self
    }

    /// How long a scrape waits for an encode slot before getting `503` (default 5 s).
    pub fn queue_timeout(mut self, timeout: Duration) -> Self {
        self.queue_timeout = timeout;
        self
    }

    /// How long a client may take to send its request headers (default 10 s).
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// How long an encode may take before the scrape gets `503` (default 10 s).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Largest request head accepted, in bytes (default 16 KiB, at least 8 KiB).
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes.max(8192);
        self
    }

    /// Most connections open at once (default 256, at least 1). A connection
    /// past the cap is closed as soon as it is accepted and counted in
    /// `beluga_exporter_errors_total{reason="connection_limit"}`, so a flood
    /// of idle or slow clients cannot take every file descriptor.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long a response may wait on a client that does not read it
    /// before the connection is closed (default 30 s; counted in
    /// `beluga_exporter_errors_total{reason="write_timeout"}`).
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// How long a keep-alive connection may carry nothing before it is
    /// closed (default 5 min, well above any scrape interval; counted in
    /// `beluga_exporter_errors_total{reason="idle_timeout"}`).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The most bytes of scrape responses held for clients that have not
    /// read them yet, across all connections (default 64 MiB). A scrape
    /// whose body would pass it gets `503` with `Retry-After: 1` (counted
    /// in `beluga_exporter_errors_total{reason="unsent_bytes"}`); a single
    /// body larger than the budget is still served when nothing else is
    /// held. While more than half of it is held, a client holding a body
    /// that it does not read is disconnected after 2 s instead of
    /// `write_timeout`. What is held is `beluga_exporter_unsent_bytes`.
    ///
    /// ```
    /// use beluga_exporter_prometheus::PrometheusExporter;
    /// let builder = PrometheusExporter::builder().max_unsent_bytes(16 << 20);
    /// # let _ = builder;
    /// ```
    pub fn max_unsent_bytes(mut self, bytes: u64) -> Self {
        self.max_unsent_bytes = bytes.max(1);
        self
    }

    /// Whether to gzip responses when the scraper allows it (default on).
    pub fn gzip(mut self, enabled: bool) -> Self {
        self.gzip = enabled;
        self
    }

    /// The schema of the native histograms served in the protobuf
    /// exposition next to each histogram's classic buckets (-4 to 8,
    /// default 3: buckets 9 % wide), or `None` to serve classic buckets
    /// only. Prometheus asks for protobuf, and ingests native histograms,
    /// when started with `--enable-feature=native-histograms`; text and
    /// OpenMetrics scrapes are the same either way.
    ///
    /// ```
    /// use beluga_exporter_prometheus::PrometheusExporter;
    /// let builder = PrometheusExporter::builder().native_histogram_schema(Some(5));
    /// # let _ = builder;
    /// ```
    pub fn native_histogram_schema(mut self, schema: Option<i8>) -> Self {
        self.native_schema = schema;
        self
    }

    fn prepare(
        self,
    ) -> Result<
        (
            Arc<server::Shared>,
            server::ConnectionLimits,
            std::net::TcpListener,
        ),
        ExporterError,
    > {
        if !self.path.starts_with('/') || self.path == "/healthz" {
            return Err(ExporterError::InvalidPath(self.path));
        }
        let registry = self.registry.unwrap_or_else(|| Registry::global().clone());
        let metrics =
            self_metrics::SelfMetrics::register(&registry).map_err(ExporterError::Registry)?;
        let bind_error = |source| ExporterError::Bind {
            address: self.listen.clone(),
            source,
        };
        let addresses: Vec<SocketAddr> =
            self.listen.to_socket_addrs().map_err(bind_error)?.collect();
        let listener = std::net::TcpListener::bind(&addresses[..]).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let auth = self.auth.map(|a| {
            let header = a.header_value();
            (a, header)
        });
        let unsent = Arc::new(unsent::UnsentBudget::new(
            self.max_unsent_bytes,
            metrics.unsent_bytes.clone(),
        ));
        let shared = Arc::new(server::Shared {
            registry,
            path: self.path,
            auth,
            scrape_slots: Arc::new(Semaphore::new(self.max_concurrent_scrapes)),
            queue_timeout: self.queue_timeout,
            response_timeout: self.response_timeout,
            gzip: self.gzip,
            native_schema: self.native_schema,
            encoders: parking_lot::Mutex::new(Vec::new()),
            metrics,
            deliveries: Arc::default(),
            unsent,
        });
        let limits = server::ConnectionLimits {
            header_read_timeout: self.header_read_timeout,
            max_header_bytes: self.max_header_bytes,
            drain_timeout: self.response_timeout,
            max_connections: self.max_connections,
            write_timeout: self.write_timeout,
            idle_timeout: self.idle_timeout,
        };
        Ok((shared, limits, listener))
    }

    /// Binds and starts serving on the current tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use beluga_exporter_prometheus::PrometheusExporter;
    /// let exporter = PrometheusExporter::builder()
    ///     .registry(&beluga_metrics::Registry::new())
    ///     .listen("127.0.0.1:0")
    ///     .spawn()?;
    /// assert_ne!(exporter.local_addr().port(), 0);
    /// exporter.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub fn spawn(self) -> Result<ExporterHandle, ExporterError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| ExporterError::NoRuntime)?;
        let (shared, limits, listener) = self.prepare()?;
        let local_addr = listener
            .local_addr()
            .expect("a bound socket has an address");
        let _guard = runtime.enter();
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(|source| ExporterError::Bind {
                address: local_addr.to_string(),
                source,
            })?;
        let (stop, stopped) = watch::channel(false);
        let task = runtime.spawn(server::serve(listener, shared.clone(), limits, stopped));
        Ok(ExporterHandle {
            running: Running {
                local_addr,
                stop,
                shared,
            },
            task,
        })
    }

    /// Binds, then serves from a background thread with its own
    /// single-threaded tokio runtime, for programs that do not use tokio.
    /// Returns once the socket is bound.
    ///
    /// ```
    /// use beluga_exporter_prometheus::PrometheusExporter;
    /// let exporter = PrometheusExporter::builder()
    ///     .registry(&beluga_metrics::Registry::new())
    ///     .listen("127.0.0.1:0")
    ///     .serve_in_thread()?;
    /// println!("serving on {}", exporter.local_addr());
    /// exporter.shutdown();
    /// # Ok::<(), beluga_exporter_prometheus::ExporterError>(())
    /// ```
    pub fn serve_in_thread(self) -> Result<ExporterThread, ExporterError> {
        let (shared, limits, listener) = self.prepare()?;
        let local_addr = listener
            .local_addr()
            .expect("a bound socket has an address");
        let (stop, stopped) = watch::channel(false);
        let served = shared.clone();
        let thread = std::thread::Builder::new()
            .name("beluga-exporter".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread tokio runtime");
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => server::serve(listener, shared, limits, stopped).await,
                        Err(_) => shared.metrics.error("listener"),
                    }
                });
            })
            .map_err(|source| ExporterError::Bind {
                address: local_addr.to_string(),
                source,
            })?;
        Ok(ExporterThread {
            running: Running {
                local_addr,
                stop,
                shared: served,
            },
            thread,
        })
    }
}

/// What both kinds of running exporter hold: where they listen, how to stop
/// them, and the state their requests share.
struct Running {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    shared: Arc<server::Shared>,
}

impl Running {
    fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// A point in an exporter's stream of scrapes, from
/// [`ExporterThread::scrape_mark`] or [`ExporterHandle::scrape_mark`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrapeMark(u64);

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("local_addr", &self.local_addr)
            .field("scrapes_served", &self.shared.scrapes_served())
            .finish_non_exhaustive()
    }
}

/// A running exporter on a tokio runtime.
#[derive(Debug)]
pub struct ExporterHandle {
    running: Running,
    task: tokio::task::JoinHandle<()>,
}

impl ExporterHandle {
    /// Scrapes answered with metrics so far (both formats).
    pub fn scrapes_served(&self) -> u64 {
        self.running.shared.scrapes_served()
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.running.local_addr
    }

    /// Marks now in the stream of scrapes, for [`delivered_since`](Self::delivered_since).
    pub fn scrape_mark(&self) -> ScrapeMark {
        ScrapeMark(self.running.shared.deliveries.mark())
    }

    /// Whether a `GET` of the metrics path whose encode began after `mark`
    /// was answered in full (its whole body handed to the connection).
    /// `HEAD` requests, refused or failed scrapes, and encodes already under
    /// way at the mark do not count: a program that waits for "one more
    /// scrape" after its last record uses this to know the scraper saw it.
    pub fn delivered_since(&self, mark: ScrapeMark) -> bool {
        self.running.shared.deliveries.delivered_since(mark.0)
    }

    /// Stops accepting, lets in-flight scrapes finish (up to the response
    /// timeout), and returns when the server is gone.
    pub async fn shutdown(self) {
        self.running.stop();
        let _ = self.task.await;
    }
}

/// A running exporter on its own thread.
#[derive(Debug)]
pub struct ExporterThread {
    running: Running,
    thread: std::thread::JoinHandle<()>,
}

impl ExporterThread {
    /// Scrapes answered with metrics so far (both formats).
    ///
    /// ```
    /// # use beluga_exporter_prometheus::PrometheusExporter;
    /// let exporter = PrometheusExporter::builder()
    ///     .registry(&beluga_metrics::Registry::new())
    ///     .listen("127.0.0.1:0")
    ///     .serve_in_thread()?;
    /// assert_eq!(exporter.scrapes_served(), 0);
    /// # exporter.shutdown();
    /// # Ok::<(), beluga_exporter_prometheus::ExporterError>(())
    /// ```
    pub fn scrapes_served(&self) -> u64 {
        self.running.shared.scrapes_served()
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.running.local_addr
    }

    /// Marks now in the stream of scrapes, for [`delivered_since`](Self::delivered_since).
    pub fn scrape_mark(&self) -> ScrapeMark {
        ScrapeMark(self.running.shared.deliveries.mark())
    }

    /// Whether a `GET` of the metrics path whose encode began after `mark`
    /// was answered in full (its whole body handed to the connection).
    /// `HEAD` requests, refused or failed scrapes, and encodes already under
    /// way at the mark do not count: a program that waits for "one more
    /// scrape" after its last record uses this to know the scraper saw it.
    pub fn delivered_since(&self, mark: ScrapeMark) -> bool {
        self.running.shared.deliveries.delivered_since(mark.0)
    }

    /// Stops accepting, lets in-flight scrapes finish, and joins the thread.
    pub fn shutdown(self) {
        self.running.stop();
        let _ = self.thread.join();
    }
}
