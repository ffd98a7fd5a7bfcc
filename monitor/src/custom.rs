//! Custom metrics registered and recorded by name.

use std::collections::{BTreeMap, HashMap};

use parking_lot::RwLock;

use crate::error::MonitorError;
use beluga_metrics::{Buckets, Counter, Family, Histogram, Metric, Opts, Registry};

/// Label values given by name, for the custom-metric API: a slice or array
/// of `(name, value)` pairs, or a map. They are checked against the label
/// names the metric was registered with.
pub trait CustomLabels {
    /// The `(name, value)` pairs.
    fn pairs(&self) -> Vec<(&str, &str)>;
}

impl CustomLabels for [(&str, &str)] {
    fn pairs(&self) -> Vec<(&str, &str)> {
        self.to_vec()
    }
}

impl<const N: usize> CustomLabels for [(&str, &str); N] {
    fn pairs(&self) -> Vec<(&str, &str)> {
        self.to_vec()
    }
}

impl<K: AsRef<str>, V: AsRef<str>, S> CustomLabels for HashMap<K, V, S> {
    fn pairs(&self) -> Vec<(&str, &str)> {
        self.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> CustomLabels for BTreeMap<K, V> {
    fn pairs(&self) -> Vec<(&str, &str)> {
        self.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect()
    }
}

#[derive(Clone)]
enum Custom {
    Counter(Family<Counter>),
    Histogram(Family<Histogram>),
}

pub(super) struct CustomMetrics {
    registry: Registry,
    limit: Option<usize>,
    by_name: RwLock<HashMap<String, Custom>>,
}

impl CustomMetrics {
    pub(super) fn new(registry: Registry, limit: Option<usize>) -> Self {
        CustomMetrics {
            registry,
            limit,
            by_name: RwLock::new(HashMap::new()),
        }
    }

    fn opts(&self, name: &str, help: &str, label_names: &[&str]) -> Opts {
        let opts = Opts::new(name, help).labels(label_names.iter().copied());
        match self.limit {
            Some(limit) => opts.cardinality_limit(limit),
            None => opts,
        }
    }

    fn get(&self, name: &str) -> Result<Custom, MonitorError> {
        self.by_name
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| MonitorError::NotRegistered { name: name.into() })
    }
}

impl CustomMetrics {
    pub(super) fn register_counter(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
    ) -> Result<(), MonitorError> {
        let family = self
            .registry
            .counter_family(self.opts(name, help, label_names))?;
        self.by_name
            .write()
            .insert(name.to_string(), Custom::Counter(family));
        Ok(())
    }

    pub(super) fn register_histogram(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
        buckets: Buckets,
    ) -> Result<(), MonitorError> {
        let family = self
            .registry
            .histogram_family(self.opts(name, help, label_names), buckets)?;
        self.by_name
            .write()
            .insert(name.to_string(), Custom::Histogram(family));
        Ok(())
    }

    pub(super) fn record_counter<L: CustomLabels + ?Sized>(
        &self,
        name: &str,
        value: u64,
        labels: &L,
    ) -> Result<(), MonitorError> {
        match self.get(name)? {
            Custom::Counter(family) => record(&family, labels, |c| c.add(value)),
            Custom::Histogram(_) => Err(MonitorError::WrongKind {
                name: name.into(),
                registered_as: "histogram",
            }),
        }
    }

    pub(super) fn record_histogram<L: CustomLabels + ?Sized>(
        &self,
        name: &str,
        value: f64,
        labels: &L,
    ) -> Result<(), MonitorError> {
        match self.get(name)? {
            Custom::Histogram(family) => record(&family, labels, |h| h.record(value)),
            Custom::Counter(_) => Err(MonitorError::WrongKind {
                name: name.into(),
                registered_as: "counter",
            }),
        }
    }
}

/// Resolves `(name, value)` labels against `family` and records through `f`.
fn record<M: Metric, L: CustomLabels + ?Sized>(
    family: &Family<M>,
    labels: &L,
    f: impl FnOnce(&M),
) -> Result<(), MonitorError> {
    let values = family.order_label_pairs(labels.pairs())?;
    family.with(&values, f)?;
    Ok(())
}
