//! Reading a registry without parsing text: the visitor API that the
//! Prometheus encoder and other exporters (OTLP) share.

use crate::desc::Descriptor;
use crate::exemplar::ExemplarValue;
use crate::histogram::{ExponentialScale, HistogramValue};
use crate::registry::Registry;
use crate::sample::{Labels, Value};
use crate::shards::saturated_adds;

/// Receives every family and series of a registry, in exposition order.
///
/// ```
/// use beluga_metrics::{Descriptor, Labels, Opts, Registry, Value, Visitor};
///
/// struct Totals(Vec<(String, u64)>);
/// impl Visitor for Totals {
///     fn family(&mut self, _: &Descriptor) {}
///     fn series(&mut self, family: &Descriptor, _: Labels<'_>, value: Value<'_>) {
///         if let Value::Counter(n) = value {
///             self.0.push((family.name().to_string(), n));
///         }
///     }
/// }
///
/// let registry = Registry::new();
/// registry.counter(Opts::new("requests_total", "Requests."))?.add(3);
/// let mut totals = Totals(Vec::new());
/// registry.visit(&mut totals);
/// assert!(totals.0.contains(&("requests".to_string(), 3)));
/// # Ok::<(), beluga_metrics::RegistryError>(())
/// ```
pub trait Visitor {
    /// Called once per family, before its series.
    fn family(&mut self, family: &Descriptor);
    /// Whether histograms should also be read in base-2 exponential
    /// buckets ([`HistogramValue::exponential`]), and at what scale. Asked
    /// once per walk; the default, `None`, reads classic buckets only.
    fn exponential_buckets(&self) -> Option<ExponentialScale> {
        None
    }
    /// Whether the walk should read exemplars and call
    /// [`series_with_exemplars`](Self::series_with_exemplars) with them.
    /// Asked once per walk; default `false` (no exemplar slot is touched).
    fn wants_exemplars(&self) -> bool {
        false
    }
    /// Like [`series`](Self::series), with the series' latest exemplars:
    /// one entry per classic bucket for a histogram (the last is `+Inf`), one
    /// for a counter; empty when the series never had one or exemplars were
    /// not asked for. The default ignores them and calls `series`.
    fn series_with_exemplars(
        &mut self,
        family: &Descriptor,
        labels: Labels<'_>,
        value: Value<'_>,
        exemplars: &[Option<ExemplarValue>],
    ) {
        let _ = exemplars;
        self.series(family, labels, value);
    }
    /// Called once per series of the family last announced.
    fn series(&mut self, family: &Descriptor, labels: Labels<'_>, value: Value<'_>);
}

impl Registry {
    /// Walks every family and series, in exposition order: families by
    /// name, series in creation order, overflow series last, then the
    /// registry's self-metrics.
    pub fn visit(&self, visitor: &mut dyn Visitor) {
        let mut scratch = HistogramValue::empty();
        self.visit_with(visitor, &mut scratch);
    }

    pub(crate) fn visit_with(&self, visitor: &mut dyn Visitor, scratch: &mut HistogramValue) {
        self.refresh_before_read();
        scratch.want_exponential = visitor.exponential_buckets();
        // Removed series and replaced indexes whose grace period ended while
        // nothing was retired since are freed here, at the latest.
        crate::reclaim::collect_garbage();
        // Snapshot the family list so registration never waits on an encode.
        let families = self.families();
        let mut overflow = Vec::new();
        let mut invalid = Vec::new();
        let wants_exemplars = visitor.wants_exemplars();
        let mut exemplars = Vec::new();
        for family in &families {
            let desc = family.descriptor();
            visitor.family(desc);
            family.visit_series(scratch, &mut |labels, value, slots| {
                if wants_exemplars {
                    slots.read_into(&mut exemplars);
                }
                visitor.series_with_exemplars(desc, labels, value, &exemplars)
            });
            if !desc.label_names.is_empty() {
                overflow.push((desc.name.clone(), family.refused_label_sets()));
            }
            let invalid_values = family.invalid_values();
            if family.refuses_values() || invalid_values > 0 {
                invalid.push((desc.name.clone(), invalid_values));
            }
        }
        for (desc, rows) in self.self_metrics().iter().zip([overflow, invalid]) {
            if rows.is_empty() {
                continue;
            }
            visitor.family(desc);
            for (metric, count) in rows {
                let value: [Box<str>; 1] = [Box::from(&*metric)];
                visitor.series(
                    desc,
                    Labels::new(&desc.label_names, &value),
                    Value::Counter(count),
                );
            }
        }
        let saturated = saturated_adds();
        if saturated > 0 {
            let desc = self.saturations_metric();
            visitor.family(desc);
            visitor.series(desc, Labels::new(&[], &[]), Value::Counter(saturated));
        }
        let refused = self.refused_families();
        if refused > 0 {
            let desc = self.refused_families_metric();
            visitor.family(desc);
            visitor.series(desc, Labels::new(&[], &[]), Value::Counter(refused));
        }
    }
}
