//! The exporter against a receiver we do not control the decoding of.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beluga_exporter_otlp::{Compression, ExportError, OtlpExporter, Temporality};
use beluga_metrics::{Buckets, Opts, Registry, Unit};
use beluga_monitor::Monitor;
use common::shared::free_port;
use common::{attribute, int, metric, resource_attribute, Receiver};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Every kind, with known values.
fn recorded() -> Registry {
    let r = Registry::new();
    let calls = r
        .counter_family(Opts::new("agent_calls_total", "Calls.").labels(["model"]))
        .unwrap();
    calls.with_labels(&["gpt-4o"]).unwrap().add(7);
    r.float_counter(Opts::new("agent_cost_usd_total", "Cost.").unit(Unit::USD))
        .unwrap()
        .add(1.25);
    r.gauge(Opts::new("agent_queue_depth", "Depth."))
        .unwrap()
        .set(3.5);
    let h = r
        .histogram(
            Opts::new("agent_latency_seconds", "Latency.").unit(Unit::SECONDS),
            Buckets::new([0.1, 1.0]),
        )
        .unwrap();
    for v in [0.05, 0.1, 0.5, 2.0] {
        h.record(v);
    }
    r
}

#[test]
fn resource_scope_names_units_temporality_and_values() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let receiver = Receiver::start("");
    let registry = recorded();
    let monitor = Monitor::builder()
        .service_name("otlp-test-agent")
        .registry(&registry)
        .build()
        .unwrap();
    runtime().block_on(async {
        let exporter = OtlpExporter::builder()
            .registry(monitor.registry())
            .service_name(monitor.service_name())
            .endpoint(receiver.endpoint())
            .interval(Duration::from_secs(3600))
            .spawn()
            .unwrap();
        exporter.force_flush().await.unwrap();
        exporter.shutdown(Duration::from_secs(5)).await.unwrap();
    });
    let requests = receiver.wait_for(2, Duration::from_secs(10));
    let first = &requests[0];
    assert_eq!(first["path"], "/v1/metrics");
    assert_eq!(first["headers"]["content-type"], "application/x-protobuf");
    assert_eq!(
        resource_attribute(first, "service.name").as_deref(),
        Some("otlp-test-agent")
    );
    assert_eq!(
        resource_attribute(first, "telemetry.sdk.name").as_deref(),
        Some("beluga-metrics")
    );
    assert_eq!(
        resource_attribute(first, "telemetry.sdk.language").as_deref(),
        Some("rust")
    );
    assert!(resource_attribute(first, "telemetry.sdk.version").is_some());
    let scope = &first["request"]["resource_metrics"][0]["scope_metrics"][0]["scope"];
    assert_eq!(scope["name"], "beluga-metrics");
    assert_eq!(
        first["request"]["resource_metrics"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let calls = metric(first, "agent_calls");
    assert_eq!(calls["sum"]["is_monotonic"], true);
    assert_eq!(
        calls["sum"]["aggregation_temporality"],
        "AGGREGATION_TEMPORALITY_CUMULATIVE"
    );
    let point = &calls["sum"]["data_points"][0];
    assert_eq!(int(&point["as_int"]), 7);
    assert_eq!(attribute(point, "model").as_deref(), Some("gpt-4o"));
    assert!(int(&point["start_time_unix_nano"]) <= int(&point["time_unix_nano"]));

    let cost = metric(first, "agent_cost_usd");
    assert_eq!(cost["unit"], "USD");
    assert_eq!(cost["sum"]["data_points"][0]["as_double"], 1.25);

    let depth = metric(first, "agent_queue_depth");
    assert_eq!(depth["gauge"]["data_points"][0]["as_double"], 3.5);

    let latency = metric(first, "agent_latency_seconds");
    assert_eq!(latency["unit"], "s");
    assert_eq!(latency["description"], "Latency.");
    let hist = &latency["histogram"];
    assert_eq!(
        hist["aggregation_temporality"],
        "AGGREGATION_TEMPORALITY_CUMULATIVE"
    );
    let p = &hist["data_points"][0];
    assert_eq!(p["explicit_bounds"], serde_json::json!([0.1, 1.0]));
    let counts: Vec<u64> = p["bucket_counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(int)
        .collect();
    assert_eq!(
        counts,
        vec![2, 1, 1],
        "0.05 and 0.1 in le=0.1; 0.5 in le=1; 2.0 above"
    );
    assert_eq!(int(&p["count"]), 4);
    assert_eq!(p["sum"], 2.65);
    assert_eq!(
        (p["min"].as_f64(), p["max"].as_f64()),
        (Some(0.05), Some(2.0))
    );

    // The monitor's standard metrics go too.
    let info = metric(first, "target_info");
    assert_eq!(
        attribute(&info["gauge"]["data_points"][0], "service_name").as_deref(),
        Some("otlp-test-agent")
    );
}

#[test]
fn a_collector_down_at_start_gets_all_totals_once_up() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let port = free_port();
    let registry = recorded();
    let failures = Arc::new(Mutex::new(Vec::new()));
    let seen = failures.clone();
    let rt = runtime();
    let exporter = rt.block_on(async {
        OtlpExporter::builder()
            .registry(&registry)
            .endpoint(format!("http://127.0.0.1:{port}"))
            .interval(Duration::from_millis(200))
            .retry_backoff(Duration::from_millis(20), Duration::from_millis(50))
            .on_error(move |e| seen.lock().unwrap().push(e.clone()))
            .spawn()
            .unwrap()
    });
    common::poll("an export failure", Duration::from_secs(10), || {
        (!failures.lock().unwrap().is_empty()).then_some(())
    });
    // The retries end at the attempt limit (`Unreachable`) or, on a loaded
    // machine, at the next interval (`DeadlineExceeded`): either way after
    // real attempts to reach the collector.
    let first = failures.lock().unwrap()[0].clone();
    assert!(
        matches!(
            first,
            ExportError::Unreachable { attempts, .. } | ExportError::DeadlineExceeded { attempts }
                if attempts >= 1
        ),
        "{first:?}"
    );
    let receiver = Receiver::start_on(port, "");
    let requests = receiver.wait_for(1, Duration::from_secs(10));
    let point = &metric(&requests[0], "agent_calls")["sum"]["data_points"][0];
    assert_eq!(int(&point["as_int"]), 7);
    assert_eq!(
        int(&metric(&requests[0], "agent_latency_seconds")["histogram"]["data_points"][0]["count"]),
        4
    );
    let text = registry.encode(beluga_metrics::Format::PrometheusText);
    assert!(
        text.contains("beluga_otlp_exports_total{outcome=\"failure\"}"),
        "{text}"
    );
    rt.block_on(exporter.shutdown(Duration::from_secs(5)))
        .unwrap();
}

#[test]
fn retry_after_is_honoured_then_the_export_is_delivered() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let receiver = Receiver::start("503:1,200");
    let registry = recorded();
    let started = Instant::now();
    runtime().block_on(async {
        let exporter = OtlpExporter::builder()
            .registry(&registry)
            .endpoint(receiver.endpoint())
            .interval(Duration::from_secs(30))
            .retry_backoff(Duration::from_millis(10), Duration::from_millis(20))
            .spawn()
            .unwrap();
        exporter.force_flush().await.unwrap();
    });
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        (
            requests[0]["answer"].as_str(),
            requests[1]["answer"].as_str()
        ),
        (Some("503"), Some("200"))
    );
    let gap =
        requests[1]["received_at"].as_f64().unwrap() - requests[0]["received_at"].as_f64().unwrap();
    assert!(
        gap >= 0.95,
        "retried after {gap} s, not after Retry-After: 1"
    );
    assert!(started.elapsed() >= Duration::from_millis(950));
}

