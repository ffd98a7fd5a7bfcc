//! OTLP over gRPC against a real gRPC receiver written with the Python
//! `grpcio` and `opentelemetry-proto` packages, faults included.
#![cfg(feature = "grpc")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beluga_exporter_otlp::{Compression, ExportError, OtlpExporter, Protocol, Temporality};
use beluga_metrics::{Buckets, Opts, Registry};
use common::{int, metric, GrpcReceiver};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn registry() -> Registry {
    let r = Registry::new();
    r.counter_family(Opts::new("grpc_calls_total", "Calls.").labels(["model"]))
        .unwrap()
        .with_labels(&["gpt-4o"])
        .unwrap()
        .add(7);
    let h = r
        .histogram(
            Opts::new("grpc_latency_seconds", "Latency."),
            Buckets::new([0.1, 1.0]),
        )
        .unwrap();
    for v in [0.05, 0.5, 2.0] {
        h.record(v);
    }
    r
}

fn grpc(endpoint: String, registry: &Registry) -> beluga_exporter_otlp::OtlpExporterBuilder {
    OtlpExporter::builder()
        .registry(registry)
        .protocol(Protocol::Grpc)
        .endpoint(endpoint)
        .interval(Duration::from_secs(3600))
        .timeout(Duration::from_millis(500))
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(200))
}

#[test]
fn values_headers_and_gzip_reach_a_grpc_receiver() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let receiver = GrpcReceiver::start("");
    let registry = registry();
    runtime().block_on(async {
        let exporter = grpc(receiver.endpoint(), &registry)
            .header("authorization", "Bearer grpc-secret")
            .compression(Compression::Gzip)
            .spawn()
            .unwrap();
        exporter.force_flush().await.unwrap();
        exporter.shutdown(Duration::from_secs(5)).await.unwrap();
    });
    let request = &receiver.wait_for(1, Duration::from_secs(10))[0];
    assert_eq!(request["metadata"]["authorization"], "Bearer grpc-secret");
    let calls = metric(request, "grpc_calls");
    assert_eq!(int(&calls["sum"]["data_points"][0]["as_int"]), 7);
    let latency = &metric(request, "grpc_latency_seconds")["histogram"]["data_points"][0];
    assert_eq!(int(&latency["count"]), 3);
    let counts: Vec<u64> = latency["bucket_counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(int)
        .collect();
    assert_eq!(counts, [1, 1, 1]);
}

#[test]
fn unavailable_is_retried_and_invalid_argument_is_not() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let registry = registry();
    let rt = runtime();
    let retried = GrpcReceiver::start("unavailable,unavailable,ok");
    rt.block_on(async {
        let exporter = grpc(retried.endpoint(), &registry).spawn().unwrap();
        exporter.force_flush().await.unwrap();
    });
    assert_eq!(retried.requests().len(), 3);

    let refused = GrpcReceiver::start("invalid");
    let error = rt.block_on(async {
        let exporter = grpc(refused.endpoint(), &registry).spawn().unwrap();
        exporter.force_flush().await.unwrap_err()
    });
    assert!(
        matches!(&error, ExportError::RejectedGrpc { code, .. } if code == "InvalidArgument"),
        "{error:?}"
    );
    assert_eq!(refused.requests().len(), 1, "not retried");
}

#[test]
fn resource_exhausted_is_retried_only_with_retry_info_and_waits_as_told() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let registry = registry();
    let rt = runtime();
    let bare = GrpcReceiver::start("exhausted");
    let error = rt.block_on(async {
        let exporter = grpc(bare.endpoint(), &registry).spawn().unwrap();
        exporter.force_flush().await.unwrap_err()
    });
    assert!(
        matches!(&error, ExportError::RejectedGrpc { code, .. } if code == "ResourceExhausted"),
        "{error:?}"
    );
    assert_eq!(bare.requests().len(), 1);

    let told = GrpcReceiver::start("exhausted_retry:1,ok");
    rt.block_on(async {
        let exporter = grpc(told.endpoint(), &registry)
            // The budget of one export is the interval; RetryInfo asks for 1 s.
            .interval(Duration::from_secs(5))
            .spawn()
            .unwrap();
        exporter.force_flush().await.unwrap();
    });
    let requests = told.requests();
    assert_eq!(requests.len(), 2);
    let waited =
        requests[1]["received_at"].as_f64().unwrap() - requests[0]["received_at"].as_f64().unwrap();
    assert!(
        waited >= 0.9,
        "retried after {waited} s, RetryInfo said 1 s"
    );
}

/// A collector's `RetryInfo` can name any delay: the largest (`i64::MAX`
/// seconds) ends the export with an error (never a panic in the exporter's
/// task, which goes on exporting), a delay of zero waits the exporter's
/// own backoff instead of turning retries into a flood.
#[test]
fn retry_info_from_the_collector_is_bounded_both_ways() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let registry = registry();
    let rt = runtime();
    let largest = GrpcReceiver::start("unavailable_retry:MAX,ok");
    let exporter = rt.block_on(async {
        grpc(largest.endpoint(), &registry)
            .interval(Duration::from_secs(5))
            .spawn()
            .unwrap()
    });
    let first = rt.block_on(exporter.force_flush());
    assert!(
        matches!(&first, Err(ExportError::Unreachable { attempts: 1, last }) if last.contains("Unavailable")),
        "{first:?}"
    );
    rt.block_on(exporter.force_flush())
        .expect("the exporter goes on after the largest RetryInfo");
    assert_eq!(largest.requests().len(), 2);

    let zero = GrpcReceiver::start(&vec!["unavailable_retry:0"; 200].join(","));
    let result = rt.block_on(async {
        let exporter = grpc(zero.endpoint(), &registry)
            // The retry budget of one export is its interval: 2 s.
            .interval(Duration::from_secs(2))
            .spawn()
            .unwrap();
        exporter.force_flush().await
    });
    assert!(result.is_err(), "{result:?}");
    // Backoff 50 ms doubling to 200 ms, jitter at least 0.5: at most about
    // 25 calls in 2 s.
    let calls = zero.requests().len();
    assert!((3..=30).contains(&calls), "{calls} calls in 2 s");
}

