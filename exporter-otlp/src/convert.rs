//! Registry -> OTLP `ExportMetricsServiceRequest`, through the core's
//! visitor API (the same data the Prometheus encoder reads; no text parsing).

use std::collections::HashMap;

use beluga_metrics::{
    Descriptor, ExemplarValue, ExponentialBuckets, ExponentialScale, HistogramValue, Labels,
    MetricType, Registry, Value, Visitor, OVERFLOW_LABEL,
};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, exponential_histogram_data_point, metric, number_data_point, AggregationTemporality,
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::config::{HistogramAggregation, Temporality};

/// The attribute OpenTelemetry uses for the cardinality-overflow series
/// (the core labels it [`OVERFLOW_LABEL`]).
const OVERFLOW_ATTRIBUTE: &str = "otel.metric.overflow";

pub(crate) fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// What a series had reached in the last successful export (for deltas).
#[derive(Debug, Clone, PartialEq)]
enum Sent {
    Int(u64),
    Float(f64),
    Histogram {
        counts: Vec<u64>,
        sum: f64,
    },
    Exponential {
        buckets: ExponentialBuckets,
        sum: f64,
    },
}

/// Which histograms go as OTLP exponential histograms.
pub(crate) struct Histograms {
    pub(crate) default: HistogramAggregation,
    pub(crate) by_name: HashMap<String, HistogramAggregation>,
    /// Histograms also sent as an exponential histogram under another name:
    /// family name -> (copy's name, its limits).
    pub(crate) exponential_copies: HashMap<String, (String, ExponentialScale)>,
}

impl Histograms {
    fn for_family(&self, name: &str) -> HistogramAggregation {
        self.by_name.get(name).copied().unwrap_or(self.default)
    }

    /// The finest scale any exponential instrument wants: the walk reads
    /// exponential buckets at it, and each instrument coarsens its copy.
    fn finest(&self) -> Option<ExponentialScale> {
        std::iter::once(&self.default)
            .chain(self.by_name.values())
            .filter_map(|a| match a {
                HistogramAggregation::Base2Exponential { max_scale, .. } => Some(*max_scale),
                HistogramAggregation::ExplicitBucket => None,
            })
            .chain(
                self.exponential_copies
                    .values()
                    .map(|(_, want)| want.max_scale),
            )
            .max()
            .map(ExponentialScale::fixed)
    }
}

type SeriesKey = (String, Vec<String>);

/// One export's request, plus what committing it would record.
pub(crate) struct Batch {
    pub(crate) request: ExportMetricsServiceRequest,
    sent: HashMap<SeriesKey, Sent>,
    time: u64,
}

pub(crate) struct Converter {
    resource: Resource,
    scope: InstrumentationScope,
    temporality: Temporality,
    /// Cumulative start: when the exporter was created.
    start_time: u64,
    /// Delta start: the time of the last successful export.
    last_success: u64,
    last_sent: HashMap<SeriesKey, Sent>,
    histograms: Histograms,
}

pub(crate) fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Converter {
    pub(crate) fn new(
        resource: Vec<KeyValue>,
        temporality: Temporality,
        histograms: Histograms,
    ) -> Converter {
        let start = now_nanos();
        Converter {
            resource: Resource {
                attributes: resource,
                ..Default::default()
            },
            scope: InstrumentationScope {
                name: "beluga-metrics".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            },
            temporality,
            start_time: start,
            last_success: start,
            last_sent: HashMap::new(),
            histograms,
        }
    }

    /// Reads the registry into a request.
    pub(crate) fn collect(&self, registry: &Registry) -> Batch {
        let mut builder = RequestBuilder {
            converter: self,
            time: now_nanos(),
            metrics: Vec::new(),
            sent: HashMap::new(),
            current: 0,
            current_copy: None,
        };
        registry.visit(&mut builder);
        let RequestBuilder {
            metrics,
            sent,
            time,
            ..
        } = builder;
        let metrics: Vec<Metric> = metrics.into_iter().filter(has_points).collect();
        Batch {
            request: ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics {
                    resource: Some(self.resource.clone()),
                    scope_metrics: vec![ScopeMetrics {
                        scope: Some(self.scope.clone()),
                        metrics,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            },
            sent,
            time,
        }
    }

    /// Records that `batch` was delivered: deltas now start from it.
    pub(crate) fn commit(&mut self, batch: Batch) {
        self.last_sent = batch.sent;
        self.last_success = batch.time;
    }
}

fn has_points(metric: &Metric) -> bool {
    match &metric.data {
        Some(metric::Data::Sum(s)) => !s.data_points.is_empty(),
        Some(metric::Data::Gauge(g)) => !g.data_points.is_empty(),
        Some(metric::Data::Histogram(h)) => !h.data_points.is_empty(),
        Some(metric::Data::ExponentialHistogram(h)) => !h.data_points.is_empty(),
        _ => false,
    }
}

struct RequestBuilder<'a> {
    converter: &'a Converter,
    time: u64,
    metrics: Vec<Metric>,
    sent: HashMap<SeriesKey, Sent>,
    /// Where the current family's points go, and its exponential copy's.
    current: usize,
    current_copy: Option<(usize, ExponentialScale)>,
}

impl RequestBuilder<'_> {
    fn temporality(&self) -> i32 {
        match self.converter.temporality {
            Temporality::Cumulative => AggregationTemporality::Cumulative as i32,
            Temporality::Delta => AggregationTemporality::Delta as i32,
        }
    }

    fn start_time(&self) -> u64 {
        match self.converter.temporality {
            Temporality::Cumulative => self.converter.start_time,
            Temporality::Delta => self.converter.last_success,
        }
    }

    fn previous(&self, key: &SeriesKey) -> Option<&Sent> {
        match self.converter.temporality {
            Temporality::Cumulative => None,
            Temporality::Delta => self.converter.last_sent.get(key),
        }
    }
}

