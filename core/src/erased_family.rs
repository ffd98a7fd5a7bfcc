//! Families with their metric kind erased: what the registry stores and what
//! a registry walk reads, whatever the kind.

use std::any::Any;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::desc::Descriptor;
use crate::exemplar_slots::ExemplarCell;
use crate::family::FamilyInner;
use crate::handles::Metric;
use crate::histogram::HistogramValue;
use crate::idle_expiry::{fingerprint, IdleExpiry, Verdict};
use crate::label_set::hash_strs;
use crate::name::OVERFLOW_LABEL;
use crate::sample::{Labels, Value};
use crate::sync::Ordering::Relaxed;

/// What a family walk hands on for each series.
pub(crate) type SeriesCallback<'f> = dyn FnMut(Labels<'_>, Value<'_>, &ExemplarCell) + 'f;

/// What the registry and the encoders need from a family of any kind.
pub(crate) trait ErasedFamily: Send + Sync {
    fn descriptor(&self) -> &Descriptor;
    fn bounds(&self) -> Option<&[f64]>;
    /// Calls `f` for every series with its labels, value and exemplar slots.
    fn visit_series(&self, scratch: &mut HistogramValue, f: &mut SeriesCallback<'_>);
    fn refused_label_sets(&self) -> u64;
    fn idle_expiry(&self) -> Option<Duration>;
    fn invalid_values(&self) -> u64;
    fn refuses_values(&self) -> bool;
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// The label names of every overflow series.
static OVERFLOW_NAMES: OnceLock<[Box<str>; 1]> = OnceLock::new();

impl<M: Metric> ErasedFamily for FamilyInner<M> {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn bounds(&self) -> Option<&[f64]> {
        self.buckets.as_ref().map(|b| &**b.bounds())
    }

    fn visit_series(&self, scratch: &mut HistogramValue, f: &mut SeriesCallback<'_>) {
        let names = &self.descriptor.label_names;
        match &self.expiry {
            None => {
                for series in self.table.read().ordered() {
                    let labels = Labels::with_exposition(
                        names,
                        &series.label_values,
                        &series.exposition,
                        M::TYPE,
                    );
                    f(labels, M::read(&series.storage, scratch), &series.exemplars);
                }
            }
            Some(expiry) => self.visit_expiring(expiry, scratch, f),
        }
        if let Some(series) = self.overflow.get() {
            let names = OVERFLOW_NAMES.get_or_init(|| [Box::from(OVERFLOW_LABEL)]);
            f(
                Labels::with_exposition(names, &series.label_values, &series.exposition, M::TYPE),
                M::read(&series.storage, scratch),
                &series.exemplars,
            );
        }
    }

    fn refused_label_sets(&self) -> u64 {
        self.refused.load(Relaxed)
    }

    fn idle_expiry(&self) -> Option<Duration> {
        self.expiry.as_ref().map(IdleExpiry::after)
    }

    fn invalid_values(&self) -> u64 {
        let rejected = self.rejected.load(Relaxed);
        if !M::REFUSES_VALUES {
            return rejected;
        }
        let table = self.table.read();
        let overflow = self.overflow.get().into_iter();
        table
            .ordered()
            .iter()
            .chain(overflow)
            .map(|s| M::invalid_values(&s.storage))
            .sum::<u64>()
            + rejected
    }

    fn refuses_values(&self) -> bool {
        M::REFUSES_VALUES
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

impl<M: Metric> FamilyInner<M> {
    /// The walk of a family whose idle series expire (see `idle_expiry`):
    /// expired series recorded into since come back first, then every live
    /// series is exposed unless it has been idle too long, in which case it
    /// leaves the table.
    fn visit_expiring(
        &self,
        expiry: &IdleExpiry<M::Storage>,
        scratch: &mut HistogramValue,
        f: &mut SeriesCallback<'_>,
    ) {
        let names = &self.descriptor.label_names;
        let back = expiry.recorded_since_expiry(|s| fingerprint(&M::read(&s.storage, scratch)));
        if !back.is_empty() {
            let mut table = self.table.write();
            for (hash, series) in back {
                let fingerprint_now = fingerprint(&M::read(&series.storage, scratch));
                let values: Vec<&str> = series.label_values.iter().collect();
                let taken = table.find(hash, &values).is_some();
                if taken || table.len() >= self.limit {
                    // Kept (and counting) until there is room again.
                    expiry.keep_expired(hash, &series, fingerprint_now);
                } else {
                    table.insert(hash, series.clone());
                    self.index
                        .insert(hash, &series, |values| self.rehash(values));
                }
            }
        }
        let generation = expiry.begin_pass();
        let mut idle = Vec::new();
        for series in self.table.read().ordered() {
            let value = M::read(&series.storage, scratch);
            match expiry.judge(series, fingerprint(&value), generation) {
                Verdict::Live => f(
                    Labels::with_exposition(
                        names,
                        &series.label_values,
                        &series.exposition,
                        M::TYPE,
                    ),
                    value,
                    &series.exemplars,
                ),
                Verdict::Expire(seen) => {
                    if let Ok(hash) = hash_strs(self.seed, series.label_values.iter()) {
                        idle.push((hash, series.clone(), seen));
                    }
                }
            }
        }
        expiry.end_pass(generation);
        if idle.is_empty() {
            return;
        }
        let mut fingerprints = std::collections::HashMap::new();
        let candidates = idle
            .into_iter()
            .map(|(hash, series, seen)| {
                fingerprints.insert(Arc::as_ptr(&series), seen);
                (hash, series)
            })
            .collect();
        let removed = {
            let mut table = self.table.write();
            let removed = table.remove_all(candidates);
            for (hash, series) in &removed {
                self.index.remove(*hash, series);
            }
            removed
        };
        for (hash, series) in removed {
            // A record that lands after the walk read the value changes the
            // fingerprint, and the next encode brings the series back.
            let seen = fingerprints[&Arc::as_ptr(&series)];
            expiry.expired(hash, &series, seen);
            // Lookups that found it in the index are waited out.
            crate::reclaim::retire(Box::new(series));
        }
    }
}
