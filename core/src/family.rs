//! Labelled families: one series per distinct list of label values.
//!
//! A family maps label values to series through a hash table behind a
//! read-write lock. Only *resolving* label values takes the lock (shared, on
//! a hit); recording through a resolved handle never touches the family.
//! Keep the handle [`Family::with_labels`] returns for hot loops.
//!
//! Label values are compared value by value, never through a joined string,
//! so `["ab", "c"]` and `["a", "bc"]` are always two series.

use std::any::Any;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use crate::desc::{Descriptor, MetricType};
use crate::error::LabelError;
use crate::histogram::{BucketMap, HistogramValue};
use crate::lookup_cache;
use crate::name::OVERFLOW_LABEL;
use crate::sync::{AtomicU64, Ordering::Relaxed};
use crate::visit::{Labels, Value};

static NEXT_FAMILY_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Default cap on distinct label sets per family.
pub const DEFAULT_CARDINALITY_LIMIT: usize = 2000;

/// One series: its label values and its storage.
pub struct Series<S> {
    pub(crate) label_values: Box<[Box<str>]>,
    /// What both text formats write for this series, computed once so a
    /// scrape copies it instead of escaping every label again: for counters
    /// and gauges the whole sample prefix (`name_total{a="x"} `), for
    /// histograms the labels (`a="x"`), to which `le` is appended.
    pub(crate) exposition: Box<str>,
    pub(crate) storage: S,
}

/// Renders a series' labels (and, for single-sample kinds, its sample name)
/// the way both exposition formats write them.
fn render_exposition<'v>(
    desc: &Descriptor,
    pairs: impl Iterator<Item = (&'v str, &'v str)>,
) -> Box<str> {
    let mut out = Vec::new();
    let mut labels = pairs.peekable();
    let prefix = desc.metric_type != MetricType::Histogram;
    if prefix {
        out.extend_from_slice(desc.name.as_bytes());
        if desc.metric_type == MetricType::Counter {
            out.extend_from_slice(b"_total");
        }
        if labels.peek().is_some() {
            out.push(b'{');
        }
    }
    let labelled = labels.peek().is_some();
    for (i, (name, value)) in labels.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"=\"");
        crate::encoding::escape_label_value(&mut out, value);
        out.push(b'"');
    }
    if prefix {
        out.extend_from_slice(if labelled { b"} " } else { b" " });
    }
    String::from_utf8(out)
        .expect("escaping keeps UTF-8")
        .into_boxed_str()
}

/// The kinds of metric a family can hold. Implemented by [`Counter`],
/// [`FloatCounter`], [`Gauge`] and [`Histogram`]; not meant to be
/// implemented elsewhere.
///
/// [`Counter`]: crate::Counter
/// [`FloatCounter`]: crate::FloatCounter
/// [`Gauge`]: crate::Gauge
/// [`Histogram`]: crate::Histogram
pub trait Metric: Clone + Send + Sync + 'static + sealed::Sealed {}

pub(crate) mod sealed {
    use super::*;

    /// What the family needs to know about a kind of metric.
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
    }
}

impl<M: Clone + Send + Sync + 'static + sealed::Sealed> Metric for M {}

/// A hasher for keys that already are good 64-bit hashes.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys are hashed")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Up to 8 bytes as one word, without a call to `memcpy`. For a given
/// length the word is unique to the bytes (the reads cover every byte), so
/// equal lengths plus equal words mean equal strings.
#[inline]
fn short_word(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    debug_assert!(n <= 8);
    let u32_at = |i: usize| u64::from(u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap()));
    if n >= 4 {
        u32_at(0) | u32_at(n - 4) << 32
    } else if n > 0 {
        u64::from(bytes[0]) | u64::from(bytes[n / 2]) << 8 | u64::from(bytes[n - 1]) << 16
    } else {
        0
    }
}

/// Label-value equality, inlined for the short values labels usually hold.
#[inline]
pub(crate) fn same_value(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len()
        && if a.len() <= 8 {
            short_word(a) == short_word(b)
        } else {
            a == b
        }
}

/// Hashes label values with a per-process random seed: a folded 128-bit
/// multiply per value of up to 8 bytes (per 8-byte word beyond), keyed by
/// the value's length so value boundaries count. Collisions only cost a
/// comparison: lookups always compare the values themselves.
#[inline]
fn hash_values<S: AsRef<str>>(seed: u64, values: &[S]) -> u64 {
    #[inline]
    fn mix(h: u64, word: u64, key: u64) -> u64 {
        let product = u128::from(h ^ word) * u128::from(key ^ 0x9E37_79B9_7F4A_7C15);
        (product as u64) ^ ((product >> 64) as u64)
    }
    let mut h = seed;
    for value in values {
        let bytes = value.as_ref().as_bytes();
        let len = bytes.len() as u64;
        if bytes.len() <= 8 {
            h = mix(h, short_word(bytes), len);
            continue;
        }
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            h = mix(h, u64::from_le_bytes(chunk.try_into().unwrap()), len);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            h = mix(h, short_word(rest), len);
        }
    }
    h
}

