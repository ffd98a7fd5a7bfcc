//! Handles: what users keep and record through. Each handle is one
//! reference-counted pointer to a [`Series`] of its storage kind; the
//! [`Metric`] trait tells families and the registry how to make, read and
//! lend them.

mod counter;
mod gauge;
mod histogram;

use std::mem::ManuallyDrop;
use std::sync::Arc;

pub(crate) use counter::counter_series_bytes;
pub use counter::{Counter, FloatCounter};
pub use gauge::Gauge;
pub use histogram::{Histogram, HistogramTimer};

use crate::series::Series;

/// The kinds of metric a family can hold. Implemented by [`Counter`],
/// [`FloatCounter`], [`Gauge`] and [`Histogram`]; not meant to be
/// implemented elsewhere.
pub trait Metric: Clone + Send + Sync + 'static + sealed::Sealed {}

impl<M: Clone + Send + Sync + 'static + sealed::Sealed> Metric for M {}

pub(crate) mod sealed {
    use super::*;
    use crate::desc::MetricType;
    use crate::histogram::{BucketMap, HistogramValue};
    use crate::sample::Value;

    /// What a family needs to know about a kind of metric.
    pub trait Sealed: Sized {
        type Storage: Send + Sync + 'static;
        const TYPE: MetricType;
        fn new_storage(buckets: Option<&Arc<BucketMap>>) -> Self::Storage;
        fn from_series(series: Arc<Series<Self::Storage>>) -> Self;
        fn series(&self) -> &Arc<Series<Self::Storage>>;
        fn into_series(self) -> Arc<Series<Self::Storage>>;
        fn read<'a>(storage: &Self::Storage, scratch: &'a mut HistogramValue) -> Value<'a>;
        /// Whether recording can refuse values (NaN, negative increments).
        const REFUSES_VALUES: bool = false;
        fn invalid_values(_storage: &Self::Storage) -> u64 {
            0
        }

        /// Runs `f` on a handle to `series` without touching its reference
        /// count: the lookup cache lends the series it owns this way, so a
        /// cache hit makes no atomic read-modify-write.
        #[inline]
        fn lend<R>(series: &Arc<Series<Self::Storage>>, f: impl FnOnce(&Self) -> R) -> R {
            // SAFETY: `ptr::read` makes a bitwise copy of the `Arc` without
            // incrementing its count. The copy lives in a `ManuallyDrop`, so
            // it never decrements the count either (not even if `f` panics),
            // and it cannot outlive `series`, which the caller's borrow keeps
            // alive for the whole call. `from_series` only moves the `Arc`
            // into the handle.
            let handle = ManuallyDrop::new(Self::from_series(unsafe { std::ptr::read(series) }));
            f(&handle)
        }
    }
}
