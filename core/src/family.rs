//! Labelled families: one series per distinct list of label values.
//!
//! A family maps label values to series through a [`SeriesTable`] behind a
//! read-write lock, mirrored in a lock-free [`SeriesIndex`] that every
//! lookup reads (no lock, no reference count; where the index cannot be
//! read, a per-thread lookup cache stands in front of the table, see
//! `lookup_cache`); only new label sets, removals and encodes take the
//! lock. Recording through a resolved handle never touches the family.
//! Keep the handle [`Family::with_labels`] returns for hot loops.
//!
//! Label values are compared value by value, never through a joined string,
//! so `["ab", "c"]` and `["a", "bc"]` are always two series.

use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use crate::desc::Descriptor;
use crate::error::LabelError;
use crate::handles::Metric;
use crate::histogram::BucketMap;
use crate::idle_expiry::IdleExpiry;
use crate::label_set::{
    check_count, hash_strs, hash_values, order_pairs, process_seed, value_too_long,
};
use crate::label_values::LabelValues;
use crate::lookup_cache::{self, Resolved};
use crate::name::OVERFLOW_LABEL;
use crate::series::Series;
use crate::series_index::SeriesIndex;
use crate::series_table::SeriesTable;
use crate::sync::{AtomicU64, Ordering::Relaxed};

static NEXT_FAMILY_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// Default cap on distinct label sets per family.
pub const DEFAULT_CARDINALITY_LIMIT: usize = 2000;

// `repr(C)` and the alignment keep what a lookup reads (id, label count,
// version, seed and the index's array pointer) together at the front, in
// one cache line: a lookup right after the caches were flushed then misses
// once on the family, not two or three times.
#[repr(C, align(64))]
pub(crate) struct FamilyInner<M: Metric> {
    /// Unique for the life of the process (keys the per-thread lookup
    /// cache), or 0 once four billion families were made (never cached).
    id: u32,
    /// How many label names the family has.
    label_count: u32,
    /// Bumped by every removal, so cached handles to removed series expire.
    version: AtomicU64,
    /// The process's label-hash seed, copied here so a lookup does not
    /// read it from elsewhere.
    pub(crate) seed: u64,
    /// The table's series, readable without its lock; changed only under
    /// the table's write lock.
    pub(crate) index: SeriesIndex<M::Storage>,
    pub(crate) descriptor: Descriptor,
    pub(crate) buckets: Option<Arc<BucketMap>>,
    pub(crate) limit: usize,
    pub(crate) table: RwLock<SeriesTable<M::Storage>>,
    pub(crate) overflow: OnceLock<Arc<Series<M::Storage>>>,
    pub(crate) refused: AtomicU64,
    /// Lookups refused for a label value longer than the limit.
    pub(crate) rejected: AtomicU64,
    /// Present when idle series expire (`Opts::expire_after_idle`).
    pub(crate) expiry: Option<IdleExpiry<M::Storage>>,
}

impl<M: Metric> FamilyInner<M> {
    /// The hash of a series' label values, as lookups compute it (the
    /// index's growth places its entries by it).
    pub(crate) fn rehash(&self, values: &LabelValues) -> Option<u64> {
        hash_strs(self.seed, values.iter()).ok()
    }
}

/// A metric family with a fixed list of label names; each distinct list of
/// label values is one series.
///
/// ```
/// use beluga_metrics::{Opts, Registry};
/// let registry = Registry::new();
/// let tokens = registry.counter_family(
///     Opts::new("agent_tokens_total", "Tokens used.").labels(["model", "tenant"]),
/// )?;
/// let gpt_free = tokens.with_labels(&["gpt-4o", "free"])?; // keep this handle
/// gpt_free.add(512);
/// assert_eq!(tokens.with_labels(&["gpt-4o", "free"])?.get(), 512);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Family<M: Metric> {
    pub(crate) inner: Arc<FamilyInner<M>>,
}

impl<M: Metric> Clone for Family<M> {
    fn clone(&self) -> Self {
        Family {
            inner: self.inner.clone(),
        }
    }
}

impl<M: Metric> Family<M> {
    pub(crate) fn new(
        descriptor: Descriptor,
        buckets: Option<Arc<BucketMap>>,
        limit: usize,
        idle_expiry: Option<std::time::Duration>,
    ) -> Self {
        Family {
            inner: Arc::new(FamilyInner {
                id: lookup_cache::next_family_id(&NEXT_FAMILY_ID),
                // Label names are few (a descriptor checks them).
                label_count: descriptor.label_names.len() as u32,
                version: AtomicU64::new(0),
                seed: process_seed(),
                index: SeriesIndex::new(),
                descriptor,
                buckets,
                limit,
                table: RwLock::new(SeriesTable::new()),
                overflow: OnceLock::new(),
                refused: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                expiry: idle_expiry.map(IdleExpiry::new),
            }),
        }
    }