#[inline]
fn process_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        std::collections::hash_map::RandomState::new().hash_one(0x6265_6c75_6761u64)
    })
}

struct Table<S> {
    by_hash: HashMap<u64, Vec<Arc<Series<S>>>, BuildHasherDefault<PassThrough>>,
    /// Series in creation order: the exposition order.
    ordered: Vec<Arc<Series<S>>>,
}

impl<S> Table<S> {
    fn find<V: AsRef<str>>(&self, hash: u64, values: &[V]) -> Option<&Arc<Series<S>>> {
        self.by_hash.get(&hash)?.iter().find(|series| {
            series.label_values.len() == values.len()
                && series
                    .label_values
                    .iter()
                    .zip(values)
                    .all(|(a, b)| same_value(a, b.as_ref()))
        })
    }
}

pub(crate) struct FamilyInner<M: Metric> {
    /// Unique for the life of the process (keys the per-thread lookup cache).
    id: u64,
    /// Bumped by every removal, so cached handles to removed series expire.
    version: AtomicU64,
    pub(crate) descriptor: Descriptor,
    pub(crate) buckets: Option<Arc<BucketMap>>,
    pub(crate) limit: usize,
    table: RwLock<Table<M::Storage>>,
    overflow: OnceLock<Arc<Series<M::Storage>>>,
    refused: AtomicU64,
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
    ) -> Self {
        Family {
            inner: Arc::new(FamilyInner {
                id: NEXT_FAMILY_ID.fetch_add(1, Relaxed),
                version: AtomicU64::new(0),
                descriptor,
                buckets,
                limit,
                table: RwLock::new(Table {
                    by_hash: HashMap::default(),
                    ordered: Vec::new(),
                }),
                overflow: OnceLock::new(),
                refused: AtomicU64::new(0),
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
    /// practical. A hit in the calling thread's lookup cache takes no lock,
    /// no atomic read-modify-write and no allocation.
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
        let expected = self.inner.descriptor.label_names.len();
        if values.len() != expected {
            return Err(LabelError::CountMismatch {
                metric: self.inner.descriptor.name.to_string(),
                expected,
                got: values.len(),
            });
        }
        let hash = hash_values(process_seed(), values);
        let key = lookup_cache::Key {
            family: self.inner.id,
            version: self.inner.version.load(Relaxed),
            hash,
        };
        Ok(lookup_cache::with_handle(
            key,
            values,
            || self.resolve(hash, values),
            f,
        ))
    }

    /// The handle for `values` from the family's table, creating the series
    /// (or sending it to overflow) when it is new.
    fn resolve<V: AsRef<str>>(&self, hash: u64, values: &[V]) -> M {
        if let Some(series) = self.inner.table.read().find(hash, values) {
            return M::from_series(series.clone());
        }
        M::from_series(self.insert(hash, values))
    }

    #[cold]
    fn insert<V: AsRef<str>>(&self, hash: u64, values: &[V]) -> Arc<Series<M::Storage>> {
        let mut table = self.inner.table.write();
        if let Some(series) = table.find(hash, values) {
            return series.clone();
        }
        if table.ordered.len() >= self.inner.limit {
            drop(table);
            self.inner.refused.fetch_add(1, Relaxed);
            return self.overflow_series().clone();
        }
        let names = &self.inner.descriptor.label_names;
        let series = Arc::new(Series {
            label_values: values.iter().map(|v| Box::from(v.as_ref())).collect(),
            exposition: render_exposition(
                &self.inner.descriptor,
                names
                    .iter()
                    .map(|n| &**n)
                    .zip(values.iter().map(|v| v.as_ref())),
            ),
            storage: M::new_storage(self.inner.buckets.as_ref()),
        });
        table.by_hash.entry(hash).or_default().push(series.clone());
        table.ordered.push(series.clone());
        series
    }

    fn overflow_series(&self) -> &Arc<Series<M::Storage>> {
        self.inner.overflow.get_or_init(|| {
            Arc::new(Series {
                label_values: Box::new([Box::from("true")]),
                exposition: render_exposition(
                    &self.inner.descriptor,
                    [(OVERFLOW_LABEL, "true")].into_iter(),
                ),
                storage: M::new_storage(self.inner.buckets.as_ref()),
            })
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
        let values = self.order_pairs(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))?;
        self.with_labels(&values)
    }

    /// Puts `(name, value)` pairs into the family's label order.
    pub(crate) fn order_pairs<'v>(
        &self,
        pairs: impl Iterator<Item = (&'v str, &'v str)>,
    ) -> Result<Vec<&'v str>, LabelError> {
        let names = &self.inner.descriptor.label_names;
        let metric = || self.inner.descriptor.name.to_string();
        let mut values: Vec<Option<&str>> = vec![None; names.len()];
        for (name, value) in pairs {
            let Some(i) = names.iter().position(|n| **n == *name) else {
                return Err(LabelError::UnknownLabel {
                    metric: metric(),
                    label: name.to_string(),
                });
            };
            if values[i].replace(value).is_some() {
                return Err(LabelError::DuplicateLabel {
                    metric: metric(),
                    label: name.to_string(),
                });
            }
        }
        values
            .iter()
            .zip(names.iter())
            .map(|(v, name)| {
                v.ok_or_else(|| LabelError::MissingLabel {
                    metric: metric(),
                    label: name.to_string(),
                })
            })
            .collect()
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
        let expected = self.inner.descriptor.label_names.len();
        if values.len() != expected {
            return Err(LabelError::CountMismatch {
                metric: self.inner.descriptor.name.to_string(),
                expected,
                got: values.len(),
            });
        }
        let hash = hash_values(process_seed(), values);
        let mut table = self.inner.table.write();
        let Some(series) = table.find(hash, values).cloned() else {
            return Ok(false);
        };
        if let Some(bucket) = table.by_hash.get_mut(&hash) {
            bucket.retain(|s| !Arc::ptr_eq(s, &series));
            if bucket.is_empty() {
                table.by_hash.remove(&hash);
            }
        }
        table.ordered.retain(|s| !Arc::ptr_eq(s, &series));
        self.inner.version.fetch_add(1, Relaxed);
        Ok(true)
    }

    /// Number of series, not counting the overflow series.
    pub fn len(&self) -> usize {
        self.inner.table.read().ordered.len()
    }

    /// Whether the family has no series yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

/// What the registry and the encoders need from a family of any kind.
pub(crate) trait ErasedFamily: Send + Sync {
    fn descriptor(&self) -> &Descriptor;
    fn bounds(&self) -> Option<&[f64]>;
    fn visit_series(&self, scratch: &mut HistogramValue, f: &mut dyn FnMut(Labels<'_>, Value<'_>));
    fn refused_label_sets(&self) -> u64;
    fn invalid_values(&self) -> u64;
    fn refuses_values(&self) -> bool;
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

static OVERFLOW_NAMES: OnceLock<[Box<str>; 1]> = OnceLock::new();

impl<M: Metric> ErasedFamily for FamilyInner<M> {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn bounds(&self) -> Option<&[f64]> {
        self.buckets.as_ref().map(|b| &**b.bounds())
    }

    fn visit_series(&self, scratch: &mut HistogramValue, f: &mut dyn FnMut(Labels<'_>, Value<'_>)) {
        let names = &self.descriptor.label_names;
        for series in self.table.read().ordered.iter() {
            let labels =
                Labels::with_exposition(names, &series.label_values, &series.exposition, M::TYPE);
            f(labels, M::read(&series.storage, scratch));
        }
        if let Some(series) = self.overflow.get() {
            let names = OVERFLOW_NAMES.get_or_init(|| [Box::from(OVERFLOW_LABEL)]);
            f(
                Labels::with_exposition(names, &series.label_values, &series.exposition, M::TYPE),
                M::read(&series.storage, scratch),
            );
        }
    }

    fn refused_label_sets(&self) -> u64 {
        self.refused.load(Relaxed)
    }

    fn invalid_values(&self) -> u64 {
        let table = self.table.read();
        let overflow = self.overflow.get().into_iter();
        table
            .ordered
            .iter()
            .chain(overflow)
            .map(|s| M::invalid_values(&s.storage))
            .sum()
    }

    fn refuses_values(&self) -> bool {
        M::REFUSES_VALUES
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_value_equality_is_exact() {
        let values = [
            "",
            "a",
            "ab",
            "ba",
            "abc",
            "acb",
            "abcd",
            "abdc",
            "abcde",
            "abcdefg",
            "abcdefgh",
            "abcdefgX",
            "Xbcdefgh",
            "abcdefghi",
            "\0",
            "\0\0",
        ];
        for a in values {
            for b in values {
                assert_eq!(same_value(a, b), a == b, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn value_boundaries_are_part_of_the_hash() {
        let seed = 42;
        assert_ne!(
            hash_values(seed, &["ab", "c"]),
            hash_values(seed, &["a", "bc"])
        );
        assert_ne!(hash_values(seed, &["", "x"]), hash_values(seed, &["x", ""]));
        assert_eq!(
            hash_values(seed, &["gpt-4o", "free"]),
            hash_values(seed, &[String::from("gpt-4o"), String::from("free")])
        );
    }
}
