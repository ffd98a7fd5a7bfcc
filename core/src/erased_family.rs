//! Families with their metric kind erased: what the registry stores and what
//! a registry walk reads, whatever the kind.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use crate::desc::Descriptor;
use crate::family::FamilyInner;
use crate::handles::Metric;
use crate::histogram::HistogramValue;
use crate::name::OVERFLOW_LABEL;
use crate::sample::{Labels, Value};
use crate::sync::Ordering::Relaxed;

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

/// The label names of every overflow series.
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
        for series in self.table.read().ordered() {
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
