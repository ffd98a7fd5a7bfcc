//! # beluga-metrics-facade
//!
//! A [`metrics`] facade recorder backed by a beluga [`Registry`]: every
//! `counter!`, `gauge!` and `histogram!` call, in your code and in your
//! dependencies, lands in a beluga family and is served by whichever
//! exporter serves that registry (`/metrics`, Pushgateway, OTLP) unchanged.
//!
//! ```
//! use beluga_metrics::{Format, Registry};
//! use beluga_metrics_facade::BelugaRecorder;
//!
//! let registry = Registry::new();
//! let recorder = BelugaRecorder::builder().registry(&registry).build()?;
//! // `recorder.install()?` makes it the process-wide recorder; a local one
//! // serves the calls made inside the closure on this thread:
//! metrics::with_local_recorder(&recorder, || {
//!     metrics::describe_counter!("tool_calls", "Tool calls made.");
//!     metrics::counter!("tool_calls", "tool" => "search").increment(2);
//!     metrics::gauge!("queue.depth").set(7.0);
//!     metrics::histogram!("llm_latency_seconds").record(0.8);
//! });
//!
//! let text = registry.encode(Format::PrometheusText);
//! assert!(text.contains("# HELP tool_calls_total Tool calls made.\n"));
//! assert!(text.contains("tool_calls_total{tool=\"search\"} 2\n"));
//! assert!(text.contains("queue_depth 7.0\n")); // `.` is not allowed: `_`
//! assert!(text.contains("llm_latency_seconds_count 1\n"));
//! # Ok::<(), beluga_metrics::RegistryError>(())
//! ```
//!
//! ## How keys become series
//!
//! * **Names** keep their spelling, with every character Prometheus does not
//!   allow replaced by `_` (`http.requests` is exposed as `http_requests`).
//!   Counters are exposed with `_total`, as OpenMetrics requires. Two names
//!   that differ as written but are exposed alike (`http.requests`,
//!   `http-requests`) never merge: the first one used creates the family,
//!   the other records nothing and is counted (`name_collision`). At most
//!   [`RecorderBuilder::max_families`] names (default 10,000) get a family;
//!   a new name past that is counted (`family_limit`).
//! * **Label keys** of the first call that uses a name become the family's
//!   label names; later calls may give them in any order. A call whose label
//!   keys differ (one more, one fewer, another name) records nothing and is
//!   counted in `beluga_metrics_facade_rejected_total{reason="label_names"}`:
//!   never a panic. So are a name used as two instrument types
//!   (`conflict`), a name the registry refuses, e.g. a gauge ending in
//!   `_total` (`invalid_name`), and a label value over the engine's length
//!   limit (`label_value`). Label sets past the family's cardinality limit go
//!   to its overflow series, as for any beluga family.
//! * **`describe_*`** sets the help text, and the unit when the name already
//!   ends with its suffix (`_seconds`, `_bytes`); names are never rewritten.
//!   Help and unit are fixed when the family is created by the first record,
//!   so describe at start-up; a later, different description is counted as
//!   `late_description` and dropped.
//! * **Histograms** use [`RecorderBuilder::buckets`] (default: Prometheus'
//!   default buckets), or the buckets of the first
//!   [`RecorderBuilder::buckets_for_metric`] rule whose [`Matcher`] matches
//!   the name as written at the call site. The engine's per-thread HDR
//!   histogram keeps quantiles either way.
//!
//! ## What a macro call costs
//!
//! Every macro call asks the recorder for the handle again. A thread's
//! repeated calls with the same key are answered from a per-thread cache
//! (no lock, no allocation, nothing written to a line another thread
//! reads), then the record costs what a beluga handle costs. The first call
//! of a key on a thread takes the shared path: a read lock on the name
//! table and a family lookup. Keep the handle the macro returns in hot loops
//! and even the cache lookup goes. Measured against
//! `metrics-exporter-prometheus` in `docs/benchmarks.md`.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod families;
mod handles;
mod names;
mod thread_cache;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use beluga_metrics::{Buckets, Registry, RegistryError};
use metrics::{Key, KeyName, Metadata, Recorder, SharedString};

use families::{Families, Kind, Resolved};
use handles::{FacadeCounter, FacadeGauge, FacadeHistogram};
use thread_cache::Cached;

/// The self-metric counting facade calls that recorded nothing, by
/// [`Rejection`] reason.
pub const REJECTIONS_METRIC: &str = "beluga_metrics_facade_rejected_total";

/// Why a `metrics` call recorded nothing. Each is counted in
/// [`REJECTIONS_METRIC`] under the label `reason` ([`Rejection::as_str`]).
///
/// ```
/// use beluga_metrics_facade::Rejection;
/// assert_eq!(Rejection::LabelNames.as_str(), "label_names");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The call's label keys differ from those of the family's first call
    /// (or repeat a key).
    LabelNames,
    /// The name is already used by another instrument type, or its exposed
    /// names collide with another family's (`x` histogram vs `x_count`).
    Conflict,
    /// The registry refused the name (e.g. a gauge or histogram ending in
    /// `_total`, or a name of underscores only).
    InvalidName,
    /// A label value the engine refuses (longer than
    /// [`beluga_metrics::MAX_LABEL_VALUE_BYTES`]).
    LabelValue,
    /// A `describe_*` call after the family was created, with other text.
    LateDescription,
    /// The name, as written, differs from the name that created the family
    /// both are exposed as (`http.requests` and `http-requests` are both
    /// exposed as `http_requests`): the second one records nothing rather
    /// than merging silently into the first one's series.
    NameCollision,
    /// The recorder holds [`RecorderBuilder::max_families`] families
    /// already; a new name records nothing.
    FamilyLimit,
}

