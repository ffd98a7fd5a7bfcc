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
