//! Configuration: builder values first, then the standard `OTEL_*`
//! environment variables, then the defaults of the OTLP specification.

use std::time::Duration;

/// Compression of request bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// No compression.
    None,
    /// `Content-Encoding: gzip`.
    Gzip,
}

/// How sums and histograms accumulate between exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Temporality {
    /// Totals since the exporter started (the default, and what Prometheus
    /// expects): a failed export is simply superseded by the next one.
    Cumulative,
    /// Changes since the last *successful* export: what was not delivered is
    /// carried into the next attempt.
    Delta,
}

/// The OTLP transport, as `OTEL_EXPORTER_OTLP_PROTOCOL` names it.
///
/// ```
/// use beluga_exporter_otlp::Protocol;
/// assert_ne!(Protocol::Grpc, Protocol::HttpProtobuf);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `http/protobuf`: `POST {endpoint}/v1/metrics` with a protobuf body
    /// (the default; port 4318).
    HttpProtobuf,
    /// `grpc`: the `opentelemetry.proto.collector.metrics.v1.MetricsService/Export`
    /// call over HTTP/2 (port 4317).
    Grpc,
}

/// `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`:
/// `Ok(None)` when unset, an error for `http/json` (not supported) or
/// anything else unknown.
pub(crate) fn protocol_from_env(env: EnvSource<'_>) -> Result<Option<Protocol>, String> {
    for key in [
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        let Some(value) = env(key).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        return match value.trim() {
            "grpc" => Ok(Some(Protocol::Grpc)),
            "http/protobuf" => Ok(Some(Protocol::HttpProtobuf)),
            other => Err(format!(
                "{key}={other:?}: expected grpc or http/protobuf (http/json is not supported)"
            )),
        };
    }
    Ok(None)
}

/// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`: `Ok(None)` when
/// unset; `lowmemory` is delta for the synchronous counters and histograms
/// beluga has (and cumulative only for up-down counters, which it has not).
pub(crate) fn temporality_from_env(env: EnvSource<'_>) -> Result<Option<Temporality>, String> {
    const KEY: &str = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE";
    let Some(value) = env(KEY).filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "cumulative" => Ok(Some(Temporality::Cumulative)),
        "delta" | "lowmemory" => Ok(Some(Temporality::Delta)),
        other => Err(format!(
            "{KEY}={other:?}: expected cumulative, delta or lowmemory"
        )),
    }
}

/// `OTEL_SDK_DISABLED=true` (case-insensitive): the OpenTelemetry switch
/// that turns exporting off without a rebuild.
pub(crate) fn sdk_disabled(env: EnvSource<'_>) -> bool {
    env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The gRPC endpoint from `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` or
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (both as is), else the default.
pub(crate) fn grpc_endpoint_from_env(env: EnvSource<'_>) -> String {
    env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        .filter(|s| !s.is_empty())
        .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "http://localhost:4317".to_string())
}

/// How histograms are sent, as OpenTelemetry SDKs name the choice
/// (`OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`).
///
/// ```
/// use beluga_exporter_otlp::HistogramAggregation;
/// assert_eq!(
///     HistogramAggregation::base2_exponential(),
///     HistogramAggregation::Base2Exponential { max_size: 160, max_scale: 20 }
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistogramAggregation {
    /// An OTLP `Histogram` with the instrument's own bucket boundaries (the
    /// default, `explicit_bucket_histogram`).
    ExplicitBucket,
    /// An OTLP `ExponentialHistogram` (`base2_exponential_bucket_histogram`):
    /// base-2 buckets derived from the engine's HDR counts, at the finest
    /// scale (at most `max_scale`, and at most 8, the HDR counts' own
    /// resolution) whose populated range fits `max_size` buckets.
    Base2Exponential {
        /// The most positive buckets per data point (OpenTelemetry default 160).
        max_size: usize,
        /// The finest scale (OpenTelemetry default 20; the HDR counts
        /// resolve values to 1/128, so scales above 8 add nothing).
        max_scale: i8,
    },
}

impl HistogramAggregation {
    /// Base-2 exponential with OpenTelemetry's defaults (160 buckets, scale
    /// at most 20).
    pub const fn base2_exponential() -> HistogramAggregation {
        HistogramAggregation::Base2Exponential {
            max_size: 160,
            max_scale: 20,
        }
    }
}

/// `OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`: `Ok(None)`
/// when unset, an error naming the value when it is neither standard value.
pub(crate) fn histogram_aggregation_from_env(
    env: EnvSource<'_>,
) -> Result<Option<HistogramAggregation>, String> {
    const KEY: &str = "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION";
    let Some(value) = env(KEY) else {
        return Ok(None);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "explicit_bucket_histogram" => Ok(Some(HistogramAggregation::ExplicitBucket)),
        "base2_exponential_bucket_histogram" => Ok(Some(HistogramAggregation::base2_exponential())),
        _ => Err(format!(
            "{KEY}={value:?}: expected explicit_bucket_histogram or base2_exponential_bucket_histogram"
        )),
    }
}