/// A collector's `Retry-After` can name any wait: the largest ones end the
/// export with an error (never a panic in the exporter's task, which goes
/// on exporting), a wait of zero or a date in the past waits the exporter's
/// own backoff instead of turning retries into a flood.
#[test]
fn retry_after_from_the_collector_is_bounded_both_ways() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let registry = recorded();
    let rt = runtime();
    for wait in ["MAX", "FAR"] {
        let receiver = Receiver::start(&format!("503:{wait},200"));
        let exporter = rt.block_on(async {
            OtlpExporter::builder()
                .registry(&registry)
                .endpoint(receiver.endpoint())
                .interval(Duration::from_secs(30))
                .spawn()
                .unwrap()
        });
        let first = rt.block_on(exporter.force_flush());
        assert!(
            matches!(&first, Err(ExportError::Unreachable { attempts: 1, last }) if last.contains("503")),
            "Retry-After {wait}: {first:?}"
        );
        rt.block_on(exporter.force_flush())
            .unwrap_or_else(|e| panic!("Retry-After {wait}: the exporter stopped: {e}"));
        assert_eq!(receiver.requests().len(), 2);
    }
    for wait in ["0", "PAST"] {
        let script = vec![format!("503:{wait}"); 200].join(",");
        let receiver = Receiver::start(&script);
        let result = rt.block_on(async {
            let exporter = OtlpExporter::builder()
                .registry(&registry)
                .endpoint(receiver.endpoint())
                // The retry budget of one export is its interval: 2 s.
                .interval(Duration::from_secs(2))
                .retry_backoff(Duration::from_millis(50), Duration::from_millis(200))
                .spawn()
                .unwrap();
            exporter.force_flush().await
        });
        assert!(result.is_err(), "{result:?}");
        // Backoff 50 ms doubling to 200 ms, jitter at least 0.5: at most
        // about 25 requests in 2 s (a zero wait made thousands).
        let requests = receiver.requests().len();
        assert!(
            (3..=30).contains(&requests),
            "Retry-After {wait}: {requests} requests in 2 s"
        );
    }
}

