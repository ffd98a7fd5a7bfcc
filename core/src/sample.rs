//! What reading one series yields: its labels and its current value. The
//! visitor API hands these to exporters.

use crate::desc::MetricType;
use crate::histogram::HistogramValue;

/// The labels of one series: names paired with values.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    names: &'a [Box<str>],
    values: &'a [Box<str>],
    /// `name="escaped value",...`, computed once when the series was created.
    rendered: Option<&'a str>,
    /// For counters and gauges, the whole sample prefix `name{labels} `.
    sample_prefix: Option<&'a str>,
}

impl<'a> Labels<'a> {
    pub(crate) fn new(names: &'a [Box<str>], values: &'a [Box<str>]) -> Self {
        Labels {
            names,
            values,
            rendered: None,
            sample_prefix: None,
        }
    }

    /// Labels with the series' precomputed exposition (see `Series::exposition`).
    pub(crate) fn with_exposition(
        names: &'a [Box<str>],
        values: &'a [Box<str>],
        exposition: &'a str,
        kind: MetricType,
    ) -> Self {
        let histogram = kind == MetricType::Histogram;
        Labels {
            names,
            values,
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
        let (names, values) = (self.names, self.values);
        names.iter().zip(values.iter()).map(|(n, v)| (&**n, &**v))
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the series has no labels.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
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
