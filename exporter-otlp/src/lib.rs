//! # beluga-exporter-otlp
//!
//! Pushes a [`beluga_metrics::Registry`] to any OpenTelemetry collector over
//! OTLP/HTTP with protobuf bodies (`POST {endpoint}/v1/metrics`) or over
//! OTLP/gRPC ([`Protocol::Grpc`], tonic), using the official wire types from
//! the `opentelemetry-proto` crate. The collector
//! then fans out to Mimir, Thanos, Datadog or anything else, and the
//! instrumentation code does not change.
//!
//! ```no_run
//! use std::time::Duration;
//! use beluga_exporter_otlp::OtlpExporter;
//! use beluga_monitor::Monitor;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let monitor = Monitor::builder().service_name("my-agent").build()?;
//! let exporter = OtlpExporter::builder()
//!     .registry(monitor.registry())
//!     .service_name(monitor.service_name())
//!     .endpoint("http://127.0.0.1:4318")
//!     .spawn()?;
//! // ... the agent records through monitor.metrics() ...
//! exporter.shutdown(Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```
//!
//! ## Features
//!
//! `grpc` (on by default) adds OTLP over gRPC ([`Protocol::Grpc`]: tonic
//! and the generated client). With `default-features = false` only
//! OTLP/HTTP is built, and asking for gRPC is an
//! [`ExportError::InvalidConfig`] that says so.
//!
//! ## What is sent
//!
//! * One resource with `service.name` and `telemetry.sdk.{name,language,version}`
//!   plus `OTEL_RESOURCE_ATTRIBUTES` and builder attributes; one scope,
//!   `beluga-metrics`.
//! * Counters as monotonic Sums (integer or double points), gauges as
//!   Gauges, histograms as explicit-bucket Histograms with the same
//!   boundaries as the Prometheus output, plus min and max; or, with
//!   [`HistogramAggregation::Base2Exponential`] (for all histograms or per
//!   instrument), as ExponentialHistograms: base-2 buckets derived from the
//!   engine's HDR counts, the scale chosen from the data so the populated
//!   range fits `max_size` buckets (OpenTelemetry's 160 by default), a zero
//!   bucket below the histogram's resolution, exact count, sum, min and max
//!   (`beluga_metrics::ExponentialBuckets` documents the derivation and its
//!   error: an observation within 0.4 % of a boundary may land in the
//!   neighbouring bucket). Each point carries the series' latest exemplar
//!   (`Histogram::record_with_exemplar`, `Counter::add_with_exemplar`) as an
//!   OTLP exemplar (trace and span ids, extra labels as filtered
//!   attributes); a delta point only one from its own window. Metric names are
//!   the registry's family names (Prometheus-style, without `_total`), units
//!   are UCUM (`s`, `By`, `{token}`). The cardinality-overflow series carries
//!   the attribute `otel.metric.overflow=true`, as the OpenTelemetry SDK does.
//! * Cumulative temporality by default: a failed export is superseded by the
//!   next one and nothing is lost. With [`Temporality::Delta`], each point
//!   holds the change since the last *successful* export, so undelivered
//!   changes ride along with the next attempt (the state kept is one value
//!   per live series). Deltas are delivered at least once: an export the
//!   collector processed but answered after the exporter's deadline (or one
//!   abandoned at shutdown while in flight) is counted again by the next.
//!
//! ## Configuration
//!
//! Builder values win over the environment, which wins over the defaults:
//!
//! | setting | builder | environment | default |
//! |---|---|---|---|
//! | protocol | `protocol` | `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`, `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, `grpc`; others fail `spawn`) | `http/protobuf` |
//! | URL | `endpoint` (base, `/v1/metrics` added for HTTP; as is for gRPC, default `http://localhost:4317`) or `metrics_endpoint` (as is) | `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (as is), `OTEL_EXPORTER_OTLP_ENDPOINT` (base) | `http://localhost:4318/v1/metrics` |
//! | headers | `header` | `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_METRICS_HEADERS` | none |
//! | request timeout | `timeout` | `OTEL_EXPORTER_OTLP_TIMEOUT`, `..._METRICS_TIMEOUT` (ms) | 10 s |
//! | compression | `compression` | `OTEL_EXPORTER_OTLP_COMPRESSION`, `..._METRICS_COMPRESSION` | none |
//! | interval | `interval` | `OTEL_METRIC_EXPORT_INTERVAL` (ms) | 60 s |
//! | service name | `service_name` | `OTEL_SERVICE_NAME`, then `service.name` in `OTEL_RESOURCE_ATTRIBUTES` | `unknown_service` |
//! | resource | `resource_attribute` | `OTEL_RESOURCE_ATTRIBUTES` | |
//! | temporality | `temporality` | `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` (`cumulative`, `delta`, `lowmemory`) | cumulative |
//! | export timeout | `export_timeout` | `OTEL_METRIC_EXPORT_TIMEOUT` (ms) | 30 s, at most the interval |
//! | disabled | | `OTEL_SDK_DISABLED=true`: exports succeed and send nothing | off |
//! | histograms | `histogram_aggregation`, `histogram_aggregation_for` (one instrument), `histogram_exponential_copy` (one instrument in both forms) | `OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION` (`explicit_bucket_histogram`, `base2_exponential_bucket_histogram`; anything else fails `spawn`) | explicit buckets |
//!
//! Only `http://` URLs are supported; put TLS in a local collector.
//!
//! ## Failures
//!
//! Exports run on a background task; recording is never blocked or slowed.
//! Retries back off exponentially with jitter on 429, 502, 503, 504,
//! connection errors and timeouts, waiting `Retry-After` when the collector
//! gives one, for at most the export interval; other statuses are not
//! retried. Over gRPC the same loop retries `CANCELLED`,
//! `DEADLINE_EXCEEDED`, `ABORTED`, `OUT_OF_RANGE`, `UNAVAILABLE`,
//! `DATA_LOSS`, and `RESOURCE_EXHAUSTED` only when it carries a
//! `google.rpc.RetryInfo` (whose delay is honoured), as the OTLP
//! specification says; other codes are [`ExportError::RejectedGrpc`]. Failures go to the [`on_error`](OtlpExporterBuilder::on_error)
//! callback and to self-metrics in the exported registry:
//! `beluga_otlp_exports_total{outcome}`, `beluga_otlp_last_success_timestamp_seconds`,
//! `beluga_otlp_rejected_data_points_total`. Nothing panics and nothing is logged.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod config;
mod convert;
mod delivery;
#[cfg(feature = "grpc")]
mod grpc;
mod transport;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use beluga_http_client::http::header::HeaderName;
use beluga_http_client::{ClientConfig, Endpoint, HttpClient, RetryPolicy};
use beluga_metrics::{Counter, Family, Gauge, Opts, Registry, RegistryError, Unit};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