#[test]
fn a_400_is_not_retried_and_is_reported() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let receiver = Receiver::start("400");
    let registry = recorded();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    let result = runtime().block_on(async {
        let exporter = OtlpExporter::builder()
            .registry(&registry)
            .endpoint(receiver.endpoint())
            .interval(Duration::from_secs(30))
            .on_error(move |e| seen.lock().unwrap().push(e.clone()))
            .spawn()
            .unwrap();
        exporter.force_flush().await
    });
    assert!(
        matches!(result, Err(ExportError::Rejected { status: 400, .. })),
        "{result:?}"
    );
    assert_eq!(receiver.requests().len(), 1, "a 400 must not be retried");
    assert_eq!(errors.lock().unwrap().len(), 1);
    let text = registry.encode(beluga_metrics::Format::PrometheusText);
    assert!(
        text.contains("beluga_otlp_exports_total{outcome=\"failure\"} 1\n"),
        "{text}"
    );
}

#[test]
fn shutdown_delivers_the_pending_change() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let receiver = Receiver::start("");
    let registry = Registry::new();
    let jobs = registry.counter(Opts::new("jobs_total", "Jobs.")).unwrap();
    runtime().block_on(async {
        let exporter = OtlpExporter::builder()
            .registry(&registry)
            .endpoint(receiver.endpoint())
            .interval(Duration::from_secs(3600))
            .spawn()
            .unwrap();
        jobs.add(41);
        jobs.inc();
        exporter.shutdown(Duration::from_secs(5)).await.unwrap();
    });
    let requests = receiver.wait_for(1, Duration::from_secs(5));
    assert_eq!(
        int(&metric(&requests[0], "jobs")["sum"]["data_points"][0]["as_int"]),
        42
    );
}

#[test]
fn shutdown_against_a_collector_that_never_answers_returns_within_its_deadline() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let receiver = Receiver::start("hang");
    let registry = recorded();
    let started = Instant::now();
    let result = runtime().block_on(async {
        let exporter = OtlpExporter::builder()
            .registry(&registry)
            .endpoint(receiver.endpoint())
            .timeout(Duration::from_secs(30))
            .spawn()
            .unwrap();
        exporter.shutdown(Duration::from_millis(800)).await
    });
    let took = started.elapsed();
    assert!(result.is_err(), "{result:?}");
    assert!(took < Duration::from_millis(1500), "shutdown took {took:?}");
    assert_eq!(
        receiver.wait_for(1, Duration::from_secs(5))[0]["answer"],
        "hang"
    );
}

