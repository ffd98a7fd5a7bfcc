//! Per-thread histogram storage and the merge-on-read protocol.
//!
//! # Protocol
//!
//! A histogram series owns one lazily allocated [`ThreadHistogram`] per
//! thread slot (see [`thread_slot`](crate::thread_slot)), plus one shared
//! `ThreadHistogram` for threads beyond the owned slots, plus the series'
//! wide HDR counts. Each `ThreadHistogram` holds:
//!
//! * exact classic-bucket counts (`u64`), whose total is the exact `_count`;
//! * the exact `_sum`, minimum and maximum as `f64` bit patterns;
//! * one-byte HDR counts for quantiles, paged by octave and carried into the
//!   series' wide counts when they fill ([`hdr_counts`](super::hdr_counts)
//!   has that protocol). The shared slot adds to the wide counts directly.
//!
//! **Writers.** The owner of a slot is its only writer and updates every
//! field with `Relaxed` load + store. Threads on the shared histogram use
//! `fetch_add` and compare-exchange loops. Nothing on this path locks.
//!
//! **Publication.** A slot starts as a null pointer. Its first writer
//! allocates the `ThreadHistogram` and publishes it with a compare-exchange
//! (`AcqRel`); readers load the pointer with `Acquire`, so they see a fully
//! initialised value. Pointers are freed only when the series is dropped,
//! which needs exclusive access, so a reader's reference never dangles.
//!
//! **Readers.** Exact reads (`read_exact`) take no lock: they sum bucket
//! counts over all slots with `Relaxed` loads. Every count only grows, so the
//! same guarantees as for counters hold: a read sees every record that
//! happened before it, and counts never go backwards between two reads. A
//! read racing a record may see its bucket count before its sum; the next
//! read sees both. Quantile reads merge the HDR counts as `hdr_counts`
//! describes: exactly, waiting at most for a carry in progress.

use hdrhistogram::Histogram as HdrHistogram;

use super::bucket_map::BucketIndex;
use super::exponential::{ExponentialBuckets, ExponentialScale};
use super::hdr_counts::{NarrowCounts, WideCounts};
use super::{layout, BucketMap};
use crate::sync::{model_switch_point, AtomicPtr, AtomicU64, Ordering::*};
use crate::thread_slot;

/// A histogram series' per-thread storage (see the module docs).
/// `repr(C)`: what a record reads comes first (the slot table, then the
/// bucket index), right after the series' label values (see `Series`).
#[repr(C)]
pub struct HistogramStorage {
    /// Owned slots followed by the shared slot (the last one).
    slots: Box<[AtomicPtr<ThreadHistogram>]>,
    /// The family's bucket index, copied here so that a record reads the
    /// table without going through the map.
    index: BucketIndex,
    /// HDR counts carried from the threads' one-byte counts, and those of
    /// threads on the shared slot.
    wide: WideCounts,
    /// NaN observations that were dropped.
    invalid: AtomicU64,
    buckets: std::sync::Arc<BucketMap>,
}

impl std::fmt::Debug for HistogramStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistogramStorage")
            .field("bounds", &self.bucket_map().bounds())
            .field("invalid", &self.invalid_count())
            .finish_non_exhaustive()
    }
}

pub(crate) struct ThreadHistogram {
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
    hdr: NarrowCounts,
}

impl ThreadHistogram {
    fn new(bucket_count: usize) -> Self {
        ThreadHistogram {
            buckets: (0..bucket_count).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
            min: AtomicU64::new(f64::INFINITY.to_bits()),
            max: AtomicU64::new(f64::NEG_INFINITY.to_bits()),
            hdr: NarrowCounts::new(),
        }
    }

    /// Heap bytes before any HDR page: the struct and its bucket counts.
    fn fixed_bytes(bucket_count: usize) -> usize {
        std::mem::size_of::<Self>() + bucket_count * std::mem::size_of::<AtomicU64>()
    }

    fn heap_bytes(&self) -> usize {
        Self::fixed_bytes(self.buckets.len()) + self.hdr.page_bytes()
    }
}

/// Adds `value` to an `f64` held as bits, with a compare-exchange loop.
fn shared_update_f64(cell: &AtomicU64, update: impl Fn(f64) -> Option<f64>) {
    let mut current = cell.load(Relaxed);
    while let Some(next) = update(f64::from_bits(current)) {
        match cell.compare_exchange_weak(current, next.to_bits(), Relaxed, Relaxed) {
            Ok(_) => return,
            Err(seen) => current = seen,
        }
    }
}