pub use config::{Compression, HistogramAggregation, Protocol, Temporality};

/// Why an export (or the exporter's start) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExportError {
    /// A setting is unusable (bad URL, header, ...).
    InvalidConfig(String),
    /// `spawn()` was called outside a tokio runtime.
    NoRuntime,
    /// Registering the exporter's self-metrics failed.
    Registry(RegistryError),
    /// Every attempt failed to connect, timed out or got a retryable status.
    Unreachable {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's failure (also the error's `source()`).
        last: AttemptError,
    },
    /// The collector refused the request with a non-retryable status.
    Rejected {
        /// HTTP status.
        status: u16,
        /// The start of the response body.
        message: String,
    },
    /// The collector refused the gRPC call with a non-retryable code
    /// (`RESOURCE_EXHAUSTED` counts as one unless it came with `RetryInfo`).
    RejectedGrpc {
        /// The gRPC status code's name (`InvalidArgument`, ...).
        code: String,
        /// The start of the status message.
        message: String,
    },
    /// The collector accepted the request but rejected some data points.
    PartialSuccess {
        /// Data points rejected.
        rejected_data_points: i64,
        /// The collector's explanation.
        message: String,
    },
    /// The deadline passed before the export could be delivered.
    DeadlineExceeded {
        /// Attempts made before it passed.
        attempts: u32,
    },
    /// The exporter has been shut down.
    Stopped,
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::InvalidConfig(why) => write!(f, "invalid OTLP exporter setting: {why}"),
            ExportError::NoRuntime => {
                f.write_str("spawn() needs a running tokio runtime; call it inside one")
            }
            ExportError::Registry(e) => {
                write!(f, "cannot register the exporter's self-metrics: {e}")
            }
            // What happens to the data is the caller's to say: a periodic
            // export is followed by another, a final one is not.
            ExportError::Unreachable { attempts, last } => write!(
                f,
                "OTLP collector unreachable after {attempts} attempt(s), last: {last}"
            ),
            ExportError::Rejected { status, message } => write!(
                f,
                "OTLP collector refused the export ({status}): {message}; check the endpoint path \
                 and headers"
            ),
            ExportError::RejectedGrpc { code, message } => write!(
                f,
                "OTLP collector refused the gRPC export ({code}): {message}; not retried"
            ),
            ExportError::PartialSuccess {
                rejected_data_points,
                message,
            } => write!(
                f,
                "OTLP collector rejected {rejected_data_points} data point(s): {message}"
            ),
            ExportError::DeadlineExceeded { attempts } => write!(
                f,
                "OTLP export not delivered before its deadline ({attempts} attempt(s))"
            ),
            ExportError::Stopped => f.write_str("the OTLP exporter has been shut down"),
        }
    }
}