#[test]
fn a_stuck_periodic_export_does_not_cost_the_final_one() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    // The first (periodic) export hangs; the final one must still be made,
    // on its own connection, and be delivered.
    let receiver = Receiver::start("hang");
    let registry = Registry::new();
    let jobs = registry.counter(Opts::new("jobs_total", "Jobs.")).unwrap();
    jobs.add(7);
    let result = runtime().block_on(async {
        let exporter = OtlpExporter::builder()
            .registry(&registry)
            .endpoint(receiver.endpoint())
            .interval(Duration::from_millis(100))
            .timeout(Duration::from_secs(30))
            .spawn()
            .unwrap();
        // Wait until the periodic export is stuck in the collector.
        for _ in 0..200 {
            if !receiver.requests().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            receiver.requests().len(),
            1,
            "the periodic export never reached the collector"
        );
        jobs.add(1);
        exporter.shutdown(Duration::from_secs(5)).await
    });
    assert_eq!(result, Ok(()));
    let requests = receiver.requests();
    assert_eq!(
        requests.len(),
        2,
        "the hanging periodic export, then the final one"
    );
    assert_eq!(
        int(&metric(&requests[1], "jobs")["sum"]["data_points"][0]["as_int"]),
        8
    );
}

#[test]
fn errors_report_the_attempts_made() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let receiver = Receiver::start(&["503"; 60].join(","));
    let registry = recorded();
    let result = runtime().block_on(async {
        let exporter = OtlpExporter::builder()
            .registry(&registry)
            .endpoint(receiver.endpoint())
            .interval(Duration::from_secs(3600))
            .retry_backoff(Duration::from_millis(50), Duration::from_millis(50))
            .spawn()
            .unwrap();
        exporter.shutdown(Duration::from_millis(600)).await
    });
    let made = receiver.requests().len() as u32;
    match result {
        Err(ExportError::Unreachable { attempts, .. })
        | Err(ExportError::DeadlineExceeded { attempts }) => {
            assert!(attempts >= 2, "{attempts} attempts");
            assert_eq!(
                attempts, made,
                "the error counts the requests the collector saw"
            );
        }
        other => panic!("expected a retry failure, got {other:?}"),
    }
}

#[test]
fn an_endless_answer_from_the_collector_is_cut() {
    for status in [200, 500] {
        let peer =
            common::shared::FakePeer::start(common::shared::Misbehaviour::EndlessBody(status));
        let registry = recorded();
        let result = runtime().block_on(async {
            let exporter = OtlpExporter::builder()
                .registry(&registry)
                .endpoint(peer.url())
                .interval(Duration::from_secs(3600))
                .timeout(Duration::from_secs(20))
                .spawn()
                .unwrap();
            exporter.force_flush().await
        });
        match (status, &result) {
            // An unparseable success body reads as full success.
            (200, Ok(())) => {}
            (
                500,
                Err(ExportError::Rejected {
                    status: 500,
                    message,
                }),
            ) => {
                assert!(message.len() <= 200, "{message}")
            }
            _ => panic!("status {status}: unexpected {result:?}"),
        }
        common::poll(
            "the peer to notice the hang-up",
            Duration::from_secs(30),
            || (peer.finished.load(std::sync::atomic::Ordering::SeqCst) == 1).then_some(()),
        );
        let written = peer.written.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            written < 64 << 20,
            "{written} bytes sent before the exporter hung up"
        );
    }
}

