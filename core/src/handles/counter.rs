//! Integer and floating-point counter handles.

use std::sync::Arc;

use super::sealed::Sealed;
use crate::desc::MetricType;
use crate::error::ValueError;
use crate::exemplar::{Exemplar, ExemplarError};
use crate::histogram::{BucketMap, HistogramValue};
use crate::sample::Value;
use crate::series::Series;
use crate::shards::Shards;
use crate::sync::{AtomicU64, Ordering::Relaxed};

/// A handle to one monotonically increasing `u64` series. Cloning is cheap.
///
/// Increments go to a cache line owned by the calling thread: no locked
/// instruction, no allocation, no hashing (see `docs/architecture.md`).
///
/// ```
/// use beluga_metrics::{Opts, Registry};
/// let registry = Registry::new();
/// let calls = registry.counter(Opts::new("agent_tool_calls_total", "Tool calls made."))?;
/// calls.inc();
/// calls.add(2);
/// assert_eq!(calls.get(), 3);
/// # Ok::<(), beluga_metrics::RegistryError>(())
/// ```
#[derive(Clone)]
pub struct Counter {
    series: Arc<Series<Shards>>,
}

impl Counter {
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.series.storage.add_u64(1);
    }

    /// Adds `n`. The total saturates at `u64::MAX` instead of wrapping, so
    /// no scrape ever sees it go down; saturated adds are counted in the
    /// process-wide `beluga_saturated_increments_total` self-metric.
    ///
    /// ```
    /// # use beluga_metrics::{Opts, Registry};
    /// # let c = Registry::new().counter(Opts::new("bytes_total", "Bytes."))?;
    /// c.add(u64::MAX);
    /// c.inc();
    /// assert_eq!(c.get(), u64::MAX);
    /// # Ok::<(), beluga_metrics::RegistryError>(())
    /// ```
    #[inline]
    pub fn add(&self, n: u64) {
        self.series.storage.add_u64(n);
    }

    /// Adds `n` and keeps `exemplar` (with value `n`) as the counter's
    /// latest, exposed after the total in OpenMetrics and protobuf and as
    /// the OTLP point's exemplar. `n` is added even when the exemplar is
    /// refused ([`ExemplarError`]).
    ///
    /// ```
    /// use beluga_metrics::{Exemplar, Format, Opts, Registry};
    /// let registry = Registry::new();
    /// let errors = registry.counter(Opts::new("llm_errors_total", "LLM errors."))?;
    /// errors.add_with_exemplar(1, &Exemplar::new([0xab; 16], [0xcd; 8]))?;
    /// let text = registry.encode(Format::OpenMetrics);
    /// assert!(text.contains("llm_errors_total 1 # {trace_id=\"abababababababababababababababab\",span_id=\"cdcdcdcdcdcdcdcd\"} 1.0 "));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_with_exemplar(&self, n: u64, exemplar: &Exemplar<'_>) -> Result<(), ExemplarError> {
        self.add(n);
        self.series.exemplars.record(0, 1, exemplar, n as f64)
    }

    /// The current total across all threads.
    pub fn get(&self) -> u64 {
        self.series.storage.sum_u64()
    }
}

impl Sealed for Counter {
    type Storage = Shards;
    const TYPE: MetricType = MetricType::Counter;
    fn new_storage(_: Option<&Arc<BucketMap>>) -> Shards {
        Shards::new()
    }
    fn from_series(series: Arc<Series<Shards>>) -> Self {
        Counter { series }
    }
    fn series(&self) -> &Arc<Series<Shards>> {
        &self.series
    }
    fn into_series(self) -> Arc<Series<Shards>> {
        self.series
    }
    fn read<'a>(storage: &Shards, _: &'a mut HistogramValue) -> Value<'a> {
        Value::Counter(storage.sum_u64())
    }
}

/// Storage of a float counter: sharded sums plus refused values.
#[repr(C)]
pub struct FloatCounterStorage {
    /// First, right after the series' label values (see `Series`).
    shards: Shards,
    invalid: AtomicU64,
}