impl Rejection {
    /// The value of the self-metric's `reason` label.
    ///
    /// ```
    /// assert_eq!(beluga_metrics_facade::Rejection::Conflict.as_str(), "conflict");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::LabelNames => "label_names",
            Rejection::Conflict => "conflict",
            Rejection::InvalidName => "invalid_name",
            Rejection::LabelValue => "label_value",
            Rejection::LateDescription => "late_description",
            Rejection::NameCollision => "name_collision",
            Rejection::FamilyLimit => "family_limit",
        }
    }
}

/// Which histogram names a [`RecorderBuilder::buckets_for_metric`] rule
/// applies to, matched against the name as written at the call site.
///
/// ```
/// use beluga_metrics_facade::Matcher;
/// assert!(Matcher::Suffix("_seconds".into()).matches("db_query_seconds"));
/// assert!(Matcher::Prefix("llm.".into()).matches("llm.latency"));
/// assert!(!Matcher::Full("llm".into()).matches("llm.latency"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Matcher {
    /// The whole name.
    Full(String),
    /// Names starting with this.
    Prefix(String),
    /// Names ending with this.
    Suffix(String),
}

impl Matcher {
    /// Whether `name` is one this rule applies to.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Matcher::Full(full) => name == full,
            Matcher::Prefix(prefix) => name.starts_with(prefix.as_str()),
            Matcher::Suffix(suffix) => name.ends_with(suffix.as_str()),
        }
    }
}

/// Settings for a [`BelugaRecorder`].
///
/// ```
/// use beluga_metrics::{Buckets, Registry};
/// use beluga_metrics_facade::{BelugaRecorder, Matcher};
///
/// let registry = Registry::new();
/// let recorder = BelugaRecorder::builder()
///     .registry(&registry)
///     .buckets(Buckets::exponential(0.001, 2.0, 16))
///     .buckets_for_metric(Matcher::Prefix("tokens".into()), Buckets::new([10.0, 100.0, 1000.0]))
///     .build()?;
/// # Ok::<(), beluga_metrics::RegistryError>(())
/// ```
#[derive(Debug, Default)]
pub struct RecorderBuilder {
    registry: Option<Registry>,
    buckets: Option<Buckets>,
    rules: Vec<(Matcher, Buckets)>,
    max_families: Option<usize>,
}

/// How many families (distinct metric names) a recorder creates unless
/// [`RecorderBuilder::max_families`] says otherwise.
pub const DEFAULT_MAX_FAMILIES: usize = 10_000;