#[test]
fn delta_temporality_carries_undelivered_changes_into_the_next_export() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let receiver = Receiver::start("200,400,200");
    let registry = Registry::new();
    let jobs = registry.counter(Opts::new("jobs_total", "Jobs.")).unwrap();
    let h = registry
        .histogram(Opts::new("sizes", "Sizes."), Buckets::new([10.0]))
        .unwrap();
    runtime().block_on(async {
        let exporter = OtlpExporter::builder()
            .registry(&registry)
            .endpoint(receiver.endpoint())
            .interval(Duration::from_secs(3600))
            .temporality(Temporality::Delta)
            .spawn()
            .unwrap();
        jobs.add(5);
        h.record(1.0);
        exporter.force_flush().await.unwrap(); // delivered: 5
        jobs.add(3);
        h.record(20.0);
        assert!(exporter.force_flush().await.is_err()); // refused: 3 is kept
        jobs.add(2);
        exporter.force_flush().await.unwrap(); // delivered: 3 + 2
    });
    let requests = receiver.requests();
    let jobs_point = |i: usize| metric(&requests[i], "jobs")["sum"]["data_points"][0].clone();
    assert_eq!(
        metric(&requests[0], "jobs")["sum"]["aggregation_temporality"],
        "AGGREGATION_TEMPORALITY_DELTA"
    );
    assert_eq!(int(&jobs_point(0)["as_int"]), 5);
    assert_eq!(int(&jobs_point(2)["as_int"]), 5, "3 undelivered + 2 new");
    let sizes = metric(&requests[2], "sizes")["histogram"]["data_points"][0].clone();
    let counts: Vec<u64> = sizes["bucket_counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(int)
        .collect();
    assert_eq!(counts, vec![0, 1]);
    assert_eq!(sizes["sum"], 20.0);
    // The delta window starts where the last delivered one ended.
    assert_eq!(
        jobs_point(2)["start_time_unix_nano"],
        jobs_point(0)["time_unix_nano"]
    );
}

#[test]
fn gzip_bodies_and_partial_success() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let receiver = Receiver::start("partial:2");
    let registry = recorded();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    runtime().block_on(async {
        let exporter = OtlpExporter::builder()
            .registry(&registry)
            .endpoint(receiver.endpoint())
            .compression(Compression::Gzip)
            .on_error(move |e| seen.lock().unwrap().push(e.clone()))
            .spawn()
            .unwrap();
        exporter.force_flush().await.unwrap();
    });
    let requests = receiver.requests();
    assert_eq!(requests[0]["headers"]["content-encoding"], "gzip");
    assert_eq!(
        int(&metric(&requests[0], "agent_calls")["sum"]["data_points"][0]["as_int"]),
        7
    );
    assert!(matches!(
        errors.lock().unwrap()[0],
        ExportError::PartialSuccess {
            rejected_data_points: 2,
            ..
        }
    ));
    let text = registry.encode(beluga_metrics::Format::PrometheusText);
    assert!(
        text.contains("beluga_otlp_rejected_data_points_total 2\n"),
        "{text}"
    );
}

#[test]
fn overflow_series_carry_the_otel_attribute() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let receiver = Receiver::start("");
    let registry = Registry::new();
    let users = registry
        .counter_family(
            Opts::new("logins_total", "Logins.")
                .labels(["user"])
                .cardinality_limit(1),
        )
        .unwrap();
    users.with_labels(&["a"]).unwrap().inc();
    users.with_labels(&["b"]).unwrap().inc();
    runtime().block_on(async {
        let exporter = OtlpExporter::builder()
            .registry(&registry)
            .endpoint(receiver.endpoint())
            .spawn()
            .unwrap();
        exporter.force_flush().await.unwrap();
    });
    let points = metric(&receiver.requests()[0], "logins")["sum"]["data_points"].clone();
    let overflow = points
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["attributes"][0]["key"] == "otel.metric.overflow")
        .expect("an overflow point");
    assert_eq!(overflow["attributes"][0]["value"]["bool_value"], true);
}

