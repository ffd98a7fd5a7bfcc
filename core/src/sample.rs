//! What reading one series yields: its labels and its current value. The
//! visitor API hands these to exporters.

use crate::desc::MetricType;
use crate::histogram::HistogramValue;
use crate::label_values::LabelValues;

/// The labels of one series: names paired with values.
///
/// ```
/// use beluga_metrics::{Descriptor, Labels, Opts, Registry, Value, Visitor};
///
/// struct Pairs(Vec<Vec<(String, String)>>);
/// impl Visitor for Pairs {
///     fn family(&mut self, _: &Descriptor) {}
///     fn series(&mut self, _: &Descriptor, labels: Labels<'_>, _: Value<'_>) {
///         let pairs = labels.iter().map(|(n, v)| (n.to_string(), v.to_string()));
///         self.0.push(pairs.collect());
///     }
/// }
///
/// let registry = Registry::new();
/// let calls = registry.counter_family(Opts::new("calls", "Calls.").labels(["model", "tenant"]))?;
/// calls.with_labels(&["gpt-4o", "acme"])?.inc();
/// let mut pairs = Pairs(Vec::new());
/// registry.visit(&mut pairs);
/// let expected = [("model", "gpt-4o"), ("tenant", "acme")].map(|(n, v)| (n.into(), v.into()));
/// assert!(pairs.0.contains(&expected.to_vec()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    names: &'a [Box<str>],
    values: Values<'a>,
    /// `name="escaped value",...`, computed once when the series was created.
    rendered: Option<&'a str>,
    /// For counters and gauges, the whole sample prefix `name{labels} `.
    sample_prefix: Option<&'a str>,
}

impl<'a> Labels<'a> {
    pub(crate) fn new(names: &'a [Box<str>], values: &'a [Box<str>]) -> Self {
        Labels {
            names,
            values: Values::Listed(values),
            rendered: None,
            sample_prefix: None,
        }
    }

    /// Labels with the series' precomputed exposition (see `Series::exposition`).
    pub(crate) fn with_exposition(
        names: &'a [Box<str>],
        values: &'a LabelValues,
        exposition: &'a str,
        kind: MetricType,
    ) -> Self {
        let histogram = kind == MetricType::Histogram;
        Labels {
            names,
            values: Values::Series(values),
            rendered: histogram.then_some(exposition),
            sample_prefix: (!histogram).then_some(exposition),
        }
    }

    /// The whole sample prefix of a counter or gauge series, if precomputed.
    pub(crate) fn sample_prefix(&self) -> Option<&'a str> {
        self.sample_prefix
    }

    /// The labels as the exposition formats write them, if precomputed.
    pub(crate) fn rendered(&self) -> Option<&'a str> {
        self.rendered
    }

    /// `(name, value)` pairs in the family's label order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let names = self.names.iter().map(|n| &**n);
        // One of the two is empty.
        let (listed, own) = match self.values {
            Values::Listed(values) => (Some(values.iter().map(|v| &**v)), None),
            Values::Series(values) => (None, Some(values.iter())),
        };
        let values = listed
            .into_iter()
            .flatten()
            .chain(own.into_iter().flatten());
        names.zip(values)
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        match self.values {
            Values::Listed(values) => values.len(),
            Values::Series(values) => values.len(),
        }
    }

    /// Whether the series has no labels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a [`Labels`]' values are kept.
#[derive(Debug, Clone, Copy)]
enum Values<'a> {
    /// A list the caller made (the registry's own self-metrics).
    Listed(&'a [Box<str>]),
    /// A series' own.
    Series(&'a LabelValues),
}

/// The current value of one series.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// An integer counter's total.
    Counter(u64),
    /// A floating-point counter's total.
    FloatCounter(f64),
    /// A gauge's value.
    Gauge(f64),
    /// A histogram's exact buckets, sum and count.
    Histogram(&'a HistogramValue),
}