/// An OTLP exemplar: trace and span ids as bytes, extra labels as filtered
/// attributes.
fn otlp_exemplar(e: &ExemplarValue) -> Exemplar {
    Exemplar {
        filtered_attributes: e.labels().map(|(k, v)| string_attribute(k, v)).collect(),
        time_unix_nano: e.timestamp_nanos(),
        span_id: e.span_id().to_vec(),
        trace_id: e.trace_id().to_vec(),
        value: Some(exemplar::Value::AsDouble(e.value())),
    }
}

fn attributes(labels: Labels<'_>) -> Vec<KeyValue> {
    labels
        .iter()
        .map(|(name, value)| {
            if name == OVERFLOW_LABEL {
                KeyValue {
                    key: OVERFLOW_ATTRIBUTE.into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::BoolValue(value == "true")),
                    }),
                    ..Default::default()
                }
            } else {
                string_attribute(name, value)
            }
        })
        .collect()
}

impl Visitor for RequestBuilder<'_> {
    fn exponential_buckets(&self) -> Option<ExponentialScale> {
        self.converter.histograms.finest()
    }

    fn wants_exemplars(&self) -> bool {
        true
    }

    /// The point as [`series`](Self::series) makes it, with the latest of
    /// the series' exemplars (of any bucket); for delta points, only one
    /// observed in the point's window.
    fn series_with_exemplars(
        &mut self,
        family: &Descriptor,
        labels: Labels<'_>,
        value: Value<'_>,
        exemplars: &[Option<ExemplarValue>],
    ) {
        self.series(family, labels, value);
        // A delta point holds only its window's observations, so only its
        // window's exemplars; a cumulative point holds everything.
        let start = match self.converter.temporality {
            Temporality::Delta => self.start_time(),
            Temporality::Cumulative => 0,
        };
        let Some(latest) = exemplars
            .iter()
            .flatten()
            .filter(|e| e.timestamp_nanos() >= start)
            .max_by_key(|e| e.timestamp_nanos())
        else {
            return;
        };
        let exemplar = otlp_exemplar(latest);
        if let Some((copy, _)) = self.current_copy {
            if let Some(metric::Data::ExponentialHistogram(h)) =
                self.metrics.get_mut(copy).and_then(|m| m.data.as_mut())
            {
                if let Some(p) = h.data_points.last_mut() {
                    p.exemplars.push(exemplar.clone());
                }
            }
        }
        match self
            .metrics
            .get_mut(self.current)
            .and_then(|m| m.data.as_mut())
        {
            Some(metric::Data::Sum(sum)) => {
                if let Some(p) = sum.data_points.last_mut() {
                    p.exemplars.push(exemplar);
                }
            }
            Some(metric::Data::Histogram(h)) => {
                if let Some(p) = h.data_points.last_mut() {
                    p.exemplars.push(exemplar);
                }
            }
            Some(metric::Data::ExponentialHistogram(h)) => {
                if let Some(p) = h.data_points.last_mut() {
                    p.exemplars.push(exemplar);
                }
            }
            _ => {}
        }
    }

    fn family(&mut self, family: &Descriptor) {
        let temporality = self.temporality();
        let data = match family.metric_type() {
            MetricType::Counter => metric::Data::Sum(Sum {
                data_points: Vec::new(),
                aggregation_temporality: temporality,
                is_monotonic: true,
            }),
            MetricType::Gauge => metric::Data::Gauge(Gauge::default()),
            MetricType::Histogram => match self.converter.histograms.for_family(family.name()) {
                HistogramAggregation::ExplicitBucket => metric::Data::Histogram(Histogram {
                    data_points: Vec::new(),
                    aggregation_temporality: temporality,
                }),
                HistogramAggregation::Base2Exponential { .. } => {
                    metric::Data::ExponentialHistogram(ExponentialHistogram {
                        data_points: Vec::new(),
                        aggregation_temporality: temporality,
                    })
                }
            },
        };
        self.current = self.metrics.len();
        self.metrics.push(Metric {
            name: family.name().to_string(),
            description: family.help().to_string(),
            unit: family.unit().ucum().to_string(),
            data: Some(data),
            ..Default::default()
        });
        self.current_copy = None;
        if family.metric_type() == MetricType::Histogram {
            if let Some((name, want)) = self
                .converter
                .histograms
                .exponential_copies
                .get(family.name())
            {
                self.current_copy = Some((self.metrics.len(), *want));
                self.metrics.push(Metric {
                    name: name.clone(),
                    description: family.help().to_string(),
                    unit: family.unit().ucum().to_string(),
                    data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                        data_points: Vec::new(),
                        aggregation_temporality: temporality,
                    })),
                    ..Default::default()
                });
            }
        }
    }

    fn series(&mut self, family: &Descriptor, labels: Labels<'_>, value: Value<'_>) {
        let key: SeriesKey = (
            family.name().to_string(),
            labels.iter().map(|(n, v)| format!("{n}={v}")).collect(),
        );
        let (start, time) = (self.start_time(), self.time);
        let point = |value| NumberDataPoint {
            attributes: attributes(labels),
            start_time_unix_nano: start,
            time_unix_nano: time,
            value: Some(value),
            ..Default::default()
        };
        let data_point = match value {
            Value::Counter(total) => {
                let delta = match self.previous(&key) {
                    Some(Sent::Int(before)) if *before <= total => total - before,
                    _ => total,
                };
                self.sent.insert(key, Sent::Int(total));
                DataPoint::Number(point(number_data_point::Value::AsInt(
                    i64::try_from(delta).unwrap_or(i64::MAX),
                )))
            }
            Value::FloatCounter(total) => {
                let delta = match self.previous(&key) {
                    Some(Sent::Float(before)) if *before <= total => total - before,
                    _ => total,
                };
                self.sent.insert(key, Sent::Float(total));
                DataPoint::Number(point(number_data_point::Value::AsDouble(delta)))
            }
            Value::Gauge(v) => DataPoint::Number(NumberDataPoint {
                start_time_unix_nano: 0,
                ..point(number_data_point::Value::AsDouble(v))
            }),
            Value::Histogram(h) => {
                if let Some((copy, want)) = self.current_copy {
                    let copy_key = (format!("{}#exponential", key.0), key.1.clone());
                    let (data_point, sent) = self.exponential_point(&copy_key, labels, h, want);
                    self.sent.insert(copy_key, sent);
                    if let Some(metric::Data::ExponentialHistogram(hist)) =
                        self.metrics.get_mut(copy).and_then(|m| m.data.as_mut())
                    {
                        hist.data_points.push(data_point);
                    }
                }
                match self.converter.histograms.for_family(family.name()) {
                    HistogramAggregation::Base2Exponential {
                        max_size,
                        max_scale,
                    } => {
                        let want = ExponentialScale {
                            max_scale,
                            max_buckets: max_size,
                        };
                        let (data_point, sent) = self.exponential_point(&key, labels, h, want);
                        self.sent.insert(key, sent);
                        DataPoint::Exponential(data_point)
                    }
                    HistogramAggregation::ExplicitBucket => {
                        let data_point = self.histogram_point(&key, labels, h);
                        self.sent.insert(
                            key,
                            Sent::Histogram {
                                counts: h.bucket_counts().to_vec(),
                                sum: h.sum(),
                            },
                        );
                        DataPoint::Histogram(data_point)
                    }
                }
            }
        };
        match (
            self.metrics
                .get_mut(self.current)
                .and_then(|m| m.data.as_mut()),
            data_point,
        ) {
            (Some(metric::Data::Sum(sum)), DataPoint::Number(p)) => sum.data_points.push(p),
            (Some(metric::Data::Gauge(gauge)), DataPoint::Number(p)) => gauge.data_points.push(p),
            (Some(metric::Data::Histogram(hist)), DataPoint::Histogram(p)) => {
                hist.data_points.push(p)
            }
            (Some(metric::Data::ExponentialHistogram(hist)), DataPoint::Exponential(p)) => {
                hist.data_points.push(p)
            }
            _ => {}
        }
    }
}

