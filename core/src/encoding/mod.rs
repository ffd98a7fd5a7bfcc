//! Prometheus text 0.0.4, OpenMetrics 1.0 and the Prometheus protobuf
//! exposition (with native histograms), written by hand.
//!
//! Output order is deterministic: families sorted by name, series in the
//! order they were created, the overflow series last in its family, then the
//! registry's self-metrics. Every family appears once with all its series
//! together; label values and help text are escaped losslessly.

mod negotiate;
mod protobuf;
mod text;

use crate::histogram::{ExponentialScale, HistogramValue};
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

/// Everything `/metrics` can serve: the two text [`Format`]s and the
/// Prometheus protobuf exposition (delimited `io.prometheus.client.MetricFamily`
/// messages), which alone carries native histograms.
///
/// ```
/// use beluga_metrics::Exposition;
/// // What Prometheus 2.42 sends with `--enable-feature=native-histograms`:
/// let accept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
///               encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
/// assert_eq!(Exposition::from_accept(Some(accept)), Exposition::Protobuf);
/// assert_eq!(Exposition::from_accept(None), Exposition::PrometheusText);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exposition {
    /// Prometheus text format 0.0.4.
    PrometheusText,
    /// OpenMetrics 1.0.0 text format.
    OpenMetrics,
    /// The Prometheus protobuf format, length-delimited.
    Protobuf,
}

impl Exposition {
    /// The exact `Content-Type` of the delimited protobuf exposition.
    pub const PROTOBUF_CONTENT_TYPE: &'static str =
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

    /// Picks what a scraper prefers from its `Accept` header, as
    /// [`Format::from_accept`] does, with the protobuf exposition chosen
    /// only when asked for with `proto=io.prometheus.client.MetricFamily`
    /// and `encoding=delimited`.
    pub fn from_accept(accept: Option<&str>) -> Exposition {
        negotiate::exposition_from_accept(accept)
    }

    /// The `Content-Type` header value.
    ///
    /// ```
    /// use beluga_metrics::{Exposition, Format};
    /// assert_eq!(Exposition::from(Format::OpenMetrics).content_type(), Format::OpenMetrics.content_type());
    /// ```
    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::PrometheusText => Format::PrometheusText.content_type(),
            Exposition::OpenMetrics => Format::OpenMetrics.content_type(),
            Exposition::Protobuf => Self::PROTOBUF_CONTENT_TYPE,
        }
    }

    /// The text format, if this is one.
    pub fn text_format(self) -> Option<Format> {
        match self {
            Exposition::PrometheusText => Some(Format::PrometheusText),
            Exposition::OpenMetrics => Some(Format::OpenMetrics),
            Exposition::Protobuf => None,
        }
    }
}

impl From<Format> for Exposition {
    fn from(format: Format) -> Exposition {
        match format {
            Format::PrometheusText => Exposition::PrometheusText,
            Format::OpenMetrics => Exposition::OpenMetrics,
        }
    }
}

/// The native-histogram schema the protobuf exposition uses unless
/// [`Encoder::native_histograms`] says otherwise: buckets 2^(1/8) wide
/// (9.05 %), about 80 of them for values spanning 1 ms to 1 s.
pub const DEFAULT_NATIVE_SCHEMA: i8 = 3;

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
    protobuf: protobuf::ProtobufBuffers,
    native_schema: Option<i8>,
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
            protobuf: protobuf::ProtobufBuffers::default(),
            native_schema: Some(DEFAULT_NATIVE_SCHEMA),
        }
    }

    /// The schema of the native histograms the protobuf exposition carries
    /// next to each histogram's classic buckets (-4 to 8; default
    /// [`DEFAULT_NATIVE_SCHEMA`]), or `None` for classic buckets only. The
    /// text formats never carry native histograms.
    ///
    /// ```
    /// use beluga_metrics::{Buckets, Encoder, Exposition, Opts, Registry};
    /// let registry = Registry::new();
    /// registry.histogram(Opts::new("step", "Steps."), Buckets::default())?.record(0.2);
    /// let mut encoder = Encoder::new().native_histograms(Some(5));
    /// let bytes = encoder.encode_exposition(&registry, Exposition::Protobuf);
    /// // Length-delimited MetricFamily messages: a varint length, then the
    /// // message, whose field 1 is the name.
    /// let (mut at, mut names) = (0, Vec::new());
    /// while at < bytes.len() {
    ///     let (mut len, mut shift) = (0usize, 0);
    ///     while bytes[at] & 0x80 != 0 {
    ///         len |= usize::from(bytes[at] & 0x7f) << shift;
    ///         (at, shift) = (at + 1, shift + 7);
    ///     }
    ///     len |= usize::from(bytes[at]) << shift;
    ///     let message = &bytes[at + 1..at + 1 + len];
    ///     names.push(String::from_utf8(message[2..2 + usize::from(message[1])].to_vec())?);
    ///     at += 1 + len;
    /// }
    /// assert_eq!(names, ["step", "beluga_invalid_values_total"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn native_histograms(mut self, schema: Option<i8>) -> Encoder {
        self.native_schema = schema.map(|s| s.clamp(-4, 8));
        self
    }

    /// Encodes `registry` in any [`Exposition`]; the bytes stay valid until
    /// the next call. Text formats are UTF-8; the protobuf exposition is
    /// binary.
    pub fn encode_exposition(&mut self, registry: &Registry, exposition: Exposition) -> &[u8] {
        match exposition.text_format() {
            Some(format) => self.encode(registry, format),
            None => {
                self.buffer.clear();
                let native = self.native_schema.map(ExponentialScale::fixed);
                let mut writer =
                    protobuf::ProtobufWriter::new(&mut self.buffer, &mut self.protobuf, native);
                registry.visit_with(&mut writer, &mut self.scratch);
                writer.finish();
                &self.buffer
            }
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