impl std::error::Error for ExportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExportError::Registry(e) => Some(e),
            ExportError::Unreachable { last, .. } => Some(last),
            _ => None,
        }
    }
}

/// How one export attempt failed (a refused connection, a timeout, a
/// retryable status), as the last of an [`ExportError::Unreachable`]'s
/// attempts. Reads as the text it holds.
///
/// ```
/// use beluga_exporter_otlp::AttemptError;
/// let last = AttemptError::from("503 Service Unavailable".to_string());
/// assert!(last.contains("503"));
/// assert_eq!(last.to_string(), "503 Service Unavailable");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptError(String);

impl From<String> for AttemptError {
    fn from(why: String) -> AttemptError {
        AttemptError(why)
    }
}

impl std::ops::Deref for AttemptError {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AttemptError {}

type ErrorCallback = Arc<dyn Fn(&ExportError) + Send + Sync>;

/// Configures an exporter. Start with [`OtlpExporter::builder`].
#[derive(Clone, Default)]
pub struct OtlpExporterBuilder {
    registry: Option<Registry>,
    endpoint: Option<String>,
    metrics_endpoint: Option<String>,
    headers: Vec<(String, String)>,
    timeout: Option<Duration>,
    compression: Option<Compression>,
    interval: Option<Duration>,
    service_name: Option<String>,
    resource: Vec<(String, String)>,
    temporality: Option<Temporality>,
    export_timeout: Option<Duration>,
    protocol: Option<Protocol>,
    histograms: Option<HistogramAggregation>,
    histograms_by_name: Vec<(String, HistogramAggregation)>,
    exponential_copies: Vec<(String, String, HistogramAggregation)>,
    backoff: Option<(Duration, Duration)>,
    on_error: Option<ErrorCallback>,
}

impl fmt::Debug for OtlpExporterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |url: &Option<String>| url.as_deref().map(Endpoint::redact);
        f.debug_struct("OtlpExporterBuilder")
            .field("endpoint", &redact(&self.endpoint))
            .field("metrics_endpoint", &redact(&self.metrics_endpoint))
            .field("interval", &self.interval)
            .field("service_name", &self.service_name)
            .finish_non_exhaustive()
    }
}