/// Where the exporter's settings come from, so tests can feed their own.
pub(crate) type EnvSource<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Decodes `%XX` escapes (the OTel spec percent-encodes header and
/// resource-attribute values).
fn percent_decode(text: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `key1=value1,key2=value2` (values percent-decoded); malformed
/// entries are skipped, as the specification asks.
pub(crate) fn parse_pairs(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (percent_decode(k), percent_decode(v.trim())))
        })
        .collect()
}

/// Milliseconds from an environment variable.
pub(crate) fn millis(env: EnvSource<'_>, key: &str) -> Option<Duration> {
    env(key)?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_millis)
}

/// The metrics URL from `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (as is) or
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (+ `/v1/metrics`), else the default.
pub(crate) fn endpoint_from_env(env: EnvSource<'_>) -> String {
    if let Some(url) = env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").filter(|s| !s.is_empty()) {
        return url;
    }
    let base = env("OTEL_EXPORTER_OTLP_ENDPOINT")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "http://localhost:4318".to_string());
    format!("{}/v1/metrics", base.trim_end_matches('/'))
}

pub(crate) fn compression_from_env(env: EnvSource<'_>) -> Option<Compression> {
    let value = env("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION")
        .or_else(|| env("OTEL_EXPORTER_OTLP_COMPRESSION"))?;
    match value.trim().to_ascii_lowercase().as_str() {
        "gzip" => Some(Compression::Gzip),
        "none" | "" => Some(Compression::None),
        _ => None,
    }
}

pub(crate) fn headers_from_env(env: EnvSource<'_>) -> Vec<(String, String)> {
    let mut headers = env("OTEL_EXPORTER_OTLP_HEADERS")
        .map(|h| parse_pairs(&h))
        .unwrap_or_default();
    // Signal-specific headers override generic ones with the same name.
    for (k, v) in env("OTEL_EXPORTER_OTLP_METRICS_HEADERS")
        .map(|h| parse_pairs(&h))
        .unwrap_or_default()
    {
        headers.retain(|(existing, _)| !existing.eq_ignore_ascii_case(&k));
        headers.push((k, v));
    }
    headers
}

pub(crate) fn timeout_from_env(env: EnvSource<'_>) -> Option<Duration> {
    millis(env, "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT")
        .or_else(|| millis(env, "OTEL_EXPORTER_OTLP_TIMEOUT"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |key| map.get(key).cloned()
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            endpoint_from_env(&env(&[])),
            "http://localhost:4318/v1/metrics"
        );
        assert_eq!(
            endpoint_from_env(&env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")])),
            "http://c:4318/v1/metrics"
        );
        assert_eq!(
            endpoint_from_env(&env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:1/custom")
            ])),
            "http://m:1/custom"
        );
    }

    #[test]
    fn temporality_and_disabled() {
        let key = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE";
        assert_eq!(temporality_from_env(&env(&[])), Ok(None));
        assert_eq!(
            temporality_from_env(&env(&[(key, "Delta")])),
            Ok(Some(Temporality::Delta))
        );
        assert_eq!(
            temporality_from_env(&env(&[(key, "lowmemory")])),
            Ok(Some(Temporality::Delta))
        );
        assert_eq!(
            temporality_from_env(&env(&[(key, "cumulative")])),
            Ok(Some(Temporality::Cumulative))
        );
        assert!(temporality_from_env(&env(&[(key, "sometimes")])).is_err());
        assert!(sdk_disabled(&env(&[("OTEL_SDK_DISABLED", "TRUE")])));
        assert!(!sdk_disabled(&env(&[("OTEL_SDK_DISABLED", "false")])));
        assert!(!sdk_disabled(&env(&[])));
    }

    #[test]
    fn protocols() {
        assert_eq!(protocol_from_env(&env(&[])), Ok(None));
        assert_eq!(
            protocol_from_env(&env(&[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc")
            ])),
            Ok(Some(Protocol::Grpc))
        );
        assert!(protocol_from_env(&env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")])).is_err());
        assert_eq!(grpc_endpoint_from_env(&env(&[])), "http://localhost:4317");
        assert_eq!(
            grpc_endpoint_from_env(&env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")])),
            "http://c:4317"
        );
    }

    #[test]
    fn histogram_aggregation() {
        assert_eq!(histogram_aggregation_from_env(&env(&[])), Ok(None));
        assert_eq!(
            histogram_aggregation_from_env(&env(&[(
                "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
                "BASE2_exponential_bucket_histogram"
            )])),
            Ok(Some(HistogramAggregation::base2_exponential()))
        );
        assert!(histogram_aggregation_from_env(&env(&[(
            "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
            "sparse"
        )]))
        .is_err());
    }

    #[test]
    fn pairs_headers_and_numbers() {
        assert_eq!(
            parse_pairs("api-key=a%20b, tenant = x ,broken,=novalue"),
            vec![
                ("api-key".into(), "a b".into()),
                ("tenant".into(), "x".into())
            ]
        );
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=1,b=2"),
            ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "B=3"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "GZIP"),
        ]);
        assert_eq!(
            headers_from_env(&e),
            vec![("a".into(), "1".into()), ("B".into(), "3".into())]
        );
        assert_eq!(timeout_from_env(&e), Some(Duration::from_millis(2500)));
        assert_eq!(compression_from_env(&e), Some(Compression::Gzip));
        assert_eq!(percent_decode("100%"), "100%");
    }
}