/// A collector that accepts an export and answers with more than the
/// client reads (a 100 KB `partial_success` message): the export was
/// delivered, so it is not sent again, and delta totals stay exact.
#[test]
fn an_answer_over_the_cap_is_delivery_and_deltas_stay_exact() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let receiver = GrpcReceiver::start("big_partial:100000,big_partial:100000");
    let registry = Registry::new();
    let calls = registry
        .counter(Opts::new("delta_calls_total", "Calls."))
        .unwrap();
    let rt = runtime();
    let exporter = rt.block_on(async {
        grpc(receiver.endpoint(), &registry)
            .temporality(Temporality::Delta)
            .interval(Duration::from_secs(5))
            .spawn()
            .unwrap()
    });
    calls.add(7);
    rt.block_on(exporter.force_flush()).unwrap();
    calls.add(5);
    rt.block_on(exporter.force_flush()).unwrap();
    rt.block_on(exporter.shutdown(Duration::from_secs(5)))
        .unwrap();
    let requests = receiver.requests();
    let deltas: Vec<u64> = requests
        .iter()
        .map(|request| {
            metrics_named(request, "delta_calls")
                .map_or(0, |m| int(&m["sum"]["data_points"][0]["as_int"]))
        })
        .collect();
    assert_eq!(deltas.iter().sum::<u64>(), 12, "{deltas:?}");
    assert_eq!(&deltas[..2], [7, 5], "each export sent once");
}

/// The metric `name` in a request, if it is there (a delta export leaves
/// out a counter that did not change).
fn metrics_named(request: &serde_json::Value, name: &str) -> Option<serde_json::Value> {
    common::metrics(request)
        .into_iter()
        .find(|m| m["name"] == name)
}

#[test]
fn a_hanging_call_times_out_and_the_retry_delivers() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let receiver = GrpcReceiver::start("hang,ok");
    let registry = registry();
    let started = Instant::now();
    runtime().block_on(async {
        let exporter = grpc(receiver.endpoint(), &registry)
            .interval(Duration::from_secs(5))
            .spawn()
            .unwrap();
        exporter.force_flush().await.unwrap();
    });
    assert_eq!(receiver.requests().len(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "the first call waited out its timeout"
    );
}

#[test]
fn partial_success_is_reported_and_counted() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let receiver = GrpcReceiver::start("partial:2");
    let registry = registry();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let errors = seen.clone();
    runtime().block_on(async {
        let exporter = grpc(receiver.endpoint(), &registry)
            .on_error(move |e| errors.lock().unwrap().push(e.clone()))
            .spawn()
            .unwrap();
        exporter.force_flush().await.unwrap();
    });
    assert!(seen.lock().unwrap().iter().any(|e| matches!(
        e,
        ExportError::PartialSuccess {
            rejected_data_points: 2,
            ..
        }
    )));
    let text = registry.encode(beluga_metrics::Format::PrometheusText);
    assert!(
        text.contains("beluga_otlp_rejected_data_points_total 2\n"),
        "{text}"
    );
}

#[test]
fn a_receiver_down_at_start_gets_the_totals_once_up_and_shutdown_keeps_its_deadline() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let port = common::shared::free_port();
    let registry = registry();
    let rt = runtime();
    let exporter = rt.block_on(async {
        grpc(format!("http://127.0.0.1:{port}"), &registry)
            .interval(Duration::from_secs(1))
            .spawn()
            .unwrap()
    });
    let first = rt.block_on(exporter.force_flush());
    assert!(
        matches!(
            first,
            Err(ExportError::Unreachable { .. } | ExportError::DeadlineExceeded { .. })
        ),
        "{first:?}"
    );
    let receiver = GrpcReceiver::start_on(port, "");
    rt.block_on(exporter.force_flush()).unwrap();
    let last = receiver.requests().pop().unwrap();
    assert_eq!(
        int(&metric(&last, "grpc_calls")["sum"]["data_points"][0]["as_int"]),
        7
    );
    drop(receiver);

    // A receiver that never answers: shutdown returns at its deadline.
    let hanging = GrpcReceiver::start("hang,hang,hang,hang,hang,hang,hang,hang");
    let exporter = rt.block_on(async {
        grpc(hanging.endpoint(), &registry)
            .timeout(Duration::from_secs(10))
            .spawn()
            .unwrap()
    });
    let started = Instant::now();
    let result = rt.block_on(exporter.shutdown(Duration::from_secs(1)));
    assert!(result.is_err());
    assert!(
        started.elapsed() < Duration::from_millis(1_800),
        "{:?}",
        started.elapsed()
    );
    rt.shutdown_timeout(Duration::from_millis(100));
}