impl OtlpExporterBuilder {
    /// The registry to export (default: [`Registry::global`]).
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Base URL of the collector, `http://host:4318`; `/v1/metrics` is added.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Full URL of the metrics endpoint, used as is.
    pub fn metrics_endpoint(mut self, url: impl Into<String>) -> Self {
        self.metrics_endpoint = Some(url.into());
        self
    }

    /// Adds a request header (e.g. an API key). Replaces an environment
    /// header of the same name.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Per-request timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Request body compression.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = Some(compression);
        self
    }

    /// Time between periodic exports.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// The `service.name` resource attribute.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Adds a resource attribute; wins over `OTEL_RESOURCE_ATTRIBUTES`.
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.resource.push((key.into(), value.into()));
        self
    }

    /// How histograms are sent unless [`histogram_aggregation_for`](Self::histogram_aggregation_for)
    /// says otherwise; wins over
    /// `OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`
    /// (`explicit_bucket_histogram`, the default, or
    /// `base2_exponential_bucket_histogram`; any other value makes
    /// [`spawn`](Self::spawn) fail with [`ExportError::InvalidConfig`]).
    pub fn histogram_aggregation(mut self, aggregation: HistogramAggregation) -> Self {
        self.histograms = Some(aggregation);
        self
    }

    /// How the histogram family `name` (as registered, e.g.
    /// `gen_ai_client_operation_duration_seconds`) is sent, whatever the
    /// default: one instrument can go exponential while the rest keep their
    /// explicit buckets, or the other way round.
    ///
    /// ```
    /// use beluga_exporter_otlp::{HistogramAggregation, OtlpExporter};
    /// let builder = OtlpExporter::builder().histogram_aggregation_for(
    ///     "gen_ai_client_operation_duration_seconds",
    ///     HistogramAggregation::base2_exponential(),
    /// );
    /// # let _ = builder;
    /// ```
    pub fn histogram_aggregation_for(
        mut self,
        name: impl Into<String>,
        aggregation: HistogramAggregation,
    ) -> Self {
        self.histograms_by_name.push((name.into(), aggregation));
        self
    }

    /// Sends the histogram family `name` *also* as an OTLP exponential
    /// histogram named `copy_name`, next to its own form (explicit buckets
    /// unless set otherwise): dashboards built on the explicit buckets keep
    /// working while a backend that prefers exponential histograms gets
    /// them. `aggregation` gives the copy's limits; an
    /// [`ExplicitBucket`](HistogramAggregation::ExplicitBucket) there means
    /// OpenTelemetry's defaults.
    ///
    /// ```
    /// use beluga_exporter_otlp::{HistogramAggregation, OtlpExporter};
    /// let builder = OtlpExporter::builder().histogram_exponential_copy(
    ///     "gen_ai_client_operation_duration_seconds",
    ///     "gen_ai_client_operation_duration_seconds.exponential",
    ///     HistogramAggregation::base2_exponential(),
    /// );
    /// # let _ = builder;
    /// ```
    pub fn histogram_exponential_copy(
        mut self,
        name: impl Into<String>,
        copy_name: impl Into<String>,
        aggregation: HistogramAggregation,
    ) -> Self {
        self.exponential_copies
            .push((name.into(), copy_name.into(), aggregation));
        self
    }

    /// OTLP over HTTP with protobuf bodies (the default) or over gRPC; wins
    /// over `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL` and
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, `grpc`).
    ///
    /// With gRPC the endpoint is used as given (default
    /// `http://localhost:4317`), without `/v1/metrics`.
    ///
    /// ```
    /// use beluga_exporter_otlp::{OtlpExporter, Protocol};
    /// let builder = OtlpExporter::builder()
    ///     .protocol(Protocol::Grpc)
    ///     .endpoint("http://127.0.0.1:4317");
    /// # let _ = builder;
    /// ```
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// The longest one export may take, attempts and backoff included
    /// (default 30 s, or `OTEL_METRIC_EXPORT_TIMEOUT` in ms; never more than
    /// the interval). Each request is still bounded by
    /// [`timeout`](Self::timeout).
    pub fn export_timeout(mut self, timeout: Duration) -> Self {
        self.export_timeout = Some(timeout);
        self
    }

    /// Cumulative (default) or delta temporality for sums and histograms;
    /// wins over `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`
    /// (`cumulative`, `delta`, `lowmemory`: the last two mean delta here,
    /// since every beluga sum and histogram is synchronous and monotonic).
    pub fn temporality(mut self, temporality: Temporality) -> Self {
        self.temporality = Some(temporality);
        self
    }

    /// First and largest wait between retries (default 500 ms and 5 s).
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = Some((initial, max.max(initial)));
        self
    }

    /// Called (on the exporter's task) with every failed or partially
    /// rejected export. Keep it quick.
    pub fn on_error(mut self, callback: impl Fn(&ExportError) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(callback));
        self
    }

    /// Starts periodic exports on the current tokio runtime.
    pub fn spawn(self) -> Result<OtlpExporter, ExportError> {
        let env = |key: &str| std::env::var(key).ok();
        self.spawn_with_env(&env)
    }

    fn spawn_with_env(self, env: config::EnvSource<'_>) -> Result<OtlpExporter, ExportError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ExportError::NoRuntime)?;
        let protocol = match self.protocol {
            Some(protocol) => protocol,
            None => config::protocol_from_env(env)
                .map_err(ExportError::InvalidConfig)?
                .unwrap_or(Protocol::HttpProtobuf),
        };
        let url = match (&self.metrics_endpoint, &self.endpoint, protocol) {
            (Some(url), _, _) => url.clone(),
            (None, Some(base), Protocol::Grpc) => base.clone(),
            (None, Some(base), Protocol::HttpProtobuf) => {
                format!("{}/v1/metrics", base.trim_end_matches('/'))
            }
            (None, None, Protocol::Grpc) => config::grpc_endpoint_from_env(env),
            (None, None, Protocol::HttpProtobuf) => config::endpoint_from_env(env),
        };
        let endpoint = Endpoint::parse(&url).map_err(|why| {
            ExportError::InvalidConfig(format!("{}: {why}", Endpoint::redact(&url)))
        })?;

        let mut headers = config::headers_from_env(env);
        for (name, value) in &self.headers {
            headers.retain(|(existing, _)| !existing.eq_ignore_ascii_case(name));
            headers.push((name.clone(), value.clone()));
        }
        let headers = headers
            .into_iter()
            .map(|(name, value)| {
                let bad =
                    |what| ExportError::InvalidConfig(format!("header {name:?}: invalid {what}"));
                Ok((
                    HeaderName::try_from(name.as_str()).map_err(|_| bad("name"))?,
                    // Sensitive: header values often carry API keys; hyper
                    // then never indexes them and `Debug` hides them.
                    beluga_http_client::sensitive_header(&value).ok_or_else(|| bad("value"))?,
                ))
            })
            .collect::<Result<Vec<_>, ExportError>>()?;

        let interval = self
            .interval
            .or_else(|| config::millis(env, "OTEL_METRIC_EXPORT_INTERVAL"))
            .filter(|i| !i.is_zero())
            .unwrap_or(Duration::from_secs(60));
        let timeout = self
            .timeout
            .or_else(|| config::timeout_from_env(env))
            .unwrap_or(Duration::from_secs(10));
        let compression = self
            .compression
            .or_else(|| config::compression_from_env(env))
            .unwrap_or(Compression::None);

        let mut resource = env("OTEL_RESOURCE_ATTRIBUTES")
            .map(|r| config::parse_pairs(&r))
            .unwrap_or_default();
        for (key, value) in self.resource {
            resource.retain(|(k, _)| *k != key);
            resource.push((key, value));
        }
        let service_name = self
            .service_name
            .or_else(|| env("OTEL_SERVICE_NAME").filter(|s| !s.is_empty()))
            .or_else(|| {
                resource
                    .iter()
                    .find(|(k, _)| k == "service.name")
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string());
        resource.retain(|(k, _)| k != "service.name" && !k.starts_with("telemetry.sdk."));
        let mut attributes = vec![
            convert::string_attribute("service.name", &service_name),
            convert::string_attribute("telemetry.sdk.name", "beluga-metrics"),
            convert::string_attribute("telemetry.sdk.language", "rust"),
            convert::string_attribute("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
        ];
        attributes.extend(
            resource
                .iter()
                .map(|(k, v)| convert::string_attribute(k, v)),
        );

        let export_timeout = self
            .export_timeout
            .or_else(|| config::millis(env, "OTEL_METRIC_EXPORT_TIMEOUT"))
            .filter(|t| !t.is_zero())
            .unwrap_or(Duration::from_secs(30));
        let temporality = match self.temporality {
            Some(temporality) => temporality,
            None => config::temporality_from_env(env)
                .map_err(ExportError::InvalidConfig)?
                .unwrap_or(Temporality::Cumulative),
        };
        let disabled = config::sdk_disabled(env);
        let histograms = match self.histograms {
            Some(aggregation) => aggregation,
            None => config::histogram_aggregation_from_env(env)
                .map_err(ExportError::InvalidConfig)?
                .unwrap_or(HistogramAggregation::ExplicitBucket),
        };

        let registry = self.registry.unwrap_or_else(|| Registry::global().clone());
        let metrics = SelfMetrics::register(&registry).map_err(ExportError::Registry)?;
        let (initial, max) = self
            .backoff
            .unwrap_or((Duration::from_millis(500), Duration::from_secs(5)));
        let worker = Worker {
            registry,
            converter: convert::Converter::new(
                attributes,
                temporality,
                convert::Histograms {
                    default: histograms,
                    by_name: self.histograms_by_name.into_iter().collect(),
                    exponential_copies: self
                        .exponential_copies
                        .into_iter()
                        .map(|(name, copy, aggregation)| {
                            let want = match aggregation {
                                HistogramAggregation::Base2Exponential {
                                    max_size,
                                    max_scale,
                                } => beluga_metrics::ExponentialScale {
                                    max_scale,
                                    max_buckets: max_size,
                                },
                                HistogramAggregation::ExplicitBucket => {
                                    beluga_metrics::ExponentialScale {
                                        max_scale: 20,
                                        max_buckets: 160,
                                    }
                                }
                            };
                            (name, (copy, want))
                        })
                        .collect(),
                },
            ),
            transport: match protocol {
                Protocol::HttpProtobuf => transport::Transport::Http(transport::HttpTransport {
                    client: HttpClient::new(ClientConfig::default().request_timeout(timeout)),
                    endpoint,
                    headers,
                    gzip: compression == Compression::Gzip,
                    retry: RetryPolicy::new(initial, max),
                }),
                #[cfg(feature = "grpc")]
                Protocol::Grpc => transport::Transport::Grpc(grpc_transport(
                    &url,
                    &headers,
                    compression,
                    timeout,
                    RetryPolicy::new(initial, max),
                )?),
                #[cfg(not(feature = "grpc"))]
                Protocol::Grpc => {
                    return Err(ExportError::InvalidConfig(
                        "OTLP over gRPC needs the `grpc` feature of beluga-exporter-otlp \
                         (on by default); this build leaves it out"
                            .into(),
                    ))
                }
            },
            // One export (attempts and backoff) may take the export
            // timeout, but never more than the interval: exports never pile up.
            retry_budget: export_timeout.min(interval),
            disabled,
            metrics,
            on_error: self.on_error,
        };
        let (commands, receiver) = mpsc::channel(8);
        let task = runtime.spawn(worker.run(interval, receiver));
        Ok(OtlpExporter {
            commands,
            task,
            interval,
            service_name,
        })
    }
}

#[cfg(feature = "grpc")]
/// The OTLP/gRPC client for `url`: a lazily connecting tonic channel (the
/// first export connects; a collector down at start is retried like any
/// other failure), user headers as sensitive metadata, gzip if asked.
fn grpc_transport(
    url: &str,
    headers: &[(HeaderName, beluga_http_client::http::HeaderValue)],
    compression: Compression,
    timeout: Duration,
    retry: RetryPolicy,
) -> Result<grpc::GrpcTransport, ExportError> {
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
    use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
    let invalid =
        |why: String| ExportError::InvalidConfig(format!("{}: {why}", Endpoint::redact(url)));
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|e| invalid(e.to_string()))?
        .connect_timeout(timeout)
        .connect_lazy();
    let mut client = MetricsServiceClient::new(channel)
        // A collector's answers are small; never buffer a hostile one.
        .max_decoding_message_size(64 * 1024);
    if compression == Compression::Gzip {
        client = client.send_compressed(tonic::codec::CompressionEncoding::Gzip);
    }
    let mut metadata = MetadataMap::new();
    for (name, value) in headers {
        let key = MetadataKey::from_bytes(name.as_str().as_bytes()).map_err(|_| {
            ExportError::InvalidConfig(format!("header {name:?}: not a gRPC metadata key"))
        })?;
        let mut value = MetadataValue::try_from(value.as_bytes())
            .map_err(|_| ExportError::InvalidConfig(format!("header {name:?}: invalid value")))?;
        value.set_sensitive(true);
        metadata.insert(key, value);
    }
    Ok(grpc::GrpcTransport {
        client,
        metadata,
        timeout,
        retry,
    })
}

