//! A family's table of series: a hash map from label-set hash to the series
//! with that hash (confirmed by comparing values, so colliding hashes never
//! merge two series), plus the creation order the exposition follows.
//!
//! The table itself is not synchronised; the family keeps it behind a
//! read-write lock that only resolving and removing label sets take.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::series::Series;

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

pub(crate) struct SeriesTable<S> {
    by_hash: HashMap<u64, Vec<Arc<Series<S>>>, BuildHasherDefault<PassThrough>>,
    /// Series in creation order: the exposition order.
    ordered: Vec<Arc<Series<S>>>,
}

impl<S> SeriesTable<S> {
    pub(crate) fn new() -> Self {
        SeriesTable {
            by_hash: HashMap::default(),
            ordered: Vec::new(),
        }
    }

    /// The series whose label values are `values` (hashing to `hash`).
    pub(crate) fn find<V: AsRef<str>>(&self, hash: u64, values: &[V]) -> Option<&Arc<Series<S>>> {
        self.by_hash
            .get(&hash)?
            .iter()
            .find(|series| series.label_values.equals(values))
    }

    /// Adds a series that [`find`](Self::find) did not find.
    pub(crate) fn insert(&mut self, hash: u64, series: Arc<Series<S>>) {
        self.by_hash.entry(hash).or_default().push(series.clone());
        self.ordered.push(series);
    }

    /// Removes the series for `values`; returns it if it was there.
    pub(crate) fn remove<V: AsRef<str>>(
        &mut self,
        hash: u64,
        values: &[V],
    ) -> Option<Arc<Series<S>>> {
        let series = self.find(hash, values)?.clone();
        if let Some(bucket) = self.by_hash.get_mut(&hash) {
            bucket.retain(|s| !Arc::ptr_eq(s, &series));
            if bucket.is_empty() {
                self.by_hash.remove(&hash);
            }
        }
        self.ordered.retain(|s| !Arc::ptr_eq(s, &series));
        Some(series)
    }

    /// Removes each of `series` (with its label-set hash) that is still in
    /// the table, in one pass over the creation order; returns those removed.
    pub(crate) fn remove_all(
        &mut self,
        series: Vec<(u64, Arc<Series<S>>)>,
    ) -> Vec<(u64, Arc<Series<S>>)> {
        let mut removed = Vec::with_capacity(series.len());
        for (hash, one) in series {
            let Some(bucket) = self.by_hash.get_mut(&hash) else {
                continue;
            };
            let before = bucket.len();
            bucket.retain(|s| !Arc::ptr_eq(s, &one));
            if bucket.len() < before {
                if bucket.is_empty() {
                    self.by_hash.remove(&hash);
                }
                removed.push((hash, one));
            }
        }
        if !removed.is_empty() {
            let gone: std::collections::HashSet<*const Series<S>> =
                removed.iter().map(|(_, s)| Arc::as_ptr(s)).collect();
            self.ordered.retain(|s| !gone.contains(&Arc::as_ptr(s)));
        }
        removed
    }

    /// Series in creation order.
    pub(crate) fn ordered(&self) -> &[Arc<Series<S>>] {
        &self.ordered
    }

    /// Number of series.
    pub(crate) fn len(&self) -> usize {
        self.ordered.len()
    }
}