/// An exact read of a histogram: per-bucket counts, sum, min and max.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramValue {
    pub(crate) bounds: std::sync::Arc<[f64]>,
    pub(crate) counts: Vec<u64>,
    pub(crate) sum: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    /// Set by the reader that wants exponential buckets read too.
    pub(crate) want_exponential: Option<ExponentialScale>,
    pub(crate) exponential: ExponentialBuckets,
}

impl HistogramValue {
    pub(crate) fn empty() -> Self {
        HistogramValue {
            bounds: std::sync::Arc::from([]),
            counts: vec![0],
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            want_exponential: None,
            exponential: ExponentialBuckets::empty(),
        }
    }

    /// The same observations in base-2 exponential buckets, when the reader
    /// asked for them ([`Visitor::exponential_buckets`](crate::Visitor::exponential_buckets)).
    /// They are read after the classic buckets, so their total is never
    /// below [`count`](Self::count) (equal when nothing records meanwhile).
    pub fn exponential(&self) -> Option<&ExponentialBuckets> {
        self.want_exponential.map(|_| &self.exponential)
    }

    /// The finite bucket boundaries (the `+Inf` bucket follows them).
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// Observations per bucket (not cumulative); one more entry than
    /// [`bounds`](Self::bounds): the last is the `+Inf` bucket.
    pub fn bucket_counts(&self) -> &[u64] {
        &self.counts
    }

    /// `(upper bound, cumulative count)` pairs as Prometheus exposes them,
    /// ending with `(+Inf, count)`.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let bounds = self.bounds.iter().copied().chain([f64::INFINITY]);
        bounds.zip(self.counts.iter().scan(0u64, |acc, c| {
            *acc = acc.wrapping_add(*c);
            Some(*acc)
        }))
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0, |a, c| a.wrapping_add(*c))
    }

    /// Sum of observations.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Smallest observation, `None` before the first.
    pub fn min(&self) -> Option<f64> {
        (self.count() > 0).then_some(self.min)
    }

    /// Largest observation, `None` before the first.
    pub fn max(&self) -> Option<f64> {
        (self.count() > 0).then_some(self.max)
    }
}

/// Merged HDR data of a histogram, for quantiles.
///
/// ```
/// use beluga_metrics::{Buckets, Opts, Registry, Unit};
/// let registry = Registry::new();
/// let latency = registry
///     .histogram(Opts::new("latency_seconds", "Latency.").unit(Unit::SECONDS), Buckets::default())
///     .unwrap();
/// for ms in 1..=100 {
///     latency.record(ms as f64 / 1000.0);
/// }
/// let q = latency.quantiles();
/// assert!((q.quantile(0.5) - 0.050).abs() < 0.001);
/// assert_eq!(q.max(), 0.1);
/// ```
#[derive(Debug, Clone)]
pub struct Quantiles {
    merged: HdrHistogram<u64>,
    resolution: f64,
    min: f64,
    max: f64,
}

impl Quantiles {
    /// The value below which a fraction `q` (0.0 to 1.0) of observations
    /// fall, within 1 % of the true value (exact at 0.0 and 1.0, which are
    /// the minimum and maximum). 0.0 when nothing was recorded.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.merged.is_empty() {
            return 0.0;
        }
        if q <= 0.0 {
            return self.min;
        }
        if q >= 1.0 {
            return self.max;
        }
        let scaled = self.merged.value_at_quantile(q) as f64 * self.resolution;
        scaled.clamp(self.min, self.max)
    }

    /// Adds another histogram's observations (for example the same metric
    /// for another label set) so quantiles cover both. Both must come from
    /// histograms with the same buckets (and so the same resolution);
    /// otherwise `other` is ignored and `false` returned.
    ///
    /// ```
    /// use beluga_metrics::{Buckets, Opts, Registry};
    /// let r = Registry::new();
    /// let f = r.histogram_family(Opts::new("lat", "L.").labels(["tenant"]), Buckets::default()).unwrap();
    /// f.with_labels(&["free"]).unwrap().record(0.1);
    /// f.with_labels(&["pro"]).unwrap().record(0.3);
    /// let mut all = f.with_labels(&["free"]).unwrap().quantiles();
    /// assert!(all.merge(&f.with_labels(&["pro"]).unwrap().quantiles()));
    /// assert_eq!((all.count(), all.max()), (2, 0.3));
    /// ```
    pub fn merge(&mut self, other: &Quantiles) -> bool {
        if self.resolution != other.resolution || self.merged.add(&other.merged).is_err() {
            return false;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        true
    }

    /// Median.
    pub fn p50(&self) -> f64 {
        self.quantile(0.5)
    }

    /// 95th percentile.
    pub fn p95(&self) -> f64 {
        self.quantile(0.95)
    }

    /// 99th percentile.
    pub fn p99(&self) -> f64 {
        self.quantile(0.99)
    }

    /// Largest observation (exact), 0.0 when nothing was recorded.
    pub fn max(&self) -> f64 {
        if self.merged.is_empty() {
            0.0
        } else {
            self.max
        }
    }

    /// Number of observations merged.
    pub fn count(&self) -> u64 {
        self.merged.len()
    }

    /// The value of one HDR unit: multiply HDR values by it.
    pub fn resolution(&self) -> f64 {
        self.resolution
    }
}