enum DataPoint {
    Number(NumberDataPoint),
    Histogram(HistogramDataPoint),
    Exponential(ExponentialHistogramDataPoint),
}

impl RequestBuilder<'_> {
    fn histogram_point(
        &self,
        key: &SeriesKey,
        labels: Labels<'_>,
        h: &HistogramValue,
    ) -> HistogramDataPoint {
        let (counts, sum, with_min_max) = match self.previous(key) {
            Some(Sent::Histogram { counts, sum })
                if counts.len() == h.bucket_counts().len()
                    && counts.iter().zip(h.bucket_counts()).all(|(a, b)| a <= b) =>
            {
                let diff: Vec<u64> = h
                    .bucket_counts()
                    .iter()
                    .zip(counts)
                    .map(|(now, before)| now - before)
                    .collect();
                (diff, h.sum() - sum, false)
            }
            // Cumulative, or a delta series seen for the first time.
            _ => (
                h.bucket_counts().to_vec(),
                h.sum(),
                self.converter.temporality == Temporality::Cumulative,
            ),
        };
        let count = counts.iter().sum();
        HistogramDataPoint {
            attributes: attributes(labels),
            start_time_unix_nano: self.start_time(),
            time_unix_nano: self.time,
            count,
            sum: Some(sum),
            bucket_counts: counts,
            explicit_bounds: h.bounds().to_vec(),
            // Min and max describe all observations since the start, so
            // they only go with cumulative points.
            min: if with_min_max { h.min() } else { None },
            max: if with_min_max { h.max() } else { None },
            ..Default::default()
        }
    }
}