#[test]
fn bad_settings_are_errors() {
    let rt = runtime();
    rt.block_on(async {
        let err = OtlpExporter::builder()
            .registry(&Registry::new())
            .endpoint("https://collector:4318")
            .spawn()
            .unwrap_err();
        assert!(matches!(err, ExportError::InvalidConfig(_)));
        assert!(err.to_string().contains("http://"));
        let err = OtlpExporter::builder()
            .registry(&Registry::new())
            .endpoint("http://127.0.0.1:4318")
            .header("bad header", "x")
            .spawn()
            .unwrap_err();
        assert!(matches!(err, ExportError::InvalidConfig(_)));
        // Refused when the exporter is built, not reported as "unreachable"
        // an interval later; credentials in a URL never reach the error.
        for (url, why) in [
            ("http://collector:99999", "port"),
            ("http://user:s3cret@collector:4318", "credentials"),
            ("http://collector:4318/v1/metrics?x=1", "query"),
            ("http://collector:4318/v1/metrics?token=s3cret", "query"),
        ] {
            let builder = OtlpExporter::builder()
                .registry(&Registry::new())
                .metrics_endpoint(url);
            assert!(!format!("{builder:?}").contains("s3cret"), "{builder:?}");
            let err = builder.spawn().unwrap_err();
            assert!(matches!(err, ExportError::InvalidConfig(_)), "{url}");
            assert!(err.to_string().contains(why), "{url}: {err}");
            assert!(!format!("{err} {err:?}").contains("s3cret"), "{err:?}");
        }
        // Over gRPC as well.
        let err = OtlpExporter::builder()
            .registry(&Registry::new())
            .protocol(beluga_exporter_otlp::Protocol::Grpc)
            .endpoint("http://collector:4317/?token=s3cret")
            .spawn()
            .unwrap_err();
        assert!(!format!("{err} {err:?}").contains("s3cret"), "{err:?}");
        // A secret header value never shows in Debug.
        let builder = OtlpExporter::builder()
            .endpoint("http://127.0.0.1:4318")
            .header("authorization", "Bearer s3cret");
        assert!(!format!("{builder:?}").contains("s3cret"));
    });
    assert!(matches!(
        OtlpExporter::builder().registry(&Registry::new()).spawn(),
        Err(ExportError::NoRuntime)
    ));
}

/// Latencies spread log-uniformly over 1 ms - 1 s, deterministic.
fn latencies(n: usize) -> impl Iterator<Item = f64> {
    (0..n).map(move |i| 0.001 * 1000f64.powf((i as f64 * 0.618_034).fract()))
}

fn exponential_counts(point: &serde_json::Value) -> (i64, Vec<u64>) {
    let positive = &point["positive"];
    let offset = positive["offset"].as_i64().unwrap_or(0);
    let counts = positive["bucket_counts"]
        .as_array()
        .map(|c| c.iter().map(int).collect())
        .unwrap_or_default();
    (offset, counts)
}

#[test]
fn histograms_go_as_exponential_histograms_when_asked_per_instrument() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    use beluga_exporter_otlp::HistogramAggregation;
    let receiver = Receiver::start("");
    let registry = Registry::new();
    let latency = registry
        .histogram(
            Opts::new("llm_latency_seconds", "LLM latency.").unit(Unit::SECONDS),
            Buckets::gen_ai_operation_duration(),
        )
        .unwrap();
    let tokens = registry
        .histogram(
            Opts::new("tokens", "Tokens."),
            Buckets::new([100.0, 1000.0]),
        )
        .unwrap();
    const N: usize = 5_000;
    latencies(N).for_each(|v| latency.record(v));
    tokens.record(250.0);
    runtime().block_on(async {
        let exporter = OtlpExporter::builder()
            .registry(&registry)
            .endpoint(receiver.endpoint())
            .interval(Duration::from_secs(3600))
            .histogram_aggregation(HistogramAggregation::base2_exponential())
            .histogram_aggregation_for("tokens", HistogramAggregation::ExplicitBucket)
            .spawn()
            .unwrap();
        exporter.force_flush().await.unwrap();
    });
    let request = &receiver.wait_for(1, Duration::from_secs(10))[0];
    assert_eq!(
        int(&metric(request, "tokens")["histogram"]["data_points"][0]["count"]),
        1
    );

    let exp = &metric(request, "llm_latency_seconds")["exponential_histogram"];
    assert_eq!(
        exp["aggregation_temporality"],
        "AGGREGATION_TEMPORALITY_CUMULATIVE"
    );
    let point = &exp["data_points"][0];
    let (offset, counts) = exponential_counts(point);
    let scale = point["scale"].as_i64().unwrap_or(0);
    let zero = point.get("zero_count").map_or(0, int);
    assert_eq!(int(&point["count"]), N as u64);
    assert_eq!(counts.iter().sum::<u64>() + zero, N as u64, "bucket totals");
    assert!(
        counts.len() <= 160 && (0..=8).contains(&scale),
        "{} buckets at scale {scale}",
        counts.len()
    );
    let exact_sum: f64 = latencies(N).sum();
    assert!((point["sum"].as_f64().unwrap() - exact_sum).abs() < 1e-9 * exact_sum);
    let (min, max) = latencies(N).fold((f64::MAX, 0f64), |(a, b), v| (a.min(v), b.max(v)));
    assert_eq!(
        (point["min"].as_f64(), point["max"].as_f64()),
        (Some(min), Some(max))
    );
    // Each value sits in bucket i: (base^i, base^(i+1)], but for values within
    // 0.4 % of a boundary (the HDR sub-bucket's half width).
    let base = 2f64.powf(2f64.powi(-(scale as i32)));
    let mut expected = vec![0u64; counts.len()];
    for v in latencies(N) {
        let i = (v.log2() * 2f64.powi(scale as i32)).ceil() as i64 - 1 - offset;
        expected[i as usize] += 1;
    }
    let misplaced: u64 = counts
        .iter()
        .zip(&expected)
        .map(|(a, b)| a.abs_diff(*b))
        .sum::<u64>()
        / 2;
    let near_boundary = latencies(N)
        .filter(|v| {
            let x = v.log2() * 2f64.powi(scale as i32);
            let boundary = base.powf(x.round());
            ((v - boundary) / v).abs() <= 1.0 / 256.0
        })
        .count() as u64;
    assert!(
        misplaced <= near_boundary,
        "{misplaced} misplaced, {near_boundary} near a boundary"
    );
}