impl HistogramStorage {
    /// Storage for one series of a family with these buckets.
    pub(crate) fn new(buckets: std::sync::Arc<BucketMap>) -> Self {
        Self::with_owned(buckets, thread_slot::shard_count())
    }

    pub(crate) fn with_owned(buckets: std::sync::Arc<BucketMap>, owned: usize) -> Self {
        HistogramStorage {
            index: buckets.index().clone(),
            buckets,
            slots: (0..=owned)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
            wide: WideCounts::new(),
            invalid: AtomicU64::new(0),
        }
    }

    /// The classic bucket a finite `value` counts in (`bounds.len()` is
    /// `+Inf`), and how many buckets there are.
    pub(crate) fn bucket_of(&self, value: f64) -> (usize, usize) {
        let bucket = self.buckets.bucket(value, self.buckets.hdr_index(value));
        (bucket, self.buckets.bounds().len() + 1)
    }

    pub(crate) fn bucket_map(&self) -> &BucketMap {
        &self.buckets
    }

    pub(crate) fn invalid_count(&self) -> u64 {
        self.invalid.load(Relaxed)
    }

    /// Heap bytes a recording thread adds to a series with these buckets
    /// before its first HDR page; each octave it records into adds one page.
    pub(crate) fn fixed_bytes_per_thread(bucket_count: usize) -> usize {
        ThreadHistogram::fixed_bytes(bucket_count)
    }

    /// Heap bytes this series' recording threads hold, on average per
    /// thread with a slot of its own (the fixed part alone when none has
    /// recorded yet).
    pub(crate) fn bytes_per_recording_thread(&self) -> usize {
        let owned = &self.slots[..self.slots.len() - 1];
        let (threads, bytes) = owned
            .iter()
            .filter_map(|slot| {
                let ptr = slot.load(Acquire);
                // SAFETY: as in `thread_histogram`.
                (!ptr.is_null()).then(|| unsafe { &*ptr })
            })
            .fold((0, 0), |(n, b), t| (n + 1, b + t.heap_bytes()));
        bytes
            .checked_div(threads)
            .unwrap_or_else(|| Self::fixed_bytes_per_thread(self.buckets.bounds().len() + 1))
    }

    #[inline]
    pub(crate) fn record(&self, value: f64) {
        self.record_at(thread_slot::current(), value);
    }

    #[inline]
    pub(crate) fn record_at(&self, slot: u32, value: f64) {
        // NaN and ±Inf are dropped and counted: one infinity would make the
        // sum infinite forever (and +Inf with -Inf, NaN), which strict
        // OpenMetrics parsers refuse.
        if !value.is_finite() {
            self.invalid.fetch_add(1, Relaxed);
            return;
        }
        let slot = slot as usize;
        let hdr_index = self.index.hdr_index(value);
        let bucket = self
            .index
            .bucket(value, hdr_index, || self.buckets.bounds());
        // The last slot is the shared one. Written as `slot + 1 < len`
        // (which cannot overflow: `slot` came from a `u32`), the comparison
        // also proves the index in bounds, so no second check is made.
        if slot + 1 < self.slots.len() {
            let thread = self.thread_histogram(slot);
            let count = &thread.buckets[bucket];
            let before = count.load(Relaxed);
            model_switch_point();
            count.store(before + 1, Relaxed);
            // Finite values only, so a per-thread sum can overflow to ±Inf
            // but never become NaN (Inf plus any finite value stays Inf);
            // readers clamp it to ±f64::MAX. No clamp here: it would lengthen
            // the load-add-store chain of back-to-back records.
            let sum = f64::from_bits(thread.sum.load(Relaxed)) + value;
            thread.sum.store(sum.to_bits(), Relaxed);
            if value < f64::from_bits(thread.min.load(Relaxed)) {
                thread.min.store(value.to_bits(), Relaxed);
            }
            if value > f64::from_bits(thread.max.load(Relaxed)) {
                thread.max.store(value.to_bits(), Relaxed);
            }
            thread.hdr.increment(hdr_index, &self.wide);
        } else {
            let thread = self.thread_histogram(self.slots.len() - 1);
            thread.buckets[bucket].fetch_add(1, Relaxed);
            shared_update_f64(&thread.sum, |s| {
                Some((s + value).clamp(-f64::MAX, f64::MAX))
            });
            shared_update_f64(&thread.min, |m| (value < m).then_some(value));
            shared_update_f64(&thread.max, |m| (value > m).then_some(value));
            self.wide.add(hdr_index, 1, Relaxed);
        }
    }

