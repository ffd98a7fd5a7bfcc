//! The Prometheus protobuf exposition: length-delimited
//! `io.prometheus.client.MetricFamily` messages (`client_model`'s
//! `metrics.proto`), written by hand like the text formats. Histograms carry
//! their classic buckets and, unless turned off, a native histogram built
//! from the HDR counts (`histogram/exponential.rs`).
//!
//! Wire format: each family is a varint length followed by the message;
//! inside, fields are `(number << 3 | wire type)` keys. Nested messages are
//! written into a reusable buffer per nesting level and copied into their
//! parent with their length, so steady-state encoding allocates nothing.
//! Repeated scalars are written unpacked (proto2's default; decoders accept
//! both forms).

use crate::desc::{Descriptor, MetricType};
use crate::exemplar::{write_hex, ExemplarValue};
use crate::histogram::{ExponentialBuckets, ExponentialScale, HistogramValue};
use crate::sample::{Labels, Value};
use crate::visit::Visitor;

// Field numbers of `metrics.proto`.
mod field {
    pub(super) const FAMILY_NAME: u32 = 1;
    pub(super) const FAMILY_HELP: u32 = 2;
    pub(super) const FAMILY_TYPE: u32 = 3;
    pub(super) const FAMILY_METRIC: u32 = 4;
    pub(super) const METRIC_LABEL: u32 = 1;
    pub(super) const METRIC_GAUGE: u32 = 2;
    pub(super) const METRIC_COUNTER: u32 = 3;
    pub(super) const METRIC_HISTOGRAM: u32 = 7;
    pub(super) const LABEL_NAME: u32 = 1;
    pub(super) const LABEL_VALUE: u32 = 2;
    pub(super) const VALUE: u32 = 1; // Gauge.value, Counter.value
    pub(super) const H_SAMPLE_COUNT: u32 = 1;
    pub(super) const H_SAMPLE_SUM: u32 = 2;
    pub(super) const H_BUCKET: u32 = 3;
    pub(super) const H_SCHEMA: u32 = 5;
    pub(super) const H_ZERO_THRESHOLD: u32 = 6;
    pub(super) const H_ZERO_COUNT: u32 = 7;
    pub(super) const H_POSITIVE_SPAN: u32 = 12;
    pub(super) const H_POSITIVE_DELTA: u32 = 13;
    pub(super) const BUCKET_CUMULATIVE_COUNT: u32 = 1;
    pub(super) const BUCKET_UPPER_BOUND: u32 = 2;
    pub(super) const BUCKET_EXEMPLAR: u32 = 3;
    pub(super) const COUNTER_EXEMPLAR: u32 = 2;
    pub(super) const EXEMPLAR_LABEL: u32 = 1;
    pub(super) const EXEMPLAR_VALUE: u32 = 2;
    pub(super) const EXEMPLAR_TIMESTAMP: u32 = 3;
    pub(super) const TIMESTAMP_SECONDS: u32 = 1;
    pub(super) const TIMESTAMP_NANOS: u32 = 2;
    pub(super) const SPAN_OFFSET: u32 = 1;
    pub(super) const SPAN_LENGTH: u32 = 2;
}

// `MetricType` enum values.
const COUNTER: u64 = 0;
const GAUGE: u64 = 1;
const HISTOGRAM: u64 = 4;

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LENGTH_DELIMITED: u32 = 2;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u32) {
    varint(out, u64::from(field << 3 | wire));
}

fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, VARINT);
    varint(out, v);
}

/// `sint32`/`sint64`: zigzag, so small negative numbers stay short.
fn sint(out: &mut Vec<u8>, field: u32, v: i64) {
    key(out, field, VARINT);
    varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn double(out: &mut Vec<u8>, field: u32, v: f64) {
    key(out, field, FIXED64);
    out.extend_from_slice(&v.to_le_bytes());
}

fn bytes(out: &mut Vec<u8>, field: u32, v: &[u8]) {
    key(out, field, LENGTH_DELIMITED);
    varint(out, v.len() as u64);
    out.extend_from_slice(v);
}

/// Nested messages under construction, innermost last; finished buffers
/// are kept for reuse.
#[derive(Default, Debug)]
struct Nesting {
    open: Vec<(u32, Vec<u8>)>,
    spare: Vec<Vec<u8>>,
}

impl Nesting {
    fn begin(&mut self, field: u32) {
        let buffer = self.spare.pop().unwrap_or_default();
        self.open.push((field, buffer));
    }

    fn current<'a>(&'a mut self, root: &'a mut Vec<u8>) -> &'a mut Vec<u8> {
        match self.open.last_mut() {
            Some((_, buffer)) => buffer,
            None => root,
        }
    }

    /// Closes the innermost message into its parent (or `root`).
    fn end(&mut self, root: &mut Vec<u8>) {
        let Some((field, mut buffer)) = self.open.pop() else {
            return;
        };
        bytes(self.current(root), field, &buffer);
        buffer.clear();
        self.spare.push(buffer);
    }
}

/// A [`Visitor`] writing the protobuf exposition into `out`.
pub(super) struct ProtobufWriter<'a> {
    out: &'a mut Vec<u8>,
    /// The family being written (without its length prefix).
    family: &'a mut Vec<u8>,
    nesting: &'a mut Nesting,
    native: Option<ExponentialScale>,
    family_has_series: bool,
}