#[test]
fn delta_exponential_histograms_carry_only_the_new_observations() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    use beluga_exporter_otlp::HistogramAggregation;
    let receiver = Receiver::start("");
    let registry = Registry::new();
    let latency = registry
        .histogram(
            Opts::new("step_seconds", "Steps.").unit(Unit::SECONDS),
            Buckets::default(),
        )
        .unwrap();
    runtime().block_on(async {
        let exporter = OtlpExporter::builder()
            .registry(&registry)
            .endpoint(receiver.endpoint())
            .interval(Duration::from_secs(3600))
            .temporality(Temporality::Delta)
            .histogram_aggregation(HistogramAggregation::Base2Exponential {
                max_size: 20,
                max_scale: 20,
            })
            .spawn()
            .unwrap();
        latencies(1_000).for_each(|v| latency.record(v / 10.0));
        exporter.force_flush().await.unwrap();
        latencies(300).for_each(|v| latency.record(v * 2.0)); // a wider range: the scale drops
        exporter.force_flush().await.unwrap();
    });
    let requests = receiver.wait_for(2, Duration::from_secs(10));
    let point = |i: usize| {
        metric(&requests[i], "step_seconds")["exponential_histogram"]["data_points"][0].clone()
    };
    let (first, second) = (point(0), point(1));
    assert_eq!(int(&first["count"]), 1_000);
    assert_eq!(int(&second["count"]), 300);
    let (_, counts) = exponential_counts(&second);
    assert_eq!(
        counts.iter().sum::<u64>() + second.get("zero_count").map_or(0, int),
        300
    );
    assert!(counts.len() <= 20);
    assert!(second["scale"].as_i64().unwrap_or(0) <= first["scale"].as_i64().unwrap_or(0));
    let sum: f64 = latencies(300).map(|v| v * 2.0).sum();
    assert!((second["sum"].as_f64().unwrap() - sum).abs() < 1e-9 * sum);
    assert!(
        second.get("min").is_none(),
        "min/max only with cumulative points"
    );
}