    #[inline]
    fn thread_histogram(&self, index: usize) -> &ThreadHistogram {
        let ptr = self.slots[index].load(Acquire);
        if ptr.is_null() {
            return self.allocate(index);
        }
        // SAFETY: non-null pointers in `slots` come from `Box::into_raw` in
        // `allocate`, published with a release compare-exchange that our
        // acquire load synchronises with, and are freed only in `Drop`, which
        // cannot run while `&self` is borrowed.
        unsafe { &*ptr }
    }

    #[cold]
    fn allocate(&self, index: usize) -> &ThreadHistogram {
        crate::first_use::note();
        let fresh = Box::into_raw(Box::new(ThreadHistogram::new(
            self.buckets.bounds().len() + 1,
        )));
        let published = match self.slots[index].compare_exchange(
            std::ptr::null_mut(),
            fresh,
            AcqRel,
            Acquire,
        ) {
            Ok(_) => fresh,
            Err(winner) => {
                // SAFETY: `fresh` came from `Box::into_raw` above and was never
                // published, so we still own it.
                drop(unsafe { Box::from_raw(fresh) });
                winner
            }
        };
        // SAFETY: as in `thread_histogram`: published, and freed only in Drop.
        unsafe { &*published }
    }

    fn threads(&self) -> impl Iterator<Item = &ThreadHistogram> + Clone {
        self.slots.iter().filter_map(|slot| {
            let ptr = slot.load(Acquire);
            // SAFETY: as in `thread_histogram`.
            (!ptr.is_null()).then(|| unsafe { &*ptr })
        })
    }

    /// Exact counts, sum, min and max, summed over every thread; no lock.
    pub(crate) fn read_exact(&self, out: &mut HistogramValue) {
        let bounds = self.buckets.bounds();
        if !std::sync::Arc::ptr_eq(&out.bounds, bounds) {
            out.bounds = bounds.clone();
        }
        out.counts.clear();
        out.counts.resize(bounds.len() + 1, 0);
        out.sum = 0.0;
        out.min = f64::INFINITY;
        out.max = f64::NEG_INFINITY;
        model_switch_point();
        for thread in self.threads() {
            for (total, count) in out.counts.iter_mut().zip(thread.buckets.iter()) {
                *total = total.wrapping_add(count.load(Relaxed));
            }
            out.sum =
                (out.sum + f64::from_bits(thread.sum.load(Relaxed))).clamp(-f64::MAX, f64::MAX);
            out.min = out.min.min(f64::from_bits(thread.min.load(Relaxed)));
            out.max = out.max.max(f64::from_bits(thread.max.load(Relaxed)));
        }
        if let Some(want) = out.want_exponential {
            self.exponential_into(want, &mut out.exponential);
        }
    }

    /// Every thread's HDR counts in base-2 exponential buckets.
    pub(crate) fn exponential_into(&self, want: ExponentialScale, out: &mut ExponentialBuckets) {
        out.reset(self.buckets.resolution(), want);
        let table = self.buckets.exponential_table(out.scale());
        let threads = self.threads().map(|thread| &thread.hdr);
        self.wide.merge(threads, |index, count| {
            out.add_hdr(index, table[index], count)
        });
        out.fit(want);
    }

    /// Every thread's HDR counts merged into one `hdrhistogram`.
    pub(crate) fn quantiles(&self) -> Quantiles {
        let mut merged = layout::new_merge_target();
        let threads = self.threads().map(|thread| &thread.hdr);
        self.wide.merge(threads, |index, count| {
            let _ = merged.record_n(layout::value_at(index), count);
        });
        let mut exact = HistogramValue::empty();
        self.read_exact(&mut exact);
        Quantiles {
            merged,
            resolution: self.buckets.resolution(),
            min: exact.min,
            max: exact.max,
        }
    }
}

