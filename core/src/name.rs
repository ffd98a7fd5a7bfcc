//! Prometheus naming rules, checked once at registration.

/// The label of a family's cardinality-overflow series
/// (`otel_metric_overflow="true"`), named as OpenTelemetry names it. The
/// engine writes it itself, so users may not register it; exporters that
/// rename labels (OTLP's `otel.metric.overflow`) match on it.
///
/// ```
/// assert_eq!(beluga_metrics::OVERFLOW_LABEL, "otel_metric_overflow");
/// ```
pub const OVERFLOW_LABEL: &str = "otel_metric_overflow";

/// The longest metric or label name accepted, in bytes.
///
/// ```
/// assert_eq!(beluga_metrics::MAX_NAME_BYTES, 255);
/// ```
pub const MAX_NAME_BYTES: usize = 255;

/// The longest label value accepted, in bytes. A longer value gets
/// [`LabelError::ValueTooLong`](crate::LabelError::ValueTooLong) and is
/// counted in `beluga_invalid_values_total`: label values name things, and
/// each distinct one is kept (twice: raw and escaped) for the life of its
/// series.
///
/// ```
/// assert_eq!(beluga_metrics::MAX_LABEL_VALUE_BYTES, 1024);
/// ```
pub const MAX_LABEL_VALUE_BYTES: usize = 1024;

/// `Ok` if `name` is a valid metric name for this library, else the rule it breaks.
pub(crate) fn check_metric_name(name: &str) -> Result<(), &'static str> {
    if name.len() > MAX_NAME_BYTES {
        return Err("it is longer than 255 bytes");
    }
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("it is empty"),
        Some(c) if c.is_ascii_digit() => return Err("it starts with a digit"),
        _ => {}
    }
    if name.contains(':') {
        return Err("colons are reserved for recording rules");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err("it contains a character other than [a-zA-Z0-9_]");
    }
    if name.starts_with("__") {
        return Err("names starting with \"__\" are reserved for Prometheus");
    }
    Ok(())
}

/// `Ok` if `label` is a valid label name on a metric of this kind.
pub(crate) fn check_label_name(label: &str, is_histogram: bool) -> Result<(), &'static str> {
    if label.len() > MAX_NAME_BYTES {
        return Err("it is longer than 255 bytes");
    }
    let mut chars = label.chars();
    match chars.next() {
        None => return Err("it is empty"),
        Some(c) if c.is_ascii_digit() => return Err("it starts with a digit"),
        _ => {}
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err("it contains a character other than [a-zA-Z0-9_]");
    }
    if label.starts_with("__") {
        return Err("names starting with \"__\" are reserved for Prometheus");
    }
    if label == "le" && is_histogram {
        return Err("\"le\" is reserved for histogram bucket boundaries");
    }
    if label == "quantile" {
        return Err("\"quantile\" is reserved for summary quantiles");
    }
    if label == OVERFLOW_LABEL {
        return Err("\"otel_metric_overflow\" marks the cardinality-overflow series");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn metric_names() {
        assert!(check_metric_name("agent_llm_calls_total").is_ok());
        assert!(check_metric_name("_private").is_ok());
        for bad in ["", "1x", "a-b", "a b", "é", "__x", "a:b"] {
            assert!(check_metric_name(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn label_names() {
        assert!(check_label_name("model", true).is_ok());
        assert!(check_label_name("le", false).is_ok());
        for bad in ["", "0a", "a.b", "__name__", "quantile", OVERFLOW_LABEL] {
            assert!(
                check_label_name(bad, false).is_err(),
                "{bad:?} should be refused"
            );
        }
        assert!(check_label_name("le", true).is_err());
    }
}
