//! One series: its label values, its pre-rendered exposition prefix and its
//! storage. Everything above (the family table, the lookup cache, handles)
//! holds series through `Arc<Series<S>>`.

use std::sync::atomic::AtomicBool;

use crate::desc::{Descriptor, MetricType};
use crate::escape::escape_label_value;
use crate::exemplar_slots::ExemplarCell;
use crate::label_values::LabelValues;

/// One series: its label values and its storage.
///
/// `repr(C)`: a lookup compares the label values and then records into the
/// storage. The values (48 bytes, inline up to 40 bytes; see
/// `label_values`) come first, right after the `Arc`'s counts, and the
/// storage types keep what a record reads at their start, right after
/// them: a 2-label counter lookup through the index reads one or two
/// adjacent lines of its series and follows no pointer to its values.
/// The series is not aligned to 64 bytes, which would make that always one
/// line: aligned allocations (glibc's `memalign`) made a histogram record
/// right after the caches were flushed slower in `peers/cold_turn`, though
/// a cache simulator counted fewer lines (docs/design-notes.md).
#[repr(C)]
pub struct Series<S> {
    /// The label values, in the family's label order.
    pub(crate) label_values: LabelValues,
    pub(crate) storage: S,
    /// What both text formats write for this series, computed once so a
    /// scrape copies it instead of escaping every label again: for counters
    /// and gauges the whole sample prefix (`name_total{a="x"} `), for
    /// histograms the labels (`a="x"`), to which `le` is appended.
    pub(crate) exposition: Box<str>,
    /// Set when the family removes the series, so that lookup caches
    /// sweeping themselves know to let it go (see `reclaim::gate`).
    pub(crate) removed: AtomicBool,
    /// The latest exemplar per bucket (per series for counters), allocated
    /// on the first exemplar: a null pointer until then.
    pub(crate) exemplars: ExemplarCell,
}

impl<S> std::fmt::Debug for Series<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Series")
            .field("label_values", &self.label_values)
            .finish_non_exhaustive()
    }
}

impl<S> Series<S> {
    /// A series of the family described by `desc`, labelled with
    /// `(name, value)` pairs in the family's label order.
    pub(crate) fn new<'v>(
        desc: &Descriptor,
        pairs: impl Iterator<Item = (&'v str, &'v str)> + Clone,
        storage: S,
    ) -> Self {
        Series {
            label_values: LabelValues::new(pairs.clone().map(|(_, v)| v)),
            storage,
            exposition: render_exposition(desc, pairs),
            removed: AtomicBool::new(false),
            exemplars: ExemplarCell::default(),
        }
    }
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
        escape_label_value(&mut out, value);
        out.push(b'"');
    }
    if prefix {
        out.extend_from_slice(if labelled { b"} " } else { b" " });
    }
    // Only whole UTF-8 strings and ASCII escapes were appended.
    String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        .into_boxed_str()
}
