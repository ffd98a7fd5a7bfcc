//! Custom metrics registered and recorded by name.

use std::collections::{BTreeMap, HashMap};

use parking_lot::RwLock;

use crate::error::MonitorError;
use crate::recorders::AgentMetrics;
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

impl AgentMetrics {
    /// Registers a custom counter. Registering the same definition again is
    /// fine; another definition under the same name is an error.
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// let m = monitor.metrics();
    /// m.register_custom_counter("agent_handoffs_total", "Handoffs between agents.", &["from", "to"])?;
    /// m.record_custom_counter("agent_handoffs_total", 1, &[("from", "planner"), ("to", "coder")])?;
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn register_custom_counter(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
    ) -> Result<(), MonitorError> {
        let Some(custom) = self.custom() else {
            return Ok(());
        };
        let family = custom
            .registry
            .counter_family(custom.opts(name, help, label_names))?;
        custom
            .by_name
            .write()
            .insert(name.to_string(), Custom::Counter(family));
        Ok(())
    }

    /// Registers a custom histogram with these buckets.
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// # use beluga_metrics::Buckets;
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// let m = monitor.metrics();
    /// m.register_custom_histogram("agent_plan_steps", "Steps per plan.", &["agent"], Buckets::linear(1.0, 1.0, 10))?;
    /// let labels = std::collections::HashMap::from([("agent", "coder")]);
    /// m.record_custom_histogram("agent_plan_steps", 4.0, &labels)?;
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn register_custom_histogram(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
        buckets: Buckets,
    ) -> Result<(), MonitorError> {
        let Some(custom) = self.custom() else {
            return Ok(());
        };
        let family = custom
            .registry
            .histogram_family(custom.opts(name, help, label_names), buckets)?;
        custom
            .by_name
            .write()
            .insert(name.to_string(), Custom::Histogram(family));
        Ok(())
    }

    /// Adds `value` to a registered custom counter. An unregistered name is
    /// [`MonitorError::NotRegistered`]; labels that do not match the
    /// registered names are a [`MonitorError::Label`].
    ///
    /// ```
    /// # use beluga_monitor::{Monitor, MonitorError};
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// let err = monitor.metrics().record_custom_counter("never_registered_total", 1, &[]).unwrap_err();
    /// assert!(matches!(err, MonitorError::NotRegistered { .. }));
    /// # Ok::<(), MonitorError>(())
    /// ```
    pub fn record_custom_counter<L: CustomLabels + ?Sized>(
        &self,
        name: &str,
        value: u64,
        labels: &L,
    ) -> Result<(), MonitorError> {
        let Some(custom) = self.custom() else {
            return Ok(());
        };
        match custom.get(name)? {
            Custom::Counter(family) => record(&family, labels, |c| c.add(value)),
            Custom::Histogram(_) => Err(MonitorError::WrongKind {
                name: name.into(),
                registered_as: "histogram",
            }),
        }
    }

    /// Records `value` into a registered custom histogram (errors as for
    /// [`record_custom_counter`](Self::record_custom_counter)).
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// # use beluga_metrics::Buckets;
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// let m = monitor.metrics();
    /// m.register_custom_histogram("retrieval_documents", "Documents per retrieval.", &[], Buckets::exponential(1.0, 2.0, 8))?;
    /// m.record_custom_histogram("retrieval_documents", 12.0, &[])?;
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn record_custom_histogram<L: CustomLabels + ?Sized>(
        &self,
        name: &str,
        value: f64,
        labels: &L,
    ) -> Result<(), MonitorError> {
        let Some(custom) = self.custom() else {
            return Ok(());
        };
        match custom.get(name)? {
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
