//! Turning `metrics` key names and label keys into Prometheus names.
//!
//! The `metrics` macros accept any string (`"http.requests"`,
//! `"db-query time"`); Prometheus names do not. Like
//! `metrics-exporter-prometheus`, every character outside the allowed set
//! becomes `_`, so `http.requests` is exposed as `http_requests`. Nothing
//! else is renamed: no unit suffix or `_total` is appended here (the
//! engine exposes a counter `x` as `x_total`, as OpenMetrics requires).

use std::borrow::Cow;

/// A metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub(crate) fn metric_name(name: &str) -> Cow<'_, str> {
    sanitize(name, |i, c| {
        c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
    })
}

/// A label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn label_name(name: &str) -> Cow<'_, str> {
    sanitize(name, |i, c| {
        c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit())
    })
}

fn sanitize(name: &str, allowed: impl Fn(usize, char) -> bool) -> Cow<'_, str> {
    if !name.is_empty() && name.chars().enumerate().all(|(i, c)| allowed(i, c)) {
        return Cow::Borrowed(name);
    }
    if name.is_empty() {
        return Cow::Borrowed("_");
    }
    Cow::Owned(
        name.chars()
            .enumerate()
            .map(|(i, c)| if allowed(i, c) { c } else { '_' })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_are_borrowed_unchanged() {
        assert!(matches!(
            metric_name("http_requests:rate5m"),
            Cow::Borrowed("http_requests:rate5m")
        ));
        assert!(matches!(
            label_name("status_code"),
            Cow::Borrowed("status_code")
        ));
    }

    #[test]
    fn every_invalid_character_becomes_an_underscore() {
        assert_eq!(metric_name("http.requests-total"), "http_requests_total");
        assert_eq!(metric_name("5xx"), "_xx");
        assert_eq!(metric_name("latency µs"), "latency__s");
        assert_eq!(label_name("le:x"), "le_x");
        assert_eq!(label_name("0day"), "_day");
        assert_eq!(metric_name(""), "_");
    }
}
