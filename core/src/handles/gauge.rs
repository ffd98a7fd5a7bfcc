//! Gauge handles.

use std::sync::Arc;

use super::sealed::Sealed;
use crate::desc::MetricType;
use crate::histogram::{BucketMap, HistogramValue};
use crate::sample::Value;
use crate::series::Series;
use crate::sync::{AtomicU64, Ordering::Relaxed};

/// A gauge's value, alone in its 64-byte line: gauges are written from many
/// threads, and a line of their own keeps those writes off whatever else
/// would share it.
///
/// 64 bytes, not `CachePadded`'s 128 on x86-64 (which guards against the
/// prefetcher that fetches lines in 128-byte pairs): `Series` puts the
/// label values first, and a 128-byte-aligned cell sat 80 bytes of padding
/// after them, 128 bytes more per series. Here the line paired with the
/// cell's is one of its own series' that no record writes: the label
/// values before it or the exposition text after it. Like the 128-byte
/// alignment before it, this one makes the gauge series an aligned
/// allocation (see `Series` for what that cost histograms).
#[derive(Debug)]
#[repr(C, align(64))]
pub struct GaugeCell(AtomicU64);

impl std::ops::Deref for GaugeCell {
    type Target = AtomicU64;
    #[inline(always)]
    fn deref(&self) -> &AtomicU64 {
        &self.0
    }
}

/// A handle to one series that goes up and down. Cloning is cheap.
///
/// `set` is a single store; `add`/`sub` are a compare-exchange loop on one
/// word alone in its cache line, so heavily contended gauges cost more
/// than counters.
/// NaN is a valid gauge value and is exposed as `NaN`.
///
/// ```
/// use beluga_metrics::{Opts, Registry};
/// let registry = Registry::new();
/// let active = registry.gauge(Opts::new("agent_active_conversations", "Open conversations."))?;
/// active.inc();
/// active.inc();
/// active.dec();
/// active.add(2.5);
/// assert_eq!(active.get(), 3.5);
/// active.set(0.0);
/// assert_eq!(active.get(), 0.0);
/// # Ok::<(), beluga_metrics::RegistryError>(())
/// ```
#[derive(Clone)]
pub struct Gauge {
    series: Arc<Series<GaugeCell>>,
}

impl Gauge {
    /// Sets the value.
    #[inline]
    pub fn set(&self, value: f64) {
        self.series.storage.store(value.to_bits(), Relaxed);
    }

    /// Adds `delta` (which may be negative).
    #[inline]
    pub fn add(&self, delta: f64) {
        let cell = &self.series.storage;
        let mut current = cell.load(Relaxed);
        loop {
            let next = (f64::from_bits(current) + delta).to_bits();
            match cell.compare_exchange_weak(current, next, Relaxed, Relaxed) {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// Subtracts `delta`.
    #[inline]
    pub fn sub(&self, delta: f64) {
        self.add(-delta);
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1.0);
    }

    /// Subtracts one.
    #[inline]
    pub fn dec(&self) {
        self.add(-1.0);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.series.storage.load(Relaxed))
    }
}

impl Sealed for Gauge {
    type Storage = GaugeCell;
    const TYPE: MetricType = MetricType::Gauge;
    fn new_storage(_: Option<&Arc<BucketMap>>) -> Self::Storage {
        GaugeCell(AtomicU64::new(0f64.to_bits()))
    }
    fn from_series(series: Arc<Series<Self::Storage>>) -> Self {
        Gauge { series }
    }
    fn series(&self) -> &Arc<Series<Self::Storage>> {
        &self.series
    }
    fn into_series(self) -> Arc<Series<Self::Storage>> {
        self.series
    }
    fn read<'a>(storage: &Self::Storage, _: &'a mut HistogramValue) -> Value<'a> {
        Value::Gauge(f64::from_bits(storage.load(Relaxed)))
    }
}

impl std::fmt::Debug for Gauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gauge")
            .field("label_values", &self.series.label_values)
            .field("value", &self.get())
            .finish()
    }
}