impl std::fmt::Debug for FloatCounterStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FloatCounterStorage")
            .field("sum", &self.shards.sum_f64())
            .field("invalid", &self.invalid.load(Relaxed))
            .finish()
    }
}

/// A handle to one monotonically increasing `f64` series, for amounts such
/// as cost in US dollars. Cloning is cheap.
///
/// ```
/// use beluga_metrics::{Opts, Registry, Unit};
/// let registry = Registry::new();
/// let cost = registry.float_counter(
///     Opts::new("agent_llm_cost_usd_total", "LLM spend.").unit(Unit::USD),
/// )?;
/// cost.add(0.25);
/// cost.add(0.5);
/// assert_eq!(cost.get(), 0.75);
/// # Ok::<(), beluga_metrics::RegistryError>(())
/// ```
#[derive(Clone)]
pub struct FloatCounter {
    series: Arc<Series<FloatCounterStorage>>,
}

impl FloatCounter {
    /// Adds `amount`. A negative, infinite or NaN amount, or one that would
    /// take the total past `f64::MAX`, is dropped and counted in the
    /// `beluga_invalid_values_total` self-metric: the total never becomes
    /// `+Inf` and never goes down.
    #[inline]
    pub fn add(&self, amount: f64) {
        if self.try_add(amount).is_err() {
            self.series.storage.invalid.fetch_add(1, Relaxed);
        }
    }

    /// Adds `amount`, or says why it cannot.
    ///
    /// ```
    /// # use beluga_metrics::{Opts, Registry, ValueError};
    /// # let c = Registry::new().float_counter(Opts::new("spend_total", "Spend."))?;
    /// assert_eq!(c.try_add(-1.0), Err(ValueError::NotMonotonic));
    /// assert_eq!(c.try_add(f64::NAN), Err(ValueError::NaN));
    /// c.add(f64::MAX);
    /// assert_eq!(c.try_add(f64::MAX), Err(ValueError::Overflow));
    /// assert_eq!(c.get(), f64::MAX);
    /// # Ok::<(), beluga_metrics::RegistryError>(())
    /// ```
    #[inline]
    pub fn try_add(&self, amount: f64) -> Result<(), ValueError> {
        if amount.is_nan() {
            return Err(ValueError::NaN);
        }
        if !(0.0..f64::INFINITY).contains(&amount) {
            return Err(ValueError::NotMonotonic);
        }
        if !self.series.storage.shards.add_f64(amount) {
            return Err(ValueError::Overflow);
        }
        Ok(())
    }

    /// The current total across all threads.
    pub fn get(&self) -> f64 {
        self.series.storage.shards.sum_f64()
    }
}

impl Sealed for FloatCounter {
    type Storage = FloatCounterStorage;
    const TYPE: MetricType = MetricType::Counter;
    fn new_storage(_: Option<&Arc<BucketMap>>) -> FloatCounterStorage {
        FloatCounterStorage {
            shards: Shards::new(),
            invalid: AtomicU64::new(0),
        }
    }
    fn from_series(series: Arc<Series<FloatCounterStorage>>) -> Self {
        FloatCounter { series }
    }
    fn series(&self) -> &Arc<Series<FloatCounterStorage>> {
        &self.series
    }
    fn into_series(self) -> Arc<Series<FloatCounterStorage>> {
        self.series
    }
    fn read<'a>(storage: &FloatCounterStorage, _: &'a mut HistogramValue) -> Value<'a> {
        Value::FloatCounter(storage.shards.sum_f64())
    }
    const REFUSES_VALUES: bool = true;
    fn invalid_values(storage: &FloatCounterStorage) -> u64 {
        storage.invalid.load(Relaxed)
    }
}

/// Heap bytes one counter series costs on the running target (cells and header).
pub(crate) fn counter_series_bytes() -> usize {
    Shards::bytes_per_counter() + std::mem::size_of::<Series<Shards>>()
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counter")
            .field("label_values", &self.series.label_values)
            .field("value", &self.get())
            .finish()
    }
}

impl std::fmt::Debug for FloatCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FloatCounter")
            .field("label_values", &self.series.label_values)
            .field("value", &self.get())
            .finish()
    }
}
