//! Histogram handles and the timer that records into them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sealed::Sealed;
use crate::desc::MetricType;
use crate::error::ValueError;
use crate::exemplar::{Exemplar, ExemplarError};
use crate::histogram::{
    BucketMap, ExponentialBuckets, ExponentialScale, HistogramStorage, HistogramValue, Quantiles,
};
use crate::sample::Value;
use crate::series::Series;

/// A handle to one histogram series. Cloning it is cheap; all clones record
/// into the same series.
///
/// Recording never locks and never allocates, except once per thread per
/// series: the first record a thread makes into a series allocates its
/// per-thread histogram (about 11 KiB with the GenAI buckets).
///
/// ```
/// use beluga_metrics::{Buckets, Opts, Registry, Unit};
/// let registry = Registry::new();
/// let latency = registry.histogram(
///     Opts::new("tool_call_duration_seconds", "Tool call duration.").unit(Unit::SECONDS),
///     Buckets::gen_ai_operation_duration(),
/// )?;
/// latency.record(0.5);
/// latency.record_duration(std::time::Duration::from_millis(250));
/// let value = latency.get();
/// assert_eq!(value.count(), 2);
/// assert_eq!(value.sum(), 0.75);
/// # Ok::<(), beluga_metrics::RegistryError>(())
/// ```
#[derive(Clone)]
pub struct Histogram {
    series: Arc<Series<HistogramStorage>>,
}

impl Histogram {
    /// Records one observation. NaN and `±Inf` are dropped and counted in
    /// the `beluga_invalid_values_total` self-metric (an infinite
    /// observation would make `_sum` infinite, or NaN, for good). Negative
    /// values count in their bucket and in the sum (they count as 0 in
    /// quantiles). A sum that passes `±f64::MAX` saturates there and stays
    /// (it is never exposed as `±Inf` or NaN).
    #[inline]
    pub fn record(&self, value: f64) {
        self.series.storage.record(value);
    }

    /// Records one observation, refusing NaN and `±Inf` with an error.
    ///
    /// ```
    /// # use beluga_metrics::{Buckets, Opts, Registry, ValueError};
    /// # let h = Registry::new().histogram(Opts::new("h", "h"), Buckets::default()).unwrap();
    /// assert_eq!(h.try_record(f64::NAN), Err(ValueError::NaN));
    /// assert_eq!(h.try_record(f64::INFINITY), Err(ValueError::Infinite));
    /// assert_eq!(h.try_record(1.0), Ok(()));
    /// ```
    pub fn try_record(&self, value: f64) -> Result<(), ValueError> {
        if value.is_nan() {
            return Err(ValueError::NaN);
        }
        if value.is_infinite() {
            return Err(ValueError::Infinite);
        }
        self.record(value);
        Ok(())
    }

    /// Records one observation and keeps `exemplar` as the latest of the
    /// bucket it lands in (OpenMetrics and the protobuf format expose it on
    /// that bucket's line, OTLP on the data point). The observation is
    /// recorded even when the exemplar is refused ([`ExemplarError`]);
    /// exemplars of NaN or infinite values are dropped with the value.
    /// Keeping one costs a clock read and about fifteen stores into the
    /// bucket's slot, taken without a lock (if another thread is writing
    /// the same slot at that instant, one of the two is kept); the slots,
    /// about 120 bytes per bucket, are allocated on a series' first
    /// exemplar. [`record`](Self::record) is unchanged by all this.
    pub fn record_with_exemplar(
        &self,
        value: f64,
        exemplar: &Exemplar<'_>,
    ) -> Result<(), ExemplarError> {
        self.record(value);
        if !value.is_finite() {
            return Ok(());
        }
        let (bucket, buckets) = self.series.storage.bucket_of(value);
        self.series
            .exemplars
            .record(bucket, buckets, exemplar, value)
    }

