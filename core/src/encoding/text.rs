//! The line writer shared by both text formats; the differences between
//! Prometheus text 0.0.4 and OpenMetrics 1.0 are confined to `family()`,
//! HELP escaping and the `# EOF` trailer.

use super::Format;
use crate::desc::{Descriptor, MetricType};
use crate::escape::escape_into;
use crate::exemplar::{write_hex, ExemplarValue};
use crate::sample::{Labels, Value};
use crate::visit::Visitor;

pub(super) struct TextWriter<'a> {
    out: &'a mut Vec<u8>,
    format: Format,
    bounds: &'a mut BoundsCache,
}

/// The `le` values of the last bucket layout written, formatted once: every
/// series of a family shares one layout.
#[derive(Debug, Default)]
pub(super) struct BoundsCache {
    bounds: Option<std::sync::Arc<[f64]>>,
    formatted: Vec<Vec<u8>>,
}

impl BoundsCache {
    fn get(&mut self, bounds: &std::sync::Arc<[f64]>) -> &[Vec<u8>] {
        if !self
            .bounds
            .as_ref()
            .is_some_and(|b| std::sync::Arc::ptr_eq(b, bounds))
        {
            self.formatted.clear();
            for &b in bounds.iter().chain([f64::INFINITY].iter()) {
                let mut text = Vec::new();
                write_f64(&mut text, b);
                self.formatted.push(text);
            }
            self.bounds = Some(bounds.clone());
        }
        &self.formatted
    }
}

impl<'a> TextWriter<'a> {
    pub(super) fn new(out: &'a mut Vec<u8>, format: Format, bounds: &'a mut BoundsCache) -> Self {
        TextWriter {
            out,
            format,
            bounds,
        }
    }

    pub(super) fn finish(self) {
        if self.format == Format::OpenMetrics {
            self.out.extend_from_slice(b"# EOF\n");
        }
    }

    fn sample_start(
        out: &mut Vec<u8>,
        name: &str,
        suffix: &str,
        labels: Labels<'_>,
        le: Option<&[u8]>,
    ) {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(suffix.as_bytes());
        if labels.is_empty() && le.is_none() {
            out.push(b' ');
            return;
        }
        out.push(b'{');
        if let Some(rendered) = labels.rendered() {
            out.extend_from_slice(rendered.as_bytes());
        } else {
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(label.as_bytes());
                out.extend_from_slice(b"=\"");
                escape_into(out, value, true);
                out.push(b'"');
            }
        }
        if let Some(le) = le {
            if !labels.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(b"le=\"");
            out.extend_from_slice(le);
            out.push(b'"');
        }
        out.extend_from_slice(b"} ");
    }

    fn sample_u64(
        out: &mut Vec<u8>,
        name: &str,
        suffix: &str,
        labels: Labels<'_>,
        le: Option<&[u8]>,
        v: u64,
    ) {
        Self::sample_start(out, name, suffix, labels, le);
        write_u64(out, v);
        out.push(b'\n');
    }

    fn sample_f64(out: &mut Vec<u8>, name: &str, suffix: &str, labels: Labels<'_>, v: f64) {
        Self::sample_start(out, name, suffix, labels, None);
        write_f64(out, v);
        out.push(b'\n');
    }
}