impl RequestBuilder<'_> {
    /// An OTLP exponential data point from the walk's exponential buckets,
    /// coarsened to the instrument's limits; for delta temporality, minus
    /// what was last delivered (brought to the same scale first: scales only
    /// go down as a cumulative range widens).
    fn exponential_point(
        &self,
        key: &SeriesKey,
        labels: Labels<'_>,
        h: &HistogramValue,
        want: ExponentialScale,
    ) -> (ExponentialHistogramDataPoint, Sent) {
        let now = h
            .exponential()
            .map_or_else(ExponentialBuckets::default, |e| e.coarsened(want));
        let sent = Sent::Exponential {
            buckets: now.clone(),
            sum: h.sum(),
        };
        let delta = match self.previous(key) {
            Some(Sent::Exponential { buckets, sum }) if buckets.scale() >= now.scale() => {
                let before = buckets.coarsened(ExponentialScale::fixed(now.scale() as i8));
                subtract(&now, &before).map(|counts| (counts, before.zero_count(), h.sum() - sum))
            }
            _ => None,
        };
        let with_min_max = delta.is_none() && self.converter.temporality == Temporality::Cumulative;
        let (counts, zero_count, sum) = match delta {
            Some((counts, zero_before, sum)) => (counts, now.zero_count() - zero_before, sum),
            None => (now.counts().to_vec(), now.zero_count(), h.sum()),
        };
        let count = counts.iter().sum::<u64>() + zero_count;
        let point = ExponentialHistogramDataPoint {
            attributes: attributes(labels),
            start_time_unix_nano: self.start_time(),
            time_unix_nano: self.time,
            count,
            sum: Some(sum),
            scale: now.scale(),
            zero_count,
            zero_threshold: now.zero_threshold(),
            positive: Some(exponential_histogram_data_point::Buckets {
                offset: now.offset(),
                bucket_counts: counts,
            }),
            min: if with_min_max { h.min() } else { None },
            max: if with_min_max { h.max() } else { None },
            ..Default::default()
        };
        (point, sent)
    }
}

/// `now - before`, bucket by bucket, both at the same scale; `None` if any
/// bucket of `before` exceeds `now`'s (a reset), so the caller sends `now`
/// whole.
fn subtract(now: &ExponentialBuckets, before: &ExponentialBuckets) -> Option<Vec<u64>> {
    if before.zero_count() > now.zero_count() {
        return None;
    }
    let mut counts = now.counts().to_vec();
    for (index, count) in before.buckets() {
        let at = usize::try_from(index - now.offset()).ok()?;
        let slot = counts.get_mut(at)?;
        *slot = slot.checked_sub(count)?;
    }
    Some(counts)
}
