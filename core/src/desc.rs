//! What a metric is: its name, help, unit, type and label names.

use std::sync::Arc;

/// The unit of a metric, as Prometheus and OpenTelemetry each spell it.
///
/// Prometheus and OpenMetrics put the unit at the end of the name
/// (`_seconds`); OpenTelemetry carries a UCUM string (`s`). Units written in
/// braces, such as `{token}`, are annotations: they add no name suffix.
///
/// ```
/// use beluga_metrics::Unit;
/// assert_eq!(Unit::SECONDS.prometheus_suffix(), Some("seconds"));
/// assert_eq!(Unit::SECONDS.ucum(), "s");
/// assert_eq!(Unit::TOKENS.prometheus_suffix(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Unit {
    prometheus: Option<&'static str>,
    ucum: &'static str,
}

impl Unit {
    /// No unit.
    pub const NONE: Unit = Unit::custom(None, "");
    /// Seconds (`_seconds`, UCUM `s`): the base unit for every duration.
    pub const SECONDS: Unit = Unit::custom(Some("seconds"), "s");
    /// Bytes (`_bytes`, UCUM `By`).
    pub const BYTES: Unit = Unit::custom(Some("bytes"), "By");
    /// A ratio between 0 and 1 (`_ratio`, UCUM `1`).
    pub const RATIO: Unit = Unit::custom(Some("ratio"), "1");
    /// Language-model tokens (UCUM annotation `{token}`, no name suffix).
    pub const TOKENS: Unit = Unit::custom(None, "{token}");
    /// US dollars (`_usd`, UCUM `USD`), for cost counters.
    pub const USD: Unit = Unit::custom(Some("usd"), "USD");

    /// A unit of your own: the Prometheus name suffix (without the leading
    /// underscore; `None` for annotations) and the UCUM string for OTLP.
    ///
    /// ```
    /// use beluga_metrics::Unit;
    /// let joules = Unit::custom(Some("joules"), "J");
    /// assert_eq!(joules.prometheus_suffix(), Some("joules"));
    /// ```
    pub const fn custom(prometheus_suffix: Option<&'static str>, ucum: &'static str) -> Unit {
        Unit {
            prometheus: prometheus_suffix,
            ucum,
        }
    }

    /// The suffix the metric name must end with, without the underscore.
    pub fn prometheus_suffix(&self) -> Option<&'static str> {
        self.prometheus
    }

    /// The unit in UCUM notation, as OpenTelemetry expects it.
    pub fn ucum(&self) -> &'static str {
        self.ucum
    }
}

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// A value that only goes up (integer or floating point).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A distribution of observations in buckets, with sum and count.
    Histogram,
}

impl MetricType {
    /// The word Prometheus uses in `# TYPE` lines.
    pub fn as_str(&self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
        }
    }
}

/// How to register a metric: name, help, and optionally unit, label names
/// and cardinality limit.
///
/// ```
/// use beluga_metrics::{Opts, Unit};
/// let opts = Opts::new("agent_llm_call_duration_seconds", "Duration of LLM calls.")
///     .unit(Unit::SECONDS)
///     .labels(["model", "tenant"])
///     .cardinality_limit(500);
/// assert_eq!(opts.name(), "agent_llm_call_duration_seconds");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opts {
    pub(crate) name: String,
    pub(crate) help: String,
    pub(crate) unit: Unit,
    pub(crate) label_names: Vec<String>,
    pub(crate) cardinality_limit: Option<usize>,
    pub(crate) idle_expiry: Option<std::time::Duration>,
}

impl Opts {
    /// A metric called `name`, described by `help` (any text; it is escaped
    /// on output). Counter names may be given with or without `_total`.
    pub fn new(name: impl Into<String>, help: impl Into<String>) -> Self {
        Opts {
            name: name.into(),
            help: help.into(),
            unit: Unit::NONE,
            label_names: Vec::new(),
            cardinality_limit: None,
            idle_expiry: None,
        }
    }

    /// Sets the unit. The name must then end with the unit's suffix.
    pub fn unit(mut self, unit: Unit) -> Self {
        self.unit = unit;
        self
    }

    /// Sets the label names of a family, in the order values will be given.
    pub fn labels<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.label_names = names.into_iter().map(Into::into).collect();
        self
    }

    /// Caps the number of distinct label sets (default: the registry's,
    /// 2000 unless changed). Label sets past the cap record into one
    /// overflow series labelled `otel_metric_overflow="true"`.
    pub fn cardinality_limit(mut self, limit: usize) -> Self {
        self.cardinality_limit = Some(limit);
        self
    }

    /// Drops series that nothing records into for `idle` (opt-in; default:
    /// series live until [`Family::remove`](crate::Family::remove)). Checked
    /// at encode time, so it costs recording nothing: a series whose value
    /// an encode finds unchanged for longer than `idle` is left out of that
    /// exposition and out of the family (freeing its place under the
    /// cardinality limit, and its memory once no handle holds it).
    ///
    /// A handle kept by the user goes on working: its next record brings
    /// the series back, with everything it counted. A series nobody holds
    /// is gone; the next lookup of its label values starts a new one from
    /// zero, which Prometheus reads as a counter reset (`rate()` and
    /// `increase()` handle it).
    ///
    /// ```
    /// use std::time::Duration;
    /// use beluga_metrics::{Opts, Registry};
    /// let registry = Registry::new();
    /// let per_tenant = registry.counter_family(
    ///     Opts::new("agent_requests_total", "Requests.")
    ///         .labels(["tenant"])
    ///         .expire_after_idle(Duration::from_secs(600)),
    /// )?;
    /// per_tenant.with(&["acme"], |c| c.inc())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn expire_after_idle(mut self, idle: std::time::Duration) -> Self {
        self.idle_expiry = Some(idle);
        self
    }

    /// The name as given.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A registered family's description, as exporters read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Descriptor {
    pub(crate) name: Arc<str>,
    pub(crate) help: Arc<str>,
    pub(crate) unit: Unit,
    pub(crate) metric_type: MetricType,
    pub(crate) label_names: Arc<[Box<str>]>,
}

impl Descriptor {
    /// The family name: for counters without the `_total` suffix that the
    /// samples carry.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The help text, unescaped.
    pub fn help(&self) -> &str {
        &self.help
    }

    /// The unit.
    pub fn unit(&self) -> Unit {
        self.unit
    }

    /// The type.
    pub fn metric_type(&self) -> MetricType {
        self.metric_type
    }

    /// The label names every (non-overflow) series of the family carries.
    pub fn label_names(&self) -> &[Box<str>] {
        &self.label_names
    }

    /// Every name this family writes into an exposition, in either format.
    pub(crate) fn exposed_names(&self) -> Vec<String> {
        let n = &*self.name;
        match self.metric_type {
            MetricType::Counter => vec![n.into(), format!("{n}_total"), format!("{n}_created")],
            MetricType::Gauge => vec![n.into()],
            MetricType::Histogram => vec![
                n.into(),
                format!("{n}_bucket"),
                format!("{n}_count"),
                format!("{n}_sum"),
                format!("{n}_created"),
            ],
        }
    }
}