    /// Records a duration in seconds (use it on histograms in seconds).
    #[inline]
    pub fn record_duration(&self, duration: Duration) {
        self.record(duration.as_secs_f64());
    }

    /// Starts a timer that records the elapsed seconds when dropped.
    ///
    /// ```
    /// # use beluga_metrics::{Buckets, Opts, Registry, Unit};
    /// # let h = Registry::new().histogram(Opts::new("op_seconds", "Op.").unit(Unit::SECONDS), Buckets::default()).unwrap();
    /// {
    ///     let _timer = h.start_timer();
    ///     // ... the work being timed ...
    /// }
    /// assert_eq!(h.get().count(), 1);
    /// ```
    pub fn start_timer(&self) -> HistogramTimer<'_> {
        HistogramTimer {
            histogram: self,
            start: Instant::now(),
            armed: true,
        }
    }

    /// Exact bucket counts, sum, count, min and max across all threads.
    pub fn get(&self) -> HistogramValue {
        let mut value = HistogramValue::empty();
        self.series.storage.read_exact(&mut value);
        value
    }

    /// Quantiles from the merged per-thread HDR histograms.
    pub fn quantiles(&self) -> Quantiles {
        self.series.storage.quantiles()
    }

    /// The observations in base-2 exponential buckets, derived from the
    /// merged HDR counts (what Prometheus native histograms and OTLP
    /// exponential histograms carry; see [`ExponentialBuckets`]).
    pub fn exponential(&self, want: ExponentialScale) -> ExponentialBuckets {
        let mut out = ExponentialBuckets::empty();
        self.series.storage.exponential_into(want, &mut out);
        out
    }

    /// See [`diagnostics::histogram_bytes_per_recording_thread`](crate::diagnostics::histogram_bytes_per_recording_thread).
    pub(crate) fn bytes_per_recording_thread(&self) -> usize {
        self.series.storage.bytes_per_recording_thread()
    }
}

/// Records the time since it was started into a histogram when dropped.
/// Made by [`Histogram::start_timer`].
#[must_use = "the timer records when dropped; binding it to `_` drops it at once"]
#[derive(Debug)]
pub struct HistogramTimer<'a> {
    histogram: &'a Histogram,
    start: Instant,
    armed: bool,
}

impl HistogramTimer<'_> {
    /// Records now and returns the elapsed time.
    pub fn stop(mut self) -> Duration {
        let elapsed = self.start.elapsed();
        self.histogram.record_duration(elapsed);
        self.armed = false;
        elapsed
    }

    /// Drops the timer without recording (for example when the operation
    /// was cancelled).
    pub fn discard(mut self) {
        self.armed = false;
    }
}

impl Drop for HistogramTimer<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.histogram.record_duration(self.start.elapsed());
        }
    }
}

impl Sealed for Histogram {
    type Storage = HistogramStorage;
    const TYPE: MetricType = MetricType::Histogram;
    fn new_storage(buckets: Option<&Arc<BucketMap>>) -> HistogramStorage {
        let buckets = buckets.cloned();
        HistogramStorage::new(buckets.unwrap_or_else(|| Arc::new(BucketMap::new(Arc::from([])))))
    }
    fn from_series(series: Arc<Series<HistogramStorage>>) -> Self {
        Histogram { series }
    }
    fn series(&self) -> &Arc<Series<HistogramStorage>> {
        &self.series
    }
    fn into_series(self) -> Arc<Series<HistogramStorage>> {
        self.series
    }
    fn read<'a>(storage: &HistogramStorage, scratch: &'a mut HistogramValue) -> Value<'a> {
        storage.read_exact(scratch);
        Value::Histogram(scratch)
    }
    const REFUSES_VALUES: bool = true;
    fn invalid_values(storage: &HistogramStorage) -> u64 {
        storage.invalid_count()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = self.get();
        f.debug_struct("Histogram")
            .field("label_values", &self.series.label_values)
            .field("count", &value.count())
            .field("sum", &value.sum())
            .finish()
    }
}
