//! A real Prometheus scrapes the exporter in all three formats (text,
//! OpenMetrics, and protobuf with native histograms), and what it stores
//! equals what the test recorded.

mod common;

use std::time::Duration;

use beluga_exporter_prometheus::PrometheusExporter;
use beluga_metrics::{Buckets, Opts, Registry, Unit};
use common::{value_of, Prometheus};

/// Label values that escaping has to carry through untouched.
const NASTY: [&str; 5] = [
    "say \"hi\"",
    "back\\slash",
    "literal \\\\ two",
    "line\nbreak",
    "🐋 ünïcødé",
];

fn recorded_registry() -> Registry {
    let r = Registry::new();
    r.counter(Opts::new("test_requests_total", "Requests."))
        .unwrap()
        .add(1234);
    r.gauge(Opts::new("test_queue_depth", "Queue depth."))
        .unwrap()
        .set(-7.25);
    r.float_counter(Opts::new("test_cost_usd_total", "Cost.").unit(Unit::USD))
        .unwrap()
        .add(12.5);
    let h = r
        .histogram(
            Opts::new("test_latency_seconds", "Latency.").unit(Unit::SECONDS),
            Buckets::new([0.1, 0.5, 1.0]),
        )
        .unwrap();
    for v in [0.05, 0.1, 0.2, 0.5, 0.7, 3.0] {
        h.record(v);
    }
    let nasty = r
        .counter_family(Opts::new("test_nasty_total", "Nasty labels.").labels(["value"]))
        .unwrap();
    for (i, value) in NASTY.iter().enumerate() {
        nasty.with_labels(&[value]).unwrap().add(i as u64 + 1);
    }
    r
}

const NATIVE_HISTOGRAMS: &str = "--enable-feature=native-histograms";