/// Buffers a [`ProtobufWriter`] reuses between encodes.
#[derive(Default, Debug)]
pub(super) struct ProtobufBuffers {
    family: Vec<u8>,
    nesting: Nesting,
}

impl<'a> ProtobufWriter<'a> {
    pub(super) fn new(
        out: &'a mut Vec<u8>,
        buffers: &'a mut ProtobufBuffers,
        native: Option<ExponentialScale>,
    ) -> Self {
        ProtobufWriter {
            out,
            family: &mut buffers.family,
            nesting: &mut buffers.nesting,
            native,
            family_has_series: false,
        }
    }

    /// Writes the last family.
    pub(super) fn finish(&mut self) {
        self.flush_family();
    }

    fn flush_family(&mut self) {
        // A family without series is left out: the text formats print its
        // HELP and TYPE, but an empty MetricFamily carries nothing.
        if self.family_has_series {
            varint(self.out, self.family.len() as u64);
            self.out.extend_from_slice(self.family);
        }
        self.family.clear();
        self.family_has_series = false;
    }

    fn histogram(&mut self, h: &HistogramValue, exemplars: &[Option<ExemplarValue>]) {
        let root = &mut *self.family;
        let nesting = &mut *self.nesting;
        nesting.begin(field::METRIC_HISTOGRAM);
        let native = h.exponential().filter(|_| self.native.is_some());
        // The native count is read after the classic buckets, so it is never
        // below their total; at rest the two are equal.
        let count = native.map_or(h.count(), ExponentialBuckets::total);
        let out = nesting.current(root);
        uint(out, field::H_SAMPLE_COUNT, count);
        double(out, field::H_SAMPLE_SUM, h.sum());
        for (i, (bound, cumulative)) in h.cumulative().enumerate() {
            let exemplar = exemplars.get(i).copied().flatten();
            // The +Inf bucket is implied by sample_count; it is written only
            // to carry an exemplar.
            if bound.is_infinite() && exemplar.is_none() {
                break;
            }
            nesting.begin(field::H_BUCKET);
            let b = nesting.current(root);
            uint(b, field::BUCKET_CUMULATIVE_COUNT, cumulative);
            double(b, field::BUCKET_UPPER_BOUND, bound);
            if let Some(e) = &exemplar {
                exemplar_message(nesting, root, field::BUCKET_EXEMPLAR, e);
            }
            nesting.end(root);
        }
        if let Some(e) = native {
            let out = nesting.current(root);
            sint(out, field::H_SCHEMA, i64::from(e.scale()));
            double(out, field::H_ZERO_THRESHOLD, e.zero_threshold());
            uint(out, field::H_ZERO_COUNT, e.zero_count());
            native_buckets(nesting, root, e);
        }
        nesting.end(root);
    }
}

/// An `Exemplar` message: `trace_id`, `span_id` and extra labels, the
/// value, and a `google.protobuf.Timestamp`.
fn exemplar_message(nesting: &mut Nesting, root: &mut Vec<u8>, at: u32, e: &ExemplarValue) {
    nesting.begin(at);
    for (name, id) in [
        ("trace_id", &e.trace_id()[..]),
        ("span_id", &e.span_id()[..]),
    ] {
        nesting.begin(field::EXEMPLAR_LABEL);
        let l = nesting.current(root);
        bytes(l, field::LABEL_NAME, name.as_bytes());
        key(l, field::LABEL_VALUE, LENGTH_DELIMITED);
        varint(l, 2 * id.len() as u64);
        write_hex(l, id);
        nesting.end(root);
    }
    for (name, value) in e.labels() {
        nesting.begin(field::EXEMPLAR_LABEL);
        let l = nesting.current(root);
        bytes(l, field::LABEL_NAME, name.as_bytes());
        bytes(l, field::LABEL_VALUE, value.as_bytes());
        nesting.end(root);
    }
    double(nesting.current(root), field::EXEMPLAR_VALUE, e.value());
    nesting.begin(field::EXEMPLAR_TIMESTAMP);
    let t = nesting.current(root);
    let nanos = e.timestamp_nanos();
    uint(t, field::TIMESTAMP_SECONDS, nanos / 1_000_000_000);
    uint(t, field::TIMESTAMP_NANOS, nanos % 1_000_000_000);
    nesting.end(root);
    nesting.end(root);
}

/// The next span of `counts` at or after `from`: `[start, end)` from a
/// non-empty bucket to the last non-empty one of its run, where a run may
/// hold up to two empty buckets (each costs a one-byte delta inside a span;
/// a new span costs about four bytes).
fn next_span(counts: &[u64], from: usize) -> Option<(usize, usize)> {
    let start = from + counts.get(from..)?.iter().position(|&c| c > 0)?;
    let mut end = start + 1;
    loop {
        let zeros = counts[end..].iter().take_while(|&&c| c == 0).count();
        if zeros <= 2 && end + zeros < counts.len() {
            end += zeros + 1;
        } else {
            return Some((start, end));
        }
    }
}