impl Visitor for TextWriter<'_> {
    fn family(&mut self, family: &Descriptor) {
        let name = family.name();
        // In text 0.0.4 a counter's metadata names the sample (`x_total`); in
        // OpenMetrics it names the family (`x`).
        let counter_suffix = match (self.format, family.metric_type()) {
            (Format::PrometheusText, MetricType::Counter) => "_total",
            _ => "",
        };
        let type_line = |out: &mut Vec<u8>| {
            out.extend_from_slice(b"# TYPE ");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(counter_suffix.as_bytes());
            out.push(b' ');
            out.extend_from_slice(family.metric_type().as_str().as_bytes());
            out.push(b'\n');
        };
        let help_line = |out: &mut Vec<u8>, escape_quotes: bool| {
            out.extend_from_slice(b"# HELP ");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(counter_suffix.as_bytes());
            out.push(b' ');
            escape_into(out, family.help(), escape_quotes);
            out.push(b'\n');
        };
        match self.format {
            Format::PrometheusText => {
                help_line(self.out, false);
                type_line(self.out);
            }
            Format::OpenMetrics => {
                type_line(self.out);
                if let Some(unit) = family.unit().prometheus_suffix() {
                    self.out.extend_from_slice(b"# UNIT ");
                    self.out.extend_from_slice(name.as_bytes());
                    self.out.push(b' ');
                    self.out.extend_from_slice(unit.as_bytes());
                    self.out.push(b'\n');
                }
                help_line(self.out, true);
            }
        }
    }

    fn wants_exemplars(&self) -> bool {
        self.format == Format::OpenMetrics
    }

    fn series_with_exemplars(
        &mut self,
        family: &Descriptor,
        labels: Labels<'_>,
        value: Value<'_>,
        exemplars: &[Option<ExemplarValue>],
    ) {
        if exemplars.iter().all(Option::is_none) {
            return self.series(family, labels, value);
        }
        let name = family.name();
        match value {
            Value::Counter(_) | Value::FloatCounter(_) => {
                self.series(family, labels, value);
                if let Some(Some(e)) = exemplars.first() {
                    append_exemplar(self.out, e);
                }
            }
            Value::Gauge(_) => self.series(family, labels, value),
            Value::Histogram(h) => {
                let les = self.bounds.get(&h.bounds);
                for (i, (le, (_, cumulative))) in les.iter().zip(h.cumulative()).enumerate() {
                    Self::sample_u64(self.out, name, "_bucket", labels, Some(le), cumulative);
                    if let Some(Some(e)) = exemplars.get(i) {
                        append_exemplar(self.out, e);
                    }
                }
                Self::sample_f64(self.out, name, "_sum", labels, h.sum());
                Self::sample_u64(self.out, name, "_count", labels, None, h.count());
            }
        }
    }

    fn series(&mut self, family: &Descriptor, labels: Labels<'_>, value: Value<'_>) {
        let name = family.name();
        if let Some(prefix) = labels.sample_prefix() {
            self.out.extend_from_slice(prefix.as_bytes());
            match value {
                Value::Counter(n) => write_u64(self.out, n),
                Value::FloatCounter(v) | Value::Gauge(v) => write_f64(self.out, v),
                Value::Histogram(_) => unreachable!("histograms have no single-sample prefix"),
            }
            self.out.push(b'\n');
            return;
        }
        match value {
            Value::Counter(n) => Self::sample_u64(self.out, name, "_total", labels, None, n),
            Value::FloatCounter(v) => Self::sample_f64(self.out, name, "_total", labels, v),
            Value::Gauge(v) => Self::sample_f64(self.out, name, "", labels, v),
            Value::Histogram(h) => {
                let les = self.bounds.get(&h.bounds);
                for (le, (_, cumulative)) in les.iter().zip(h.cumulative()) {
                    Self::sample_u64(self.out, name, "_bucket", labels, Some(le), cumulative);
                }
                Self::sample_f64(self.out, name, "_sum", labels, h.sum());
                Self::sample_u64(self.out, name, "_count", labels, None, h.count());
            }
        }
    }
}

/// Turns the sample line just written (ending in `\n`) into one carrying an
/// OpenMetrics exemplar: ` # {trace_id="…",span_id="…",extra="…"} value
/// timestamp`, the timestamp in seconds with millisecond precision.
fn append_exemplar(out: &mut Vec<u8>, e: &ExemplarValue) {
    out.pop();
    out.extend_from_slice(b" # {trace_id=\"");
    write_hex(out, &e.trace_id());
    out.extend_from_slice(b"\",span_id=\"");
    write_hex(out, &e.span_id());
    out.push(b'"');
    for (name, value) in e.labels() {
        out.push(b',');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"=\"");
        escape_into(out, value, true);
        out.push(b'"');
    }
    out.extend_from_slice(b"} ");
    write_f64(out, e.value());
    out.push(b' ');
    let nanos = e.timestamp_nanos();
    write_u64(out, nanos / 1_000_000_000);
    out.push(b'.');
    let millis = (nanos / 1_000_000) % 1_000;
    out.extend_from_slice(&[
        b'0' + (millis / 100) as u8,
        b'0' + (millis / 10 % 10) as u8,
        b'0' + (millis % 10) as u8,
    ]);
    out.push(b'\n');
}

/// Appends a float in a form both Prometheus and OpenMetrics parse:
/// `+Inf`, `-Inf`, `NaN`, otherwise Rust's shortest round-trip form
/// (`1.0`, `0.25`, `1e-7`).
pub(super) fn write_f64(out: &mut Vec<u8>, v: f64) {
    use std::io::Write;
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v == f64::INFINITY {
        out.extend_from_slice(b"+Inf");
    } else if v == f64::NEG_INFINITY {
        out.extend_from_slice(b"-Inf");
    } else {
        write!(out, "{v:?}").expect("writing to a Vec cannot fail");
    }
}

/// Two ASCII digits for every number below 100.
const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

pub(super) fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if v >= 10 {
        let pair = v as usize * 2;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        digits[i] = b'0' + v as u8;
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn floats_and_integers() {
        let f = |v| {
            let mut out = Vec::new();
            write_f64(&mut out, v);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(f(1.0), "1.0");
        assert_eq!(f(0.1), "0.1");
        assert_eq!(f(f64::INFINITY), "+Inf");
        assert_eq!(f(f64::NEG_INFINITY), "-Inf");
        assert_eq!(f(f64::NAN), "NaN");
        assert_eq!(f(1e-7).parse::<f64>().unwrap(), 1e-7);
        let mut out = Vec::new();
        for v in [0, 7, 10, 99, 100, 101, 12345, u64::MAX] {
            out.clear();
            write_u64(&mut out, v);
            assert_eq!(String::from_utf8(out.clone()).unwrap(), v.to_string());
        }
    }
}
