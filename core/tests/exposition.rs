//! Exact exposition output for every kind, in both formats, and promtool's
//! verdict on it.

use beluga_metrics::{Buckets, Format, Opts, Registry, Unit};
use beluga_test_support::exposition::{parse_sample, samples, unescape_help};
use beluga_test_support::promtool_check;

/// A registry holding every kind, with awkward label values.
fn every_kind() -> Registry {
    let r = Registry::new();
    r.counter(Opts::new("agent_runs_total", "Agent runs started."))
        .unwrap()
        .add(3);
    let tokens = r
        .counter_family(
            Opts::new("agent_tokens_total", "Tokens by model.").labels(["model", "tenant"]),
        )
        .unwrap();
    tokens.with_labels(&["gpt-4o", "free"]).unwrap().add(120);
    tokens
        .with_labels(&["quote\"back\\slash\nnewline 🐋", "pro"])
        .unwrap()
        .add(1);
    r.float_counter(Opts::new("agent_cost_usd_total", "Spend in USD.").unit(Unit::USD))
        .unwrap()
        .add(0.5);
    r.gauge(Opts::new(
        "agent_queue_depth",
        "Jobs \"waiting\"\\ in\nqueue.",
    ))
    .unwrap()
    .set(-2.5);
    let h = r
        .histogram_family(
            Opts::new("agent_step_duration_seconds", "Step duration.")
                .unit(Unit::SECONDS)
                .labels(["step"]),
            Buckets::new([0.1, 0.5, 1.0]),
        )
        .unwrap();
    let plan = h.with_labels(&["plan"]).unwrap();
    for v in [0.05, 0.1, 0.3, 1.0, 7.0] {
        plan.record(v);
    }
    r
}

#[test]
fn prometheus_text_is_exact() {
    let text = every_kind().encode(Format::PrometheusText);
    let expected = r#"# HELP agent_cost_usd_total Spend in USD.
# TYPE agent_cost_usd_total counter
agent_cost_usd_total 0.5
# HELP agent_queue_depth Jobs "waiting"\\ in\nqueue.
# TYPE agent_queue_depth gauge
agent_queue_depth -2.5
# HELP agent_runs_total Agent runs started.
# TYPE agent_runs_total counter
agent_runs_total 3
# HELP agent_step_duration_seconds Step duration.
# TYPE agent_step_duration_seconds histogram
agent_step_duration_seconds_bucket{step="plan",le="0.1"} 2
agent_step_duration_seconds_bucket{step="plan",le="0.5"} 3
agent_step_duration_seconds_bucket{step="plan",le="1.0"} 4
agent_step_duration_seconds_bucket{step="plan",le="+Inf"} 5
agent_step_duration_seconds_sum{step="plan"} 8.45
agent_step_duration_seconds_count{step="plan"} 5
# HELP agent_tokens_total Tokens by model.
# TYPE agent_tokens_total counter
agent_tokens_total{model="gpt-4o",tenant="free"} 120
agent_tokens_total{model="quote\"back\\slash\nnewline 🐋",tenant="pro"} 1
# HELP beluga_cardinality_overflow_total Lookups of new label sets sent to the overflow series because the family reached its cardinality limit.
# TYPE beluga_cardinality_overflow_total counter
beluga_cardinality_overflow_total{metric="agent_step_duration_seconds"} 0
beluga_cardinality_overflow_total{metric="agent_tokens"} 0
# HELP beluga_invalid_values_total Recorded values dropped: NaN or infinite observations, negative, infinite or overflowing increments, label values over the length limit.
# TYPE beluga_invalid_values_total counter
beluga_invalid_values_total{metric="agent_cost_usd"} 0
beluga_invalid_values_total{metric="agent_step_duration_seconds"} 0
"#;
    assert_eq!(text, expected);
}