#[test]
fn prometheus_stores_exactly_what_was_recorded_in_all_three_formats() {
    beluga_test_support::require!(beluga_test_support::External::Prometheus);
    let registry = recorded_registry();
    let exporter = PrometheusExporter::builder()
        .registry(&registry)
        .listen("127.0.0.1:0")
        .serve_in_thread()
        .unwrap();
    let target = exporter.local_addr();
    let prometheus = Prometheus::start(&format!(
        "  - job_name: openmetrics\n    static_configs: [{{targets: ['{target}']}}]\n\
         \x20 - job_name: text\n    params: {{format: [text]}}\n    static_configs: [{{targets: ['{target}']}}]\n"
    ));
    // With native histograms on, Prometheus 2.42 asks for protobuf first.
    let native = Prometheus::start_with(
        &format!("  - job_name: protobuf\n    static_configs: [{{targets: ['{target}']}}]\n"),
        &[NATIVE_HISTOGRAMS],
    );
    for (prometheus, job) in [
        (&prometheus, "openmetrics"),
        (&prometheus, "text"),
        (&native, "protobuf"),
    ] {
        prometheus.wait_for(
            &format!("up{{job=\"{job}\"}} == 1"),
            Duration::from_secs(60),
        );
        prometheus.wait_for(
            &format!("test_requests_total{{job=\"{job}\"}}"),
            Duration::from_secs(30),
        );
    }

    for (prometheus, job) in [
        (&prometheus, "openmetrics"),
        (&prometheus, "text"),
        (&native, "protobuf"),
    ] {
        let one = |expr: &str| {
            let result = prometheus.query(&format!("{expr}{{job=\"{job}\"}}"));
            assert_eq!(
                result.len(),
                1,
                "{expr} in job {job}: {result:?}\n{}",
                prometheus.log()
            );
            value_of(&result[0])
        };
        assert_eq!(one("test_requests_total"), 1234.0, "{job}");
        assert_eq!(one("test_queue_depth"), -7.25, "{job}");
        assert_eq!(one("test_cost_usd_total"), 12.5, "{job}");
        check_nasty_labels(prometheus, job);
        if job == "protobuf" {
            // A native histogram: Prometheus 2.42 ingests only that form of
            // a histogram that has one, and answers histogram_count/_sum.
            let native_one = |f: &str| {
                let result =
                    prometheus.query(&format!("{f}(test_latency_seconds{{job=\"{job}\"}})"));
                assert_eq!(result.len(), 1, "{f}: {result:?}\n{}", prometheus.log());
                value_of(&result[0])
            };
            assert_eq!(native_one("histogram_count"), 6.0);
            assert!((native_one("histogram_sum") - 4.55).abs() < 1e-9);
            assert!(prometheus.query("test_latency_seconds_bucket").is_empty());
            continue;
        }
        assert_eq!(one("test_latency_seconds_count"), 6.0, "{job}");
        assert!(
            (one("test_latency_seconds_sum") - 4.55).abs() < 1e-9,
            "{job}"
        );
        let buckets = prometheus.query(&format!("test_latency_seconds_bucket{{job=\"{job}\"}}"));
        let mut by_le: Vec<(String, f64)> = buckets
            .iter()
            .map(|s| (s["metric"]["le"].as_str().unwrap().to_string(), value_of(s)))
            .collect();
        by_le.sort_by(|a, b| a.0.cmp(&b.0));
        let expected = [("+Inf", 6.0), ("0.1", 2.0), ("0.5", 4.0), ("1.0", 5.0)];
        let by_le: Vec<(&str, f64)> = by_le.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        // Prometheus normalises `le` differently per parser version; compare numerically.
        let numeric = |pairs: &[(&str, f64)]| {
            let mut v: Vec<(f64, f64)> = pairs
                .iter()
                .map(|(l, c)| (l.replace("+Inf", "inf").parse::<f64>().unwrap(), *c))
                .collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v
        };
        assert_eq!(numeric(&by_le), numeric(&expected), "{job}");
    }

    // Every format was really served.
    let text = registry.encode(beluga_metrics::Format::PrometheusText);
    let scrapes = |format: &str| {
        text.lines()
            .find(|l| {
                l.starts_with(&format!(
                    "beluga_exporter_scrapes_total{{format=\"{format}\"}}"
                ))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(
        scrapes("openmetrics") > 0 && scrapes("text") > 0 && scrapes("protobuf") > 0,
        "{text}"
    );
    exporter.shutdown();
}

/// Every label value of [`NASTY`] reached Prometheus byte for byte.
fn check_nasty_labels(prometheus: &Prometheus, job: &str) {
    let nasty = prometheus.query(&format!("test_nasty_total{{job=\"{job}\"}}"));
    assert_eq!(nasty.len(), NASTY.len(), "{job}: {nasty:?}");
    for (i, value) in NASTY.iter().enumerate() {
        let found = nasty
            .iter()
            .find(|s| s["metric"]["value"].as_str() == Some(value))
            .unwrap_or_else(|| panic!("{job}: label value {value:?} did not survive: {nasty:?}"));
        assert_eq!(value_of(found), (i + 1) as f64);
    }
}

/// Latencies spread log-uniformly over 1 ms - 1 s, deterministic.
fn latencies(n: usize) -> impl Iterator<Item = f64> {
    (0..n).map(move |i| 0.001 * 1000f64.powf((i as f64 * 0.618_034).fract()))
}

#[test]
fn native_histogram_quantiles_agree_with_the_hdr_quantiles() {
    beluga_test_support::require!(beluga_test_support::External::Prometheus);
    let registry = Registry::new();
    let latency = registry
        .histogram(
            Opts::new("llm_latency_seconds", "LLM latency.").unit(Unit::SECONDS),
            Buckets::gen_ai_operation_duration(),
        )
        .unwrap();
    const N: usize = 5_000;
    latencies(N).for_each(|v| latency.record(v));
    let exporter = PrometheusExporter::builder()
        .registry(&registry)
        .listen("127.0.0.1:0")
        .serve_in_thread()
        .unwrap();
    let target = exporter.local_addr();
    let prometheus = Prometheus::start_with(
        &format!("  - job_name: native\n    static_configs: [{{targets: ['{target}']}}]\n"),
        &[NATIVE_HISTOGRAMS],
    );
    let count_is = |n: usize| {
        prometheus.wait_for(
            &format!("histogram_count(llm_latency_seconds) == {n}"),
            Duration::from_secs(60),
        )
    };
    count_is(N);
    // A second batch of the same distribution; rate() over the window sees it.
    latencies(N).for_each(|v| latency.record(v));
    count_is(2 * N);

    let hdr = latency.quantiles();
    for q in [0.5, 0.9, 0.99] {
        let result = prometheus.query(&format!(
            "histogram_quantile({q}, rate(llm_latency_seconds[1m]))"
        ));
        assert_eq!(result.len(), 1, "{result:?}\n{}", prometheus.log());
        let native = value_of(&result[0]);
        let exact = hdr.quantile(q);
        // Documented bound: one schema-3 bucket (9.05 %) plus half an HDR
        // sub-bucket (0.4 %).
        let error = (native - exact).abs() / exact;
        assert!(
            error <= 0.0945,
            "q={q}: native {native}, HDR {exact}, error {error:.4}"
        );
    }
    let sum: f64 = latencies(N).sum::<f64>() * 2.0;
    let stored_sum = value_of(&prometheus.query("histogram_sum(llm_latency_seconds)")[0]);
    assert!(
        (stored_sum - sum).abs() / sum < 1e-9,
        "{stored_sum} vs {sum}"
    );
    exporter.shutdown();
}

#[test]
fn exemplars_reach_prometheus_in_openmetrics_and_protobuf() {
    beluga_test_support::require!(beluga_test_support::External::Prometheus);
    use beluga_metrics::Exemplar;
    let registry = Registry::new();
    let latency = registry
        .histogram(
            Opts::new("llm_call_seconds", "LLM calls.").unit(Unit::SECONDS),
            Buckets::new([0.5, 1.0, 5.0]),
        )
        .unwrap();
    let errors = registry
        .counter(Opts::new("llm_errors_total", "LLM errors."))
        .unwrap();
    let tenant = [("tenant", "acme \"prod\"")];
    latency
        .record_with_exemplar(0.82, &Exemplar::new([0x4b; 16], [0x1f; 8]).labels(&tenant))
        .unwrap();
    latency.record(0.3); // no exemplar: its bucket has none
    errors
        .add_with_exemplar(1, &Exemplar::new([0x9a; 16], [0x02; 8]))
        .unwrap();
    let exporter = PrometheusExporter::builder()
        .registry(&registry)
        .listen("127.0.0.1:0")
        .serve_in_thread()
        .unwrap();
    let target = exporter.local_addr();
    let config = format!("  - job_name: agent\n    static_configs: [{{targets: ['{target}']}}]\n");
    let openmetrics = Prometheus::start_with(&config, &["--enable-feature=exemplar-storage"]);
    let protobuf = Prometheus::start_with(
        &config,
        &["--enable-feature=exemplar-storage,native-histograms"],
    );
    for (prometheus, format) in [(&openmetrics, "openmetrics"), (&protobuf, "protobuf")] {
        let bucket_query = if format == "protobuf" {
            "llm_call_seconds" // 2.42 keeps only the native form; bucket exemplars hang on it
        } else {
            "llm_call_seconds_bucket"
        };
        let found = common::poll(
            &format!("{format}: exemplars in Prometheus"),
            Duration::from_secs(60),
            || {
                let latency = prometheus.exemplars(bucket_query);
                let errors = prometheus.exemplars("llm_errors_total");
                (!latency.is_empty() && !errors.is_empty()).then_some((latency, errors))
            },
        );
        let (latency_exemplars, error_exemplars) = found;
        assert_eq!(
            latency_exemplars.len(),
            1,
            "{format}: {latency_exemplars:?}"
        );
        let (series, e) = &latency_exemplars[0];
        if format == "openmetrics" {
            assert_eq!(series["le"], "1.0", "the exemplar hangs on 0.82's bucket");
        }
        assert_eq!(e["labels"]["trace_id"], "4b".repeat(16), "{format}");
        assert_eq!(e["labels"]["span_id"], "1f".repeat(8), "{format}");
        // Protobuf carries the value raw: lossless. In OpenMetrics it is
        // escaped as the spec says (`acme \"prod\"`), and Prometheus 2.42's
        // OpenMetrics parser stores exemplar label values without undoing
        // the escapes (it does undo them for series labels).
        let tenant = if format == "protobuf" {
            r#"acme "prod""#
        } else {
            r#"acme \"prod\""#
        };
        assert_eq!(e["labels"]["tenant"], tenant, "{format}");
        assert_eq!(e["value"], "0.82", "{format}");
        let (_, e) = &error_exemplars[0];
        assert_eq!(e["labels"]["trace_id"], "9a".repeat(16), "{format}");
        assert_eq!(e["value"], "1", "{format}");
    }
    exporter.shutdown();
}
