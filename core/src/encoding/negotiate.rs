//! `Accept` header parsing for format negotiation.

use super::Format;

/// One media range of an `Accept` header that we can serve.
fn offer(range: &str) -> Option<(Format, f32)> {
    let mut parts = range.split(';').map(str::trim);
    let media = parts.next()?.to_ascii_lowercase();
    let mut quality = 1.0f32;
    let mut version = None;
    for param in parts {
        let (key, value) = param.split_once('=')?;
        let value = value.trim().trim_matches('"');
        match key.trim().to_ascii_lowercase().as_str() {
            "q" => {
                quality = value
                    .parse()
                    .ok()
                    .filter(|q: &f32| (0.0..=1.0).contains(q))?
            }
            "version" => version = Some(value.to_string()),
            _ => {}
        }
    }
    let format = match (media.as_str(), version.as_deref()) {
        ("application/openmetrics-text", None | Some("1.0.0")) => Format::OpenMetrics,
        ("text/plain", None | Some("0.0.4")) | ("text/*" | "*/*", _) => Format::PrometheusText,
        _ => return None,
    };
    Some((format, quality))
}

pub(super) fn from_accept(accept: Option<&str>) -> Format {
    let mut best: Option<(Format, f32)> = None;
    for (format, quality) in accept.unwrap_or("").split(',').filter_map(offer) {
        if quality > 0.0 && best.is_none_or(|(_, q)| quality > q) {
            best = Some((format, quality));
        }
    }
    best.map_or(Format::PrometheusText, |(format, _)| format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values_decide() {
        let om_low = "application/openmetrics-text;q=0.2, text/plain;version=0.0.4;q=0.9";
        assert_eq!(from_accept(Some(om_low)), Format::PrometheusText);
        let om_high = "text/plain;q=0.5, application/openmetrics-text; version=1.0.0; q=0.9";
        assert_eq!(from_accept(Some(om_high)), Format::OpenMetrics);
        assert_eq!(
            from_accept(Some("application/openmetrics-text;q=0")),
            Format::PrometheusText
        );
        assert_eq!(
            from_accept(Some("application/json")),
            Format::PrometheusText
        );
        assert_eq!(
            from_accept(Some("application/openmetrics-text;version=0.0.1")),
            Format::PrometheusText
        );
        assert_eq!(
            from_accept(Some("Application/OpenMetrics-Text")),
            Format::OpenMetrics
        );
        assert_eq!(from_accept(Some("garbage;;;q=x")), Format::PrometheusText);
    }
}