/// The `service.name` when neither the builder, `OTEL_SERVICE_NAME` nor
/// `OTEL_RESOURCE_ATTRIBUTES` gives one, as the OpenTelemetry resource
/// semantic conventions say.
pub const DEFAULT_SERVICE_NAME: &str = "unknown_service";

/// The exporter's self-metric counting exports by `outcome` (exposed as
/// `beluga_otlp_exports_total`).
pub const EXPORTS_METRIC: &str = "beluga_otlp_exports";
/// The exporter's self-metric holding when the last export was delivered.
pub const LAST_SUCCESS_METRIC: &str = "beluga_otlp_last_success_timestamp_seconds";
/// The exporter's self-metric counting data points a collector rejected in
/// partial-success answers (exposed as `beluga_otlp_rejected_data_points_total`).
pub const REJECTED_POINTS_METRIC: &str = "beluga_otlp_rejected_data_points";

#[derive(Clone)]
struct SelfMetrics {
    exports: Family<Counter>,
    last_success: Gauge,
    rejected_points: Counter,
}

impl SelfMetrics {
    fn register(registry: &Registry) -> Result<Self, RegistryError> {
        Ok(SelfMetrics {
            exports: registry.counter_family(
                Opts::new(
                    EXPORTS_METRIC,
                    "OTLP exports, by outcome (success or failure).",
                )
                .labels(["outcome"]),
            )?,
            last_success: registry.gauge(
                Opts::new(
                    LAST_SUCCESS_METRIC,
                    "When the last OTLP export was delivered, in seconds since the Unix epoch.",
                )
                .unit(Unit::SECONDS),
            )?,
            rejected_points: registry.counter(Opts::new(
                REJECTED_POINTS_METRIC,
                "Data points the collector reported rejecting in partial-success responses.",
            ))?,
        })
    }
}