impl Drop for HistogramStorage {
    fn drop(&mut self) {
        for slot in self.slots.iter() {
            let ptr = slot.load(Acquire);
            if !ptr.is_null() {
                // SAFETY: `&mut self` means no reader or writer is left, and
                // every non-null pointer came from `Box::into_raw`.
                drop(unsafe { Box::from_raw(ptr) });
            }
        }
    }
}

#[cfg(all(test, not(beluga_loom)))]
mod tests {
    use super::*;

    fn map(bounds: &[f64]) -> std::sync::Arc<BucketMap> {
        std::sync::Arc::new(BucketMap::new(bounds.into()))
    }

    fn storage(owned: usize) -> HistogramStorage {
        HistogramStorage::with_owned(map(&[1.0, 2.0, 4.0]), owned)
    }

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn owned_and_shared_slots_merge_exactly() {
        let h = storage(2);
        for (slot, value) in [(0, 1.0), (1, 2.0), (1, 3.0), (7, 8.0), (7, -1.0)] {
            h.record_at(slot, value);
        }
        let mut v = HistogramValue::empty();
        h.read_exact(&mut v);
        assert_eq!(v.bucket_counts(), &[2, 1, 1, 1]);
        assert_eq!(v.count(), 5);
        assert_eq!(v.sum(), 13.0);
        assert_eq!((v.min(), v.max()), (Some(-1.0), Some(8.0)));
        let cumulative: Vec<_> = v.cumulative().collect();
        assert_eq!(cumulative.last(), Some(&(f64::INFINITY, 5)));
    }

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn nan_is_dropped_and_counted() {
        let h = storage(2);
        h.record_at(0, f64::NAN);
        let mut v = HistogramValue::empty();
        h.read_exact(&mut v);
        assert_eq!((v.count(), h.invalid_count()), (0, 1));
    }

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn hdr_counts_carry_without_loss_in_owned_and_shared_slots() {
        let h = storage(1);
        for _ in 0..100_000 {
            h.record_at(0, 1.5);
            h.record_at(3, 1.5); // the shared slot
            h.record_at(0, 0.25);
        }
        let q = h.quantiles();
        assert_eq!(q.count(), 300_000);
        assert!((q.quantile(0.9) - 1.5).abs() < 0.02);
        assert!((q.quantile(0.2) - 0.25).abs() < 0.005);
    }

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn a_thread_pays_for_the_octaves_it_records_into() {
        let h = storage(2);
        let fixed = HistogramStorage::fixed_bytes_per_thread(4);
        assert_eq!(h.bytes_per_recording_thread(), fixed);
        h.record_at(0, 1.1);
        assert_eq!(h.bytes_per_recording_thread(), fixed + 128);
        h.record_at(0, 1.9); // same octave
        assert_eq!(h.bytes_per_recording_thread(), fixed + 128);
        h.record_at(0, 3.0); // the next one
        assert_eq!(h.bytes_per_recording_thread(), fixed + 256);
        assert!(fixed <= 256, "{fixed} bytes before any HDR page");
    }
}

#[cfg(all(test, beluga_loom))]
mod loom_models {
    use super::*;
    use loom::sync::Arc;

    /// An owner and a shared-slot writer record while a reader reads twice:
    /// counts never go backwards, and after the joins the read is complete.
    #[test]
    fn merge_on_read_is_monotonic_and_complete() {
        // Bounded to one preemption: with the switch points (see
        // `sync::model_switch_point`) that already reaches reads of every
        // intermediate total (0 to 4 records) in seconds; two take minutes.
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(1);
        model.check(|| {
            let h = Arc::new(HistogramStorage::with_owned(
                std::sync::Arc::new(BucketMap::new(std::sync::Arc::from([1.0]))),
                1,
            ));
            let writers: Vec<_> = [0u32, 5]
                .into_iter()
                .map(|slot| {
                    let h = h.clone();
                    loom::thread::spawn(move || {
                        h.record_at(slot, 0.5);
                        h.record_at(slot, 2.0);
                    })
                })
                .collect();
            let mut first = HistogramValue::empty();
            let mut second = HistogramValue::empty();
            h.read_exact(&mut first);
            h.read_exact(&mut second);
            for (a, b) in first.counts.iter().zip(&second.counts) {
                assert!(b >= a);
            }
            for w in writers {
                w.join().unwrap();
            }
            let mut last = HistogramValue::empty();
            h.read_exact(&mut last);
            assert_eq!(last.bucket_counts(), &[2, 2]);
            assert_eq!(last.sum(), 5.0);
        });
    }
}