#[test]
fn exemplars_ride_on_their_data_points() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    use beluga_metrics::Exemplar;
    let receiver = Receiver::start("");
    let registry = Registry::new();
    let latency = registry
        .histogram(
            Opts::new("llm_call_seconds", "LLM calls."),
            Buckets::new([0.5, 1.0]),
        )
        .unwrap();
    let errors = registry
        .counter(Opts::new("llm_errors_total", "Errors."))
        .unwrap();
    let labels = [("tenant", "acme")];
    latency
        .record_with_exemplar(0.2, &Exemplar::new([1; 16], [2; 8]))
        .unwrap();
    latency
        .record_with_exemplar(0.8, &Exemplar::new([0xab; 16], [0xcd; 8]).labels(&labels))
        .unwrap();
    latency.record(0.9); // no exemplar
    errors
        .add_with_exemplar(3, &Exemplar::new([7; 16], [8; 8]))
        .unwrap();
    runtime().block_on(async {
        let exporter = OtlpExporter::builder()
            .registry(&registry)
            .endpoint(receiver.endpoint())
            .interval(Duration::from_secs(3600))
            .spawn()
            .unwrap();
        exporter.force_flush().await.unwrap();
    });
    let request = &receiver.wait_for(1, Duration::from_secs(10))[0];
    // proto3 JSON carries bytes as base64.
    let b64 = |bytes: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let point = &metric(request, "llm_call_seconds")["histogram"]["data_points"][0];
    let exemplars = point["exemplars"]
        .as_array()
        .expect("exemplars on the point");
    assert_eq!(exemplars.len(), 1, "the latest one: {exemplars:?}");
    let e = &exemplars[0];
    assert_eq!(e["trace_id"], b64(&[0xab; 16]));
    assert_eq!(e["span_id"], b64(&[0xcd; 8]));
    assert_eq!(e["as_double"], 0.8);
    assert_eq!(
        attribute_of(&e["filtered_attributes"], "tenant").as_deref(),
        Some("acme")
    );
    let at = int(&e["time_unix_nano"]);
    assert!(at > 0 && at <= int(&point["time_unix_nano"]));
    let counter_point = &metric(request, "llm_errors")["sum"]["data_points"][0];
    let e = &counter_point["exemplars"][0];
    assert_eq!(e["trace_id"], b64(&[7; 16]));
    assert_eq!(e["as_double"], 3.0);
}

fn attribute_of(attributes: &serde_json::Value, key: &str) -> Option<String> {
    attributes
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)
        .and_then(|kv| kv["value"]["string_value"].as_str().map(String::from))
}

#[test]
fn one_histogram_can_go_in_both_forms() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    use beluga_exporter_otlp::HistogramAggregation;
    let receiver = Receiver::start("");
    let registry = Registry::new();
    let latency = registry
        .histogram(
            Opts::new("llm_latency_seconds", "LLM latency."),
            Buckets::new([0.1, 1.0]),
        )
        .unwrap();
    latencies(500).for_each(|v| latency.record(v));
    latency
        .record_with_exemplar(0.5, &beluga_metrics::Exemplar::new([5; 16], [6; 8]))
        .unwrap();
    runtime().block_on(async {
        let exporter = OtlpExporter::builder()
            .registry(&registry)
            .endpoint(receiver.endpoint())
            .interval(Duration::from_secs(3600))
            .histogram_exponential_copy(
                "llm_latency_seconds",
                "llm_latency_seconds.exponential",
                HistogramAggregation::Base2Exponential {
                    max_size: 40,
                    max_scale: 20,
                },
            )
            .spawn()
            .unwrap();
        exporter.force_flush().await.unwrap();
    });
    let request = &receiver.wait_for(1, Duration::from_secs(10))[0];
    let explicit = &metric(request, "llm_latency_seconds")["histogram"]["data_points"][0];
    assert_eq!(int(&explicit["count"]), 501);
    let copy = metric(request, "llm_latency_seconds.exponential");
    assert_eq!(copy["description"], "LLM latency.");
    let point = &copy["exponential_histogram"]["data_points"][0];
    let (_, counts) = exponential_counts(point);
    assert_eq!(int(&point["count"]), 501);
    assert_eq!(
        counts.iter().sum::<u64>() + point.get("zero_count").map_or(0, int),
        501
    );
    assert!(counts.len() <= 40);
    assert_eq!(point["exemplars"].as_array().map(Vec::len), Some(1));
    assert_eq!(explicit["exemplars"].as_array().map(Vec::len), Some(1));
}
