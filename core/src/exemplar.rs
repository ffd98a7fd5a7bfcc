//! Exemplars: a trace (and optional labels) attached to one recorded value,
//! so an operator can jump from a slow bucket to the trace that landed in
//! it. This module holds the types users give and read; the lock-free slots
//! that keep the latest exemplar per bucket are in `exemplar_slots`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest an exemplar's label set may be, in characters of label names
/// and values together (OpenMetrics 1.0). `trace_id` and `span_id` take 63
/// of them.
pub const MAX_EXEMPLAR_LABEL_CHARS: usize = 128;

/// Bytes of extra labels an exemplar can carry besides `trace_id` and
/// `span_id` (each label costs its name and value plus two bytes).
pub(crate) const EXTRA_LABEL_BYTES: usize = 64;

/// Characters `trace_id="<32 hex>"` and `span_id="<16 hex>"` count toward
/// [`MAX_EXEMPLAR_LABEL_CHARS`].
const TRACE_LABEL_CHARS: usize = "trace_id".len() + 32 + "span_id".len() + 16;

/// A trace to attach to a recorded value.
///
/// ```
/// use beluga_metrics::{Buckets, Exemplar, Opts, Registry};
/// let registry = Registry::new();
/// let latency = registry.histogram(Opts::new("llm_call_seconds", "LLM calls."), Buckets::default())?;
/// let trace_id = [0x4b; 16];
/// let span_id = [0x1f; 8];
/// latency.record_with_exemplar(0.82, &Exemplar::new(trace_id, span_id))?;
/// let text = registry.encode(beluga_metrics::Format::OpenMetrics);
/// assert!(text.contains(
///     "llm_call_seconds_bucket{le=\"1.0\"} 1 # {trace_id=\"4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b\",span_id=\"1f1f1f1f1f1f1f1f\"} 0.82 "
/// ));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Exemplar<'a> {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    pub(crate) labels: &'a [(&'a str, &'a str)],
    pub(crate) timestamp: Option<SystemTime>,
}

impl<'a> Exemplar<'a> {
    /// An exemplar for a W3C trace context: 16-byte trace id, 8-byte span
    /// id (exposed as lowercase hex), timestamped when recorded.
    pub fn new(trace_id: [u8; 16], span_id: [u8; 8]) -> Exemplar<'a> {
        Exemplar {
            trace_id,
            span_id,
            labels: &[],
            timestamp: None,
        }
    }

    /// Extra labels (for example `("tenant", "acme")`): valid label names,
    /// at most 64 bytes of names and values together, so the whole label set
    /// stays within [`MAX_EXEMPLAR_LABEL_CHARS`].
    pub fn labels(mut self, labels: &'a [(&'a str, &'a str)]) -> Exemplar<'a> {
        self.labels = labels;
        self
    }

    /// When the value was observed (default: when it is recorded).
    pub fn timestamp(mut self, at: SystemTime) -> Exemplar<'a> {
        self.timestamp = Some(at);
        self
    }

    /// Packs the extra labels as `[name len][name][value len][value]...`,
    /// checking them.
    pub(crate) fn pack_labels(
        &self,
        out: &mut [u8; EXTRA_LABEL_BYTES],
    ) -> Result<usize, ExemplarError> {
        let mut at = 0;
        let mut chars = TRACE_LABEL_CHARS;
        for (name, value) in self.labels {
            if crate::name::check_label_name(name, false).is_err()
                || *name == "trace_id"
                || *name == "span_id"
            {
                return Err(ExemplarError::InvalidLabelName {
                    name: (*name).to_string(),
                });
            }
            chars += name.chars().count() + value.chars().count();
            let need = 2 + name.len() + value.len();
            if chars > MAX_EXEMPLAR_LABEL_CHARS
                || at + need > EXTRA_LABEL_BYTES
                || name.len() > 255
                || value.len() > 255
            {
                return Err(ExemplarError::LabelsTooLong { chars });
            }
            out[at] = name.len() as u8;
            out[at + 1..at + 1 + name.len()].copy_from_slice(name.as_bytes());
            at += 1 + name.len();
            out[at] = value.len() as u8;
            out[at + 1..at + 1 + value.len()].copy_from_slice(value.as_bytes());
            at += 1 + value.len();
        }
        Ok(at)
    }

    pub(crate) fn nanos_since_epoch(&self) -> u64 {
        let at = self.timestamp.unwrap_or_else(SystemTime::now);
        at.duration_since(UNIX_EPOCH).map_or(1, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
        })
    }
}

/// Why an exemplar was not kept. The value it came with is recorded anyway.
///
/// ```
/// use beluga_metrics::{Buckets, Exemplar, ExemplarError, Opts, Registry};
/// let h = Registry::new().histogram(Opts::new("h", "H."), Buckets::default())?;
/// let long = "x".repeat(80);
/// let labels = [("note", long.as_str())];
/// let refused = h.record_with_exemplar(0.1, &Exemplar::new([1; 16], [2; 8]).labels(&labels));
/// assert!(matches!(refused, Err(ExemplarError::LabelsTooLong { .. })));
/// assert_eq!(h.get().count(), 1); // the observation itself was recorded
/// # Ok::<(), beluga_metrics::RegistryError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExemplarError {
    /// The label set is over [`MAX_EXEMPLAR_LABEL_CHARS`] characters (or
    /// the extra labels over 64 bytes).
    LabelsTooLong {
        /// Characters of label names and values, `trace_id` and `span_id`
        /// included, counted up to the label that went over.
        chars: usize,
    },
    /// An extra label's name is not a valid label name, or is `trace_id` or
    /// `span_id`.
    InvalidLabelName {
        /// The name given.
        name: String,
    },
}

impl std::fmt::Display for ExemplarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExemplarError::LabelsTooLong { chars } => write!(
                f,
                "exemplar labels take {chars} characters, more than the {MAX_EXEMPLAR_LABEL_CHARS} OpenMetrics allows \
                 (trace_id and span_id take 63); the value was recorded without its exemplar"
            ),
            ExemplarError::InvalidLabelName { name } => write!(
                f,
                "exemplar label name {name:?} is not a valid label name (or is trace_id/span_id); \
                 the value was recorded without its exemplar"
            ),
        }
    }
}

impl std::error::Error for ExemplarError {}

/// An exemplar as read back: the latest one kept for a bucket or series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExemplarValue {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    pub(crate) value: f64,
    pub(crate) nanos: u64,
    pub(crate) labels: [u8; EXTRA_LABEL_BYTES],
    pub(crate) labels_len: usize,
}

impl ExemplarValue {
    /// The trace id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The span id.
    pub fn span_id(&self) -> [u8; 8] {
        self.span_id
    }

    /// The recorded value the exemplar came with.
    pub fn value(&self) -> f64 {
        self.value
    }

    /// When it was observed.
    pub fn timestamp(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.nanos)
    }

    /// Nanoseconds since the Unix epoch.
    pub fn timestamp_nanos(&self) -> u64 {
        self.nanos
    }

    /// The extra labels, in the order given.
    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let bytes = &self.labels[..self.labels_len.min(EXTRA_LABEL_BYTES)];
        let mut at = 0;
        std::iter::from_fn(move || {
            let mut take = || {
                let len = usize::from(*bytes.get(at)?);
                let text = std::str::from_utf8(bytes.get(at + 1..at + 1 + len)?).ok()?;
                at += 1 + len;
                Some(text)
            };
            Some((take()?, take()?))
        })
    }
}

/// Writes `bytes` as lowercase hex.
pub(crate) fn write_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}
