//! What reading one series yields: its labels and its current value. The
//! visitor API hands these to exporters.

use crate::desc::MetricType;
use crate::histogram::HistogramValue;
use crate::label_values::LabelValues;

/// The labels of one series: names paired with values.
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
        let (listed, packed) = match self.values {
            Values::Listed(values) => (Some(values.iter().map(|v| &**v)), None),
            Values::Series(values) => (None, Some(values.iter())),
        };
        let values = listed
            .into_iter()
            .flatten()
            .chain(packed.into_iter().flatten());
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
    /// A list (a metric's constant labels).
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