#[test]
fn openmetrics_is_exact() {
    let r = Registry::new();
    r.counter(Opts::new("agent_runs_total", "Agent runs started."))
        .unwrap()
        .add(3);
    r.gauge(Opts::new(
        "agent_queue_depth",
        "Jobs \"waiting\"\\ in\nqueue.",
    ))
    .unwrap()
    .set(f64::NAN);
    r.histogram(
        Opts::new("agent_step_duration_seconds", "Step duration.").unit(Unit::SECONDS),
        Buckets::new([0.5]),
    )
    .unwrap()
    .record(0.5);
    let expected = r#"# TYPE agent_queue_depth gauge
# HELP agent_queue_depth Jobs \"waiting\"\\ in\nqueue.
agent_queue_depth NaN
# TYPE agent_runs counter
# HELP agent_runs Agent runs started.
agent_runs_total 3
# TYPE agent_step_duration_seconds histogram
# UNIT agent_step_duration_seconds seconds
# HELP agent_step_duration_seconds Step duration.
agent_step_duration_seconds_bucket{le="0.5"} 1
agent_step_duration_seconds_bucket{le="+Inf"} 1
agent_step_duration_seconds_sum 0.5
agent_step_duration_seconds_count 1
# TYPE beluga_invalid_values counter
# HELP beluga_invalid_values Recorded values dropped: NaN or infinite observations, negative, infinite or overflowing increments, label values over the length limit.
beluga_invalid_values_total{metric="agent_step_duration_seconds"} 0
# EOF
"#;
    assert_eq!(r.encode(Format::OpenMetrics), expected);
}

#[test]
fn promtool_accepts_every_kind() {
    let registry = every_kind();
    let report = promtool_check(&registry.encode(Format::PrometheusText));
    assert!(report.trim().is_empty(), "promtool reported: {report}");
}

#[test]
fn escaped_label_values_parse_back_byte_for_byte() {
    let nasty = "quote\"back\\slash\nnewline 🐋";
    for format in [Format::PrometheusText, Format::OpenMetrics] {
        let text = every_kind().encode(format);
        let found = samples(&text)
            .into_iter()
            .any(|s| s.labels.first() == Some(&("model".into(), nasty.into())));
        assert!(found, "{format:?} lost the label value:\n{text}");
    }
}

#[test]
fn help_text_parses_back() {
    let help = "Jobs \"waiting\"\\ in\nqueue.";
    for (format, prefix) in [
        (Format::PrometheusText, "# HELP agent_queue_depth "),
        (Format::OpenMetrics, "# HELP agent_queue_depth "),
    ] {
        let text = every_kind().encode(format);
        let line = text.split('\n').find(|l| l.starts_with(prefix)).unwrap();
        assert_eq!(unescape_help(&line[prefix.len()..]), help, "{format:?}");
    }
}

#[test]
fn histogram_boundaries_and_inf_bucket_equal_count() {
    let text = every_kind().encode(Format::PrometheusText);
    let buckets: Vec<_> = samples(&text)
        .into_iter()
        .filter(|s| s.name == "agent_step_duration_seconds_bucket")
        .collect();
    let counts: Vec<u64> = buckets.iter().map(|s| s.value.parse().unwrap()).collect();
    assert!(
        counts.windows(2).all(|w| w[0] <= w[1]),
        "buckets must be cumulative"
    );
    let inf = buckets.last().unwrap();
    assert_eq!(
        inf.labels.last().unwrap(),
        &("le".to_string(), "+Inf".to_string())
    );
    let count_line = text
        .split('\n')
        .find(|l| l.starts_with("agent_step_duration_seconds_count"))
        .map(parse_sample)
        .unwrap();
    assert_eq!(inf.value, count_line.value);
}

#[test]
fn gen_ai_bucket_sets_are_exposed_as_specified() {
    let r = Registry::new();
    r.histogram(
        Opts::new("gen_ai_client_token_usage", "Tokens.").unit(Unit::TOKENS),
        Buckets::gen_ai_token_usage(),
    )
    .unwrap()
    .record(64.0);
    let text = r.encode(Format::PrometheusText);
    let les: Vec<String> = samples(&text)
        .into_iter()
        .filter(|s| s.name == "gen_ai_client_token_usage_bucket")
        .map(|s| s.labels[0].1.clone())
        .collect();
    let expected: Vec<String> = Buckets::gen_ai_token_usage()
        .bounds()
        .iter()
        .map(|b| format!("{b:?}"))
        .chain(["+Inf".to_string()])
        .collect();
    assert_eq!(les, expected);
    // 64 is a boundary: it counts in le="64.0", not above.
    assert!(text.contains("gen_ai_client_token_usage_bucket{le=\"16.0\"} 0\n"));
    assert!(text.contains("gen_ai_client_token_usage_bucket{le=\"64.0\"} 1\n"));
}

#[test]
fn encoder_reuses_its_buffer() {
    let registry = every_kind();
    let mut encoder = beluga_metrics::Encoder::new();
    let first = encoder.encode(&registry, Format::PrometheusText).to_vec();
    let second = encoder.encode(&registry, Format::PrometheusText).to_vec();
    assert_eq!(first, second, "encoding is deterministic");
}
