//! `Accept` header parsing for format negotiation.

use super::{Exposition, Format};

const PROTOBUF_MEDIA: &str = "application/vnd.google.protobuf";
const PROTOBUF_PROTO: &str = "io.prometheus.client.MetricFamily";

/// One media range of an `Accept` header that we can serve.
fn offer(range: &str) -> Option<(Exposition, f32)> {
    let mut parts = range.split(';').map(str::trim);
    let media = parts.next()?.to_ascii_lowercase();
    let mut quality = 1.0f32;
    let mut version = None;
    let (mut proto, mut encoding) = (None, None);
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
            "proto" => proto = Some(value.to_string()),
            "encoding" => encoding = Some(value.to_ascii_lowercase()),
            _ => {}
        }
    }
    let exposition = match (media.as_str(), version.as_deref()) {
        ("application/openmetrics-text", None | Some("1.0.0")) => Exposition::OpenMetrics,
        ("text/plain", None | Some("0.0.4")) | ("text/*" | "*/*", _) => Exposition::PrometheusText,
        (PROTOBUF_MEDIA, _)
            if proto.as_deref() == Some(PROTOBUF_PROTO)
                && encoding.as_deref() == Some("delimited") =>
        {
            Exposition::Protobuf
        }
        _ => return None,
    };
    Some((exposition, quality))
}

/// The offer with the highest q-value among those `allowed` (the earlier on
/// a tie), else Prometheus text.
fn best(accept: Option<&str>, allowed: impl Fn(Exposition) -> bool) -> Exposition {
    let mut best: Option<(Exposition, f32)> = None;
    for (exposition, quality) in accept.unwrap_or("").split(',').filter_map(offer) {
        if allowed(exposition) && quality > 0.0 && best.is_none_or(|(_, q)| quality > q) {
            best = Some((exposition, quality));
        }
    }
    best.map_or(Exposition::PrometheusText, |(exposition, _)| exposition)
}

pub(super) fn from_accept(accept: Option<&str>) -> Format {
    best(accept, |e| e.text_format().is_some())
        .text_format()
        .unwrap_or(Format::PrometheusText)
}

pub(super) fn exposition_from_accept(accept: Option<&str>) -> Exposition {
    best(accept, |_| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
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

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn protobuf_needs_its_proto_and_delimited_encoding() {
        let full = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
        assert_eq!(exposition_from_accept(Some(full)), Exposition::Protobuf);
        // The text-only negotiation never picks it.
        assert_eq!(from_accept(Some(full)), Format::PrometheusText);
        for partial in [
            "application/vnd.google.protobuf",
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily",
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text",
            "application/vnd.google.protobuf;proto=other.Message;encoding=delimited",
        ] {
            assert_eq!(
                exposition_from_accept(Some(partial)),
                Exposition::PrometheusText,
                "{partial}"
            );
        }
        let lower = format!("{full};q=0.1,application/openmetrics-text;version=1.0.0;q=0.5");
        assert_eq!(
            exposition_from_accept(Some(&lower)),
            Exposition::OpenMetrics
        );
    }
}