enum Command {
    Flush(oneshot::Sender<Result<(), ExportError>>),
    Shutdown(Instant, oneshot::Sender<Result<(), ExportError>>),
}

struct Worker {
    registry: Registry,
    converter: convert::Converter,
    transport: transport::Transport,
    retry_budget: Duration,
    /// `OTEL_SDK_DISABLED=true`: exports succeed without sending anything.
    disabled: bool,
    metrics: SelfMetrics,
    on_error: Option<ErrorCallback>,
}

impl Worker {
    async fn run(mut self, interval: Duration, mut commands: mpsc::Receiver<Command>) {
        let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let command = tokio::select! {
                _ = ticker.tick() => {
                    let deadline = Instant::now() + self.retry_budget;
                    // A periodic export stuck on a hanging collector must not
                    // hold up a shutdown: a command arriving meanwhile
                    // abandons it (with delta temporality, what it carried
                    // stays pending for the next export).
                    let export = self.export(deadline);
                    tokio::select! {
                        _ = export => continue,
                        command = commands.recv() => command,
                    }
                }
                command = commands.recv() => command,
            };
            match command {
                Some(Command::Flush(reply)) => {
                    let deadline = Instant::now() + self.retry_budget;
                    let _ = reply.send(self.export(deadline).await);
                }
                Some(Command::Shutdown(deadline, reply)) => {
                    let _ = reply.send(self.export(deadline).await);
                    return;
                }
                None => return,
            }
        }
    }

    fn report(&self, error: &ExportError) {
        if let Some(callback) = &self.on_error {
            callback(error);
        }
    }

    async fn export(&mut self, deadline: Instant) -> Result<(), ExportError> {
        if self.disabled {
            return Ok(());
        }
        let batch = self.converter.collect(&self.registry);
        match self.transport.send(&batch.request, deadline).await {
            Ok(delivered) => {
                self.converter.commit(batch);
                let _ = self.metrics.exports.with(&["success"], Counter::inc);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                self.metrics.last_success.set(now);
                if delivered.rejected_data_points > 0 {
                    self.metrics
                        .rejected_points
                        .add(delivered.rejected_data_points as u64);
                    self.report(&ExportError::PartialSuccess {
                        rejected_data_points: delivered.rejected_data_points,
                        message: delivered.message,
                    });
                }
                Ok(())
            }
            Err(error) => {
                let _ = self.metrics.exports.with(&["failure"], Counter::inc);
                self.report(&error);
                Err(error)
            }
        }
    }
}