    /// The handle for one list of label values, given in the order of the
    /// family's label names. Creates the series on first use.
    ///
    /// A hit allocates nothing. Past the family's cardinality limit, a new
    /// list of values gets the shared overflow series (exposed with the single
    /// label `otel_metric_overflow="true"`) and is counted in
    /// `beluga_cardinality_overflow_total`; this is not an error, so that a
    /// flood of values never breaks the caller.
    ///
    /// ```
    /// # use beluga_metrics::{LabelError, Opts, Registry};
    /// # let family = Registry::new().counter_family(Opts::new("calls", "Calls.").labels(["model"]))?;
    /// assert!(matches!(
    ///     family.with_labels(&["gpt-4o", "extra"]),
    ///     Err(LabelError::CountMismatch { expected: 1, got: 2, .. })
    /// ));
    /// # Ok::<(), beluga_metrics::RegistryError>(())
    /// ```
    pub fn with_labels<V: AsRef<str>>(&self, values: &[V]) -> Result<M, LabelError> {
        self.with(values, M::clone)
    }

    /// Runs `f` on the series for `values` without handing out a handle:
    /// the fastest way to record into a family when keeping handles is not
    /// practical. A label set the family already has takes no lock, no
    /// atomic read-modify-write and no allocation.
    ///
    /// ```
    /// # use beluga_metrics::{Opts, Registry};
    /// # let family = Registry::new().counter_family(Opts::new("calls", "Calls.").labels(["model"]))?;
    /// family.with(&["gpt-4o"], |calls| calls.inc())?;
    /// assert_eq!(family.with(&["gpt-4o"], |calls| calls.get())?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn with<V: AsRef<str>, R>(
        &self,
        values: &[V],
        f: impl FnOnce(&M) -> R,
    ) -> Result<R, LabelError> {
        if values.len() != self.inner.label_count as usize {
            check_count(&self.inner.descriptor, values.len())?;
        }
        let hash = match hash_values(self.inner.seed, values) {
            Ok(hash) => hash,
            Err(too_long) => {
                self.inner.rejected.fetch_add(1, Relaxed);
                let bytes = values[too_long].as_ref().len();
                return Err(value_too_long(&self.inner.descriptor, too_long, bytes));
            }
        };
        let key = lookup_cache::Key::new(self.inner.id, self.inner.version.load(Relaxed), hash);
        Ok(lookup_cache::with_series(
            key,
            values,
            || self.inner.index.find(hash, values),
            || self.resolve(hash, values),
            |series| M::lend(series, f),
        ))
    }

    /// The series for `values` from the family's table, creating it (or
    /// sending the lookup to overflow) when it is new.
    fn resolve<V: AsRef<str>>(&self, hash: u64, values: &[V]) -> Resolved<M::Storage> {
        if let Some(series) = self.inner.table.read().find(hash, values) {
            return Resolved {
                series: series.clone(),
                cacheable: true,
            };
        }
        self.insert(hash, values)
    }

    #[cold]
    fn insert<V: AsRef<str>>(&self, hash: u64, values: &[V]) -> Resolved<M::Storage> {
        let mut table = self.inner.table.write();
        if let Some(series) = table.find(hash, values) {
            return Resolved {
                series: series.clone(),
                cacheable: true,
            };
        }
        if table.len() < self.inner.limit {
            // An expired series that a handle or a cache still holds comes
            // back with what it counted, rather than a new one from zero.
            if let Some(series) = self
                .inner
                .expiry
                .as_ref()
                .and_then(|e| e.revive(hash, values))
            {
                table.insert(hash, series.clone());
                self.inner
                    .index
                    .insert(hash, &series, |values| self.inner.rehash(values));
                return Resolved {
                    series,
                    cacheable: true,
                };
            }
        }
        if table.len() >= self.inner.limit {
            drop(table);
            self.inner.refused.fetch_add(1, Relaxed);
            return Resolved {
                series: self.overflow_series().clone(),
                cacheable: false,
            };
        }
        let names = self.inner.descriptor.label_names.iter().map(|n| &**n);
        let series = Arc::new(Series::new(
            &self.inner.descriptor,
            names.zip(values.iter().map(|v| v.as_ref())),
            M::new_storage(self.inner.buckets.as_ref()),
        ));
        crate::first_use::note();
        table.insert(hash, series.clone());
        self.inner
            .index
            .insert(hash, &series, |values| self.inner.rehash(values));
        Resolved {
            series,
            cacheable: true,
        }
    }

    fn overflow_series(&self) -> &Arc<Series<M::Storage>> {
        self.inner.overflow.get_or_init(|| {
            Arc::new(Series::new(
                &self.inner.descriptor,
                [(OVERFLOW_LABEL, "true")].into_iter(),
                M::new_storage(self.inner.buckets.as_ref()),
            ))
        })
    }

    /// Like [`with_labels`](Self::with_labels), with `(name, value)` pairs in
    /// any order. Every label of the family must appear exactly once.
    ///
    /// ```
    /// # use beluga_metrics::{Opts, Registry};
    /// # let family = Registry::new().counter_family(Opts::new("calls", "Calls.").labels(["model", "tenant"]))?;
    /// family.with_label_pairs(&[("tenant", "pro"), ("model", "claude")])?.inc();
    /// assert_eq!(family.with_labels(&["claude", "pro"])?.get(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_label_pairs<K: AsRef<str>, V: AsRef<str>>(
        &self,
        pairs: &[(K, V)],
    ) -> Result<M, LabelError> {
        let values = self.order_label_pairs(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))?;
        self.with_labels(&values)
    }

    /// Puts `(name, value)` pairs into the family's label order, ready for
    /// [`with`](Self::with) or [`with_labels`](Self::with_labels). Every
    /// label of the family must appear exactly once.
    ///
    /// ```
    /// # use beluga_metrics::{LabelError, Opts, Registry};
    /// # let family = Registry::new().counter_family(Opts::new("calls", "Calls.").labels(["model", "tenant"]))?;
    /// let values = family.order_label_pairs([("tenant", "pro"), ("model", "claude")])?;
    /// assert_eq!(values, ["claude", "pro"]);
    /// assert!(matches!(
    ///     family.order_label_pairs([("model", "claude")]),
    ///     Err(LabelError::MissingLabel { .. })
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn order_label_pairs<'v>(
        &self,
        pairs: impl IntoIterator<Item = (&'v str, &'v str)>,
    ) -> Result<Vec<&'v str>, LabelError> {
        order_pairs(&self.inner.descriptor, pairs.into_iter())
    }

    /// Removes a series from the family (and from the exposition). Handles
    /// to it stay valid but record into a detached series no one reads.
    /// Returns whether the series existed.
    ///
    /// ```
    /// # use beluga_metrics::{Opts, Registry};
    /// # let family = Registry::new().gauge_family(Opts::new("queue_depth", "Depth.").labels(["queue"]))?;
    /// family.with_labels(&["jobs"])?.set(3.0);
    /// assert_eq!(family.remove(&["jobs"])?, true);
    /// assert_eq!(family.len(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove<V: AsRef<str>>(&self, values: &[V]) -> Result<bool, LabelError> {
        check_count(&self.inner.descriptor, values.len())?;
        let hash = hash_values(self.inner.seed, values).map_err(|too_long| {
            value_too_long(
                &self.inner.descriptor,
                too_long,
                values[too_long].as_ref().len(),
            )
        })?;
        let series = {
            let mut table = self.inner.table.write();
            let Some(series) = table.remove(hash, values) else {
                return Ok(false);
            };
            self.inner.index.remove(hash, &series);
            series
        };
        series.removed.store(true, Relaxed);
        self.inner.version.fetch_add(1, Relaxed);
        // Every thread's lookup cache lets go of it now, or when its owner
        // leaves the lookup it is in; lookups that found it in the index
        // are waited out; then the last handle frees it.
        lookup_cache::forget_removed(self.inner.id);
        crate::reclaim::retire(Box::new(series));
        Ok(true)
    }

    /// Number of series, not counting the overflow series.
    pub fn len(&self) -> usize {
        self.inner.table.read().len()
    }

    /// Whether the family has no series yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Series that idle expiry took out of the family but that a handle (or
    /// a thread's lookup cache) may still hold, so still record into; the
    /// next encode forgets those nothing holds any more. Always 0 without
    /// [`Opts::expire_after_idle`](crate::Opts::expire_after_idle).
    ///
    /// ```
    /// # use beluga_metrics::{Opts, Registry};
    /// # let family = Registry::new().counter_family(Opts::new("calls", "Calls.").labels(["model"]))?;
    /// assert_eq!(family.expired_but_held(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn expired_but_held(&self) -> usize {
        self.inner.expiry.as_ref().map_or(0, |e| e.expired_len())
    }

    /// The most distinct label sets this family keeps.
    pub fn cardinality_limit(&self) -> usize {
        self.inner.limit
    }

    /// How many lookups of new label sets were sent to the overflow series.
    pub fn refused_label_sets(&self) -> u64 {
        self.inner.refused.load(Relaxed)
    }

    /// The family's name, help, unit, type and label names.
    pub fn descriptor(&self) -> &Descriptor {
        &self.inner.descriptor
    }
}

impl<M: Metric> std::fmt::Debug for Family<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Family")
            .field("descriptor", &self.inner.descriptor)
            .field("series", &self.len())
            .field("cardinality_limit", &self.inner.limit)
            .finish()
    }
}