fn spans(counts: &[u64]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut from = 0;
    std::iter::from_fn(move || {
        let (start, end) = next_span(counts, from)?;
        from = end;
        Some((start, end))
    })
}

/// Positive spans and deltas. Prometheus numbers bucket `(b^(i-1), b^i]` as
/// `i`, one more than OpenTelemetry (and [`ExponentialBuckets`]) does.
fn native_buckets(nesting: &mut Nesting, root: &mut Vec<u8>, e: &ExponentialBuckets) {
    let counts = e.counts();
    let first_index = i64::from(e.offset()) + 1;
    let mut previous_end: Option<usize> = None;
    for (start, end) in spans(counts) {
        nesting.begin(field::H_POSITIVE_SPAN);
        let s = nesting.current(root);
        let offset = match previous_end {
            None => first_index + start as i64,
            Some(previous) => (start - previous) as i64,
        };
        sint(s, field::SPAN_OFFSET, offset);
        uint(s, field::SPAN_LENGTH, (end - start) as u64);
        nesting.end(root);
        previous_end = Some(end);
    }
    let out = nesting.current(root);
    let mut last = 0i64;
    for (start, end) in spans(counts) {
        for &count in &counts[start..end] {
            let count = count as i64;
            sint(out, field::H_POSITIVE_DELTA, count - last);
            last = count;
        }
    }
}

impl Visitor for ProtobufWriter<'_> {
    fn exponential_buckets(&self) -> Option<ExponentialScale> {
        self.native
    }

    fn family(&mut self, family: &Descriptor) {
        self.flush_family();
        // Counters are exposed as `<name>_total`, as in the text formats.
        let suffix: &[u8] = match family.metric_type {
            MetricType::Counter => b"_total",
            _ => b"",
        };
        key(self.family, field::FAMILY_NAME, LENGTH_DELIMITED);
        varint(self.family, (family.name.len() + suffix.len()) as u64);
        self.family.extend_from_slice(family.name.as_bytes());
        self.family.extend_from_slice(suffix);
        bytes(self.family, field::FAMILY_HELP, family.help.as_bytes());
        let kind = match family.metric_type {
            MetricType::Counter => COUNTER,
            MetricType::Gauge => GAUGE,
            MetricType::Histogram => HISTOGRAM,
        };
        uint(self.family, field::FAMILY_TYPE, kind);
    }

    fn wants_exemplars(&self) -> bool {
        true
    }

    fn series(&mut self, family: &Descriptor, labels: Labels<'_>, value: Value<'_>) {
        self.series_with_exemplars(family, labels, value, &[]);
    }

    fn series_with_exemplars(
        &mut self,
        _family: &Descriptor,
        labels: Labels<'_>,
        value: Value<'_>,
        exemplars: &[Option<ExemplarValue>],
    ) {
        self.family_has_series = true;
        let root = &mut *self.family;
        self.nesting.begin(field::FAMILY_METRIC);
        for (name, label_value) in labels.iter() {
            self.nesting.begin(field::METRIC_LABEL);
            let l = self.nesting.current(root);
            bytes(l, field::LABEL_NAME, name.as_bytes());
            bytes(l, field::LABEL_VALUE, label_value.as_bytes());
            self.nesting.end(root);
        }
        let exemplar = exemplars.first().copied().flatten();
        match value {
            Value::Counter(v) => self.scalar(field::METRIC_COUNTER, v as f64, exemplar),
            Value::FloatCounter(v) => self.scalar(field::METRIC_COUNTER, v, exemplar),
            Value::Gauge(v) => self.scalar(field::METRIC_GAUGE, v, None),
            Value::Histogram(h) => self.histogram(h, exemplars),
        }
        let root = &mut *self.family;
        self.nesting.end(root);
    }
}

impl ProtobufWriter<'_> {
    fn scalar(&mut self, metric_field: u32, v: f64, exemplar: Option<ExemplarValue>) {
        let root = &mut *self.family;
        self.nesting.begin(metric_field);
        double(self.nesting.current(root), field::VALUE, v);
        if let Some(e) = &exemplar {
            exemplar_message(self.nesting, root, field::COUNTER_EXEMPLAR, e);
        }
        self.nesting.end(root);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn spans_join_gaps_of_up_to_two_empty_buckets() {
        let counts = [1, 0, 0, 2, 0, 0, 0, 3, 4, 0];
        assert_eq!(spans(&counts).collect::<Vec<_>>(), [(0, 4), (7, 9)]);
        assert_eq!(spans(&[0, 0]).count(), 0);
        assert_eq!(spans(&[5]).collect::<Vec<_>>(), [(0, 1)]);
    }

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn varints_and_zigzag_match_the_protobuf_spec() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xAC, 0x02]);
        for (v, zigzag) in [(0i64, 0u8), (-1, 1), (1, 2), (-2, 3)] {
            out.clear();
            sint(&mut out, 1, v);
            assert_eq!(out, [0x08, zigzag]);
        }
    }
}