impl RecorderBuilder {
    /// The registry the families go to (default: [`Registry::global`]).
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Buckets of histograms no rule matches (default:
    /// [`Buckets::prometheus_default`]).
    pub fn buckets(mut self, buckets: Buckets) -> Self {
        self.buckets = Some(buckets);
        self
    }

    /// Buckets of histograms whose name `matcher` matches. Rules are tried
    /// in the order they were added; the first match wins.
    pub fn buckets_for_metric(mut self, matcher: Matcher, buckets: Buckets) -> Self {
        self.rules.push((matcher, buckets));
        self
    }

    /// The most families (distinct exposed names) the recorder creates
    /// (default [`DEFAULT_MAX_FAMILIES`]). A call with a new name past it
    /// records nothing and is counted as [`Rejection::FamilyLimit`]: names
    /// built from unbounded input (a URL, a user id) cannot grow the process
    /// without bound. Names in use keep recording.
    ///
    /// ```
    /// use beluga_metrics::{Format, Registry};
    /// use beluga_metrics_facade::BelugaRecorder;
    /// let registry = Registry::new();
    /// let recorder = BelugaRecorder::builder().registry(&registry).max_families(1).build()?;
    /// metrics::with_local_recorder(&recorder, || {
    ///     metrics::counter!("first").increment(1);
    ///     metrics::counter!("second").increment(1);
    /// });
    /// let text = registry.encode(Format::PrometheusText);
    /// assert!(text.contains("first_total 1\n") && !text.contains("second"));
    /// assert!(text.contains("beluga_metrics_facade_rejected_total{reason=\"family_limit\"} 1\n"));
    /// # Ok::<(), beluga_metrics::RegistryError>(())
    /// ```
    pub fn max_families(mut self, families: usize) -> Self {
        self.max_families = Some(families);
        self
    }

    /// Builds the recorder. Fails if the registry refuses the self-metric
    /// (another family already uses its name) or the buckets are invalid.
    ///
    /// ```
    /// use beluga_metrics::{Buckets, RegistryError};
    /// let bad = beluga_metrics_facade::BelugaRecorder::builder()
    ///     .registry(&Default::default())
    ///     .buckets(Buckets::new([2.0, 1.0]))
    ///     .build();
    /// assert!(matches!(bad, Err(RegistryError::InvalidBuckets { .. })));
    /// ```
    pub fn build(self) -> Result<BelugaRecorder, RegistryError> {
        let registry = self.registry.unwrap_or_else(|| Registry::global().clone());
        let buckets = self.buckets.unwrap_or_else(Buckets::prometheus_default);
        for (_, b) in std::iter::once(&(Matcher::Full(String::new()), buckets.clone()))
            .chain(self.rules.iter())
        {
            b.check().map_err(|reason| RegistryError::InvalidBuckets {
                metric: "(metrics-facade buckets)".into(),
                reason,
            })?;
        }
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Ok(BelugaRecorder {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            families: Arc::new(Families::new(
                registry,
                buckets,
                self.rules,
                self.max_families.unwrap_or(DEFAULT_MAX_FAMILIES),
            )?),
        })
    }
}

/// A [`metrics::Recorder`] that records into a beluga [`Registry`].
/// Cloning it gives another handle to the same families.
///
/// ```
/// use beluga_metrics::{Format, Registry};
/// use beluga_metrics_facade::BelugaRecorder;
///
/// let registry = Registry::new();
/// let recorder = BelugaRecorder::builder().registry(&registry).build()?;
/// metrics::with_local_recorder(&recorder, || {
///     metrics::counter!("steps", "agent" => "planner").increment(1);
///     // Other label keys than the family's first call: counted, not recorded.
///     metrics::counter!("steps", "tool" => "search").increment(1);
/// });
/// let text = registry.encode(Format::PrometheusText);
/// assert!(text.contains("steps_total{agent=\"planner\"} 1\n"));
/// assert!(text.contains("beluga_metrics_facade_rejected_total{reason=\"label_names\"} 1\n"));
/// # Ok::<(), beluga_metrics::RegistryError>(())
/// ```
#[derive(Clone, Debug)]
pub struct BelugaRecorder {
    /// Distinguishes this recorder's entries in the per-thread caches.
    id: u64,
    families: Arc<Families>,
}

/// [`BelugaRecorder::install`] failed: a global recorder was already set.
///
/// ```
/// # use beluga_metrics_facade::InstallError;
/// let e = InstallError;
/// assert!(e.to_string().contains("already"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstallError;

impl std::fmt::Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a global `metrics` recorder was already installed in this process")
    }
}

impl std::error::Error for InstallError {}

impl BelugaRecorder {
    /// Settings, starting from the defaults.
    pub fn builder() -> RecorderBuilder {
        RecorderBuilder::default()
    }

    /// Makes this the process-wide `metrics` recorder. Only the first
    /// recorder installed in a process is kept ([`InstallError`] after).
    ///
    /// ```no_run
    /// let recorder = beluga_metrics_facade::BelugaRecorder::builder().build()?;
    /// recorder.install()?;
    /// metrics::counter!("starts").increment(1); // now in Registry::global()
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn install(self) -> Result<(), InstallError> {
        metrics::set_global_recorder(self).map_err(|_| InstallError)
    }

    fn handle(&self, kind: Kind, key: &Key) -> Option<Cached> {
        if let Some(cached) = thread_cache::get(self.id, kind, key) {
            return Some(cached);
        }
        self.resolve(kind, key)
    }

    #[cold]
    #[inline(never)]
    fn resolve(&self, kind: Kind, key: &Key) -> Option<Cached> {
        let handle = match self.families.resolve(kind, key) {
            Ok(Resolved::Counter(c)) => Cached::Counter(Arc::new(FacadeCounter(c))),
            Ok(Resolved::Gauge(g)) => Cached::Gauge(Arc::new(FacadeGauge(g))),
            Ok(Resolved::Histogram(h)) => Cached::Histogram(Arc::new(FacadeHistogram(h))),
            Err(why) => {
                self.families.reject(why);
                return None;
            }
        };
        thread_cache::put(self.id, kind, key, handle.clone());
        Some(handle)
    }
}

impl Recorder for BelugaRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<metrics::Unit>, help: SharedString) {
        self.families.describe(key.as_str(), unit, &help);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<metrics::Unit>, help: SharedString) {
        self.families.describe(key.as_str(), unit, &help);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<metrics::Unit>, help: SharedString) {
        self.families.describe(key.as_str(), unit, &help);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> metrics::Counter {
        match self.handle(Kind::Counter, key) {
            Some(Cached::Counter(c)) => metrics::Counter::from_arc(c),
            _ => metrics::Counter::noop(),
        }
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> metrics::Gauge {
        match self.handle(Kind::Gauge, key) {
            Some(Cached::Gauge(g)) => metrics::Gauge::from_arc(g),
            _ => metrics::Gauge::noop(),
        }
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> metrics::Histogram {
        match self.handle(Kind::Histogram, key) {
            Some(Cached::Histogram(h)) => metrics::Histogram::from_arc(h),
            _ => metrics::Histogram::noop(),
        }
    }
}
