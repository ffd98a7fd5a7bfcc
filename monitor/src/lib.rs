//! The agent-monitoring API of the tutorial, in Rust: a [`Monitor`] with a
//! service name and the standard metrics an AI agent records from its loop.
//!
//! Every standard metric lives in an ordinary [`Registry`], so any exporter
//! serves it unchanged. Metric names, labels and buckets are listed in
//! `docs/metrics.md`, with the PromQL that reads each one.
//!
//! ```
//! use std::time::Duration;
//! use beluga_monitor::{LlmCall, Monitor, SafetyVerdict};
//! use beluga_metrics::{Format, Registry};
//!
//! let registry = Registry::new();
//! let monitor = Monitor::builder().service_name("my-agent").registry(&registry).build()?;
//! let metrics = monitor.metrics();
//! metrics.record_api_request("POST", "/v1/chat", 200, Duration::from_millis(350))?;
//! metrics.record_llm_call(&LlmCall::chat("openai", "gpt-4o", "free")
//!     .duration(Duration::from_millis(900))
//!     .tokens(1200, 300))?;
//! metrics.record_safety_check("violence", SafetyVerdict::Unsafe, Duration::from_millis(4))?;
//!
//! let text = registry.encode(Format::PrometheusText);
//! assert!(text.contains(r#"monitoring_api_requests_total{method="POST",endpoint="/v1/chat",status="200"} 1"#));
//! assert!(text.contains(r#"target_info{service_name="my-agent""#));
//! # Ok::<(), beluga_monitor::MonitorError>(())
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod custom;
mod error;
mod handles;
mod recorders;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use custom::CustomLabels;
pub use error::{ErrorKind, MonitorError};
pub use handles::{ActiveOperation, OperationHandle, SafetyCheckHandle, ToolCallHandle};
pub use recorders::{
    AgentMetrics, ApiRequestHandle, LlmCall, LlmCallHandle, OperationGuard, SafetyVerdict,
};

use beluga_metrics::{Opts, Registry};

/// The service name used when neither the builder nor `OTEL_SERVICE_NAME` gives one.
pub const DEFAULT_SERVICE_NAME: &str = "unknown_service";

/// Builds a [`Monitor`].
#[derive(Debug, Clone, Default)]
pub struct MonitorBuilder {
    service_name: Option<String>,
    metrics: Option<bool>,
    registry: Option<Registry>,
    cardinality_limit: Option<usize>,
}

impl MonitorBuilder {
    /// Names the service (the `service_name` label of `target_info`).
    /// Without it, `OTEL_SERVICE_NAME` is used, then `unknown_service`.
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// let monitor = Monitor::builder().service_name("support-bot").registry(&Default::default()).build()?;
    /// assert_eq!(monitor.service_name(), "support-bot");
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Turns metrics on (the default) or off. A monitor with metrics off
    /// registers nothing, and every recording call returns `Ok(())` at once.
    ///
    /// ```
    /// use beluga_monitor::Monitor;
    /// use beluga_metrics::{Format, Registry};
    /// let registry = Registry::new();
    /// let monitor = Monitor::builder().metrics(false).registry(&registry).build()?;
    /// monitor.metrics().record_error("planner", "timeout")?;
    /// assert_eq!(registry.encode(Format::PrometheusText), "");
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn metrics(mut self, enabled: bool) -> Self {
        self.metrics = Some(enabled);
        self
    }

    /// Records into `registry` (default: [`Registry::global`]).
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// let registry = beluga_metrics::Registry::new();
    /// let monitor = Monitor::builder().registry(&registry).build()?;
    /// assert!(registry.encode(beluga_metrics::Format::PrometheusText).contains("target_info"));
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Caps the distinct label sets of every standard metric (default: the
    /// registry's, 2000 unless changed). Label sets past the cap record into
    /// an `otel_metric_overflow="true"` series.
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// let monitor = Monitor::builder().cardinality_limit(100).registry(&Default::default()).build()?;
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn cardinality_limit(mut self, limit: usize) -> Self {
        self.cardinality_limit = Some(limit);
        self
    }

    /// Registers the standard metrics and returns the monitor. Fails only if
    /// the registry already holds one of the standard names with another
    /// definition.
    ///
    /// ```
    /// # use beluga_monitor::{Monitor, MonitorError};
    /// let registry = beluga_metrics::Registry::new();
    /// registry.gauge(beluga_metrics::Opts::new("monitoring_errors", "Mine."))?;
    /// assert!(matches!(Monitor::builder().registry(&registry).build(), Err(MonitorError::Registry(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(self) -> Result<Monitor, MonitorError> {
        let service_name = self
            .service_name
            .or_else(|| {
                std::env::var("OTEL_SERVICE_NAME")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string());
        let registry = self.registry.unwrap_or_else(|| Registry::global().clone());
        let started = Instant::now();
        let enabled = self.metrics.unwrap_or(true);
        let metrics = if enabled {
            let info = registry.gauge_family(
                Opts::new(
                    "target_info",
                    "Target metadata: the service and the library recording it.",
                )
                .labels([
                    "service_name",
                    "telemetry_sdk_name",
                    "telemetry_sdk_language",
                    "telemetry_sdk_version",
                ]),
            )?;
            info.with_labels(&[
                service_name.as_str(),
                "beluga-metrics",
                "rust",
                env!("CARGO_PKG_VERSION"),
            ])?
            .set(1.0);
            let start_time = registry.gauge(
                Opts::new(
                    "monitoring_start_time_seconds",
                    "When the monitor started, in seconds since the Unix epoch.",
                )
                .unit(beluga_metrics::Unit::SECONDS),
            )?;
            let since_epoch = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO);
            start_time.set(since_epoch.as_secs_f64());
            AgentMetrics::register(&registry, self.cardinality_limit)?
        } else {
            AgentMetrics::disabled()
        };
        Ok(Monitor {
            inner: Arc::new(MonitorInner {
                service_name,
                registry,
                started,
                metrics,
            }),
        })
    }
}

struct MonitorInner {
    service_name: String,
    registry: Registry,
    started: Instant,
    metrics: AgentMetrics,
}

/// An agent's monitor: its service name, its registry and its standard
/// metrics. Cloning is cheap.
#[derive(Clone)]
pub struct Monitor {
    inner: Arc<MonitorInner>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("service_name", &self.inner.service_name)
            .field("metrics_enabled", &self.inner.metrics.is_enabled())
            .finish()
    }
}

impl Monitor {
    /// Starts building a monitor (see the module example).
    pub fn builder() -> MonitorBuilder {
        MonitorBuilder::default()
    }

    /// The standard metrics and the custom-metric API.
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// monitor.metrics().update_component_health("llm_gateway", true)?;
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn metrics(&self) -> &AgentMetrics {
        &self.inner.metrics
    }

    /// The service name.
    ///
    /// ```
    /// use beluga_monitor::Monitor;
    /// let m = Monitor::builder().service_name("triage-bot").registry(&Default::default()).build()?;
    /// assert_eq!(m.service_name(), "triage-bot");
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn service_name(&self) -> &str {
        &self.inner.service_name
    }

    /// The registry the monitor records into (serve it with an exporter).
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// let text = monitor.registry().encode(beluga_metrics::Format::OpenMetrics);
    /// assert!(text.ends_with("# EOF\n"));
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Time since the monitor was built. Prometheus computes the same from
    /// `time() - monitoring_start_time_seconds`.
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// # let m = Monitor::builder().registry(&Default::default()).build()?;
    /// assert!(m.uptime() < std::time::Duration::from_secs(60));
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }
}
