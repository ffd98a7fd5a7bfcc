//! Prometheus text 0.0.4 and OpenMetrics 1.0 encoding, written by hand.
//!
//! Output order is deterministic: families sorted by name, series in the
//! order they were created, the overflow series last in its family, then the
//! registry's self-metrics. Every family appears once with all its series
//! together; label values and help text are escaped losslessly.

mod negotiate;
mod text;

use crate::histogram::HistogramValue;
use crate::registry::Registry;

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    PrometheusText,
    /// OpenMetrics 1.0.0 text format.
    OpenMetrics,
}

impl Format {
    /// The exact `Content-Type` of Prometheus text 0.0.4.
    pub const PROMETHEUS_TEXT_CONTENT_TYPE: &'static str =
        "text/plain; version=0.0.4; charset=utf-8";
    /// The exact `Content-Type` of OpenMetrics 1.0.0.
    pub const OPENMETRICS_CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// The `Content-Type` header value for this format.
    ///
    /// ```
    /// use beluga_metrics::Format;
    /// assert_eq!(Format::PrometheusText.content_type(), "text/plain; version=0.0.4; charset=utf-8");
    /// ```
    pub fn content_type(self) -> &'static str {
        match self {
            Format::PrometheusText => Self::PROMETHEUS_TEXT_CONTENT_TYPE,
            Format::OpenMetrics => Self::OPENMETRICS_CONTENT_TYPE,
        }
    }

    /// Picks the format a scraper prefers from its `Accept` header, honouring
    /// q-values (highest wins, the earlier entry on a tie; `q=0` refuses).
    /// OpenMetrics is chosen only when asked for explicitly (without a
    /// version, or version 1.0.0); everything else, including a missing or
    /// unusable header, gets Prometheus text, which every scraper reads.
    ///
    /// ```
    /// use beluga_metrics::Format;
    /// // What Prometheus 2.42 sends:
    /// let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
    ///               version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    /// assert_eq!(Format::from_accept(Some(accept)), Format::OpenMetrics);
    /// assert_eq!(Format::from_accept(Some("text/plain")), Format::PrometheusText);
    /// assert_eq!(Format::from_accept(None), Format::PrometheusText);
    /// ```
    pub fn from_accept(accept: Option<&str>) -> Format {
        negotiate::from_accept(accept)
    }
}

/// Encodes registries into a buffer that is reused between calls, so a
/// steady scrape loop stops allocating once the buffer has grown.
///
/// ```
/// use beluga_metrics::{Encoder, Format, Opts, Registry};
/// let registry = Registry::new();
/// registry.counter(Opts::new("requests_total", "Requests served."))?.add(7);
/// let mut encoder = Encoder::new();
/// let text = std::str::from_utf8(encoder.encode(&registry, Format::OpenMetrics)).unwrap();
/// assert_eq!(
///     text,
///     "# TYPE requests counter\n# HELP requests Requests served.\nrequests_total 7\n# EOF\n"
/// );
/// # Ok::<(), beluga_metrics::RegistryError>(())
/// ```
#[derive(Debug)]
pub struct Encoder {
    buffer: Vec<u8>,
    scratch: HistogramValue,
    bounds: text::BoundsCache,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

impl Encoder {
    /// An encoder with an empty buffer.
    pub fn new() -> Encoder {
        Encoder {
            buffer: Vec::new(),
            scratch: HistogramValue::empty(),
            bounds: text::BoundsCache::default(),
        }
    }

    /// Encodes `registry` in `format` and returns the bytes (valid UTF-8),
    /// which stay valid until the next call.
    pub fn encode(&mut self, registry: &Registry, format: Format) -> &[u8] {
        self.buffer.clear();
        let mut writer = text::TextWriter::new(&mut self.buffer, format, &mut self.bounds);
        registry.visit_with(&mut writer, &mut self.scratch);
        writer.finish();
        &self.buffer
    }
}

impl Registry {
    /// Encodes the registry into a new string. Exporters that scrape often
    /// should keep an [`Encoder`] instead, to reuse its buffer.
    ///
    /// ```
    /// use beluga_metrics::{Format, Opts, Registry};
    /// let registry = Registry::new();
    /// registry.gauge(Opts::new("queue_depth", "Jobs waiting."))?.set(3.0);
    /// assert_eq!(
    ///     registry.encode(Format::PrometheusText),
    ///     "# HELP queue_depth Jobs waiting.\n# TYPE queue_depth gauge\nqueue_depth 3.0\n"
    /// );
    /// # Ok::<(), beluga_metrics::RegistryError>(())
    /// ```
    pub fn encode(&self, format: Format) -> String {
        let mut encoder = Encoder::new();
        let bytes = encoder.encode(self, format);
        String::from_utf8(bytes.to_vec()).expect("the encoder writes UTF-8")
    }
}