/// A running exporter. Dropping it stops periodic exports without a final
/// one; call [`shutdown`](Self::shutdown) to deliver the last values.
#[derive(Debug)]
pub struct OtlpExporter {
    commands: mpsc::Sender<Command>,
    task: tokio::task::JoinHandle<()>,
    interval: Duration,
    service_name: String,
}

impl OtlpExporter {
    /// Starts configuring an exporter.
    ///
    /// ```
    /// let builder = beluga_exporter_otlp::OtlpExporter::builder()
    ///     .endpoint("http://127.0.0.1:4318")
    ///     .interval(std::time::Duration::from_secs(10));
    /// # let _ = builder;
    /// ```
    pub fn builder() -> OtlpExporterBuilder {
        OtlpExporterBuilder::default()
    }

    /// The export interval in effect.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The `service.name` in effect.
    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// Exports now and waits for the outcome.
    pub async fn force_flush(&self) -> Result<(), ExportError> {
        let (reply, outcome) = oneshot::channel();
        self.commands
            .send(Command::Flush(reply))
            .await
            .map_err(|_| ExportError::Stopped)?;
        outcome.await.map_err(|_| ExportError::Stopped)?
    }

    /// Makes a final export and stops, returning within `deadline` whatever
    /// the collector does. A periodic export still waiting on the collector
    /// is abandoned so that the final one gets its own attempts; they and
    /// their backoff never run past the deadline, and the error reports how
    /// many were made.
    pub async fn shutdown(self, deadline: Duration) -> Result<(), ExportError> {
        let until = Instant::now() + deadline;
        let (reply, outcome) = oneshot::channel();
        // The final export bounds itself by `until`; the margin only covers
        // scheduling, so that its own error (with its attempt count) wins.
        let result = tokio::time::timeout_at(until + Duration::from_millis(250), async {
            self.commands
                .send(Command::Shutdown(until, reply))
                .await
                .map_err(|_| ExportError::Stopped)?;
            outcome.await.map_err(|_| ExportError::Stopped)?
        })
        .await;
        self.task.abort();
        // Past the margin the worker never answered: no attempt finished.
        result.unwrap_or(Err(ExportError::DeadlineExceeded { attempts: 0 }))
    }
}

impl Drop for OtlpExporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}
