//! The standard OTEL_* environment variables are honoured, and builder
//! values win over them. (Its own test binary: these tests change the
//! process environment, one at a time.)

mod common;

use std::sync::Mutex;
use std::time::Duration;

use beluga_exporter_otlp::OtlpExporter;
use beluga_metrics::{Opts, Registry};
use common::{resource_attribute, Receiver};

static ENV: Mutex<()> = Mutex::new(());

/// Runs `f` with `vars` set, restoring the environment afterwards.
fn with_env<T>(vars: &[(&str, &str)], f: impl FnOnce() -> T) -> T {
    let _lock = ENV.lock().unwrap_or_else(|p| p.into_inner());
    for (k, v) in vars {
        std::env::set_var(k, v);
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    for (k, _) in vars {
        std::env::remove_var(k);
    }
    result.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

fn registry() -> Registry {
    let r = Registry::new();
    r.counter(Opts::new("env_test_total", "x")).unwrap().inc();
    r
}

fn flush_once(builder: beluga_exporter_otlp::OtlpExporterBuilder) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let exporter = builder.spawn().unwrap();
        exporter.force_flush().await.unwrap();
    });
}

#[test]
fn endpoint_from_the_environment() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let receiver = Receiver::start("");
    with_env(
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint())],
        || {
            flush_once(OtlpExporter::builder().registry(&registry()));
        },
    );
    assert_eq!(receiver.requests()[0]["path"], "/v1/metrics");

    let signal_specific = format!("{}/custom/metrics", receiver.endpoint());
    with_env(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &signal_specific),
        ],
        || flush_once(OtlpExporter::builder().registry(&registry())),
    );
    assert_eq!(
        receiver.requests()[1]["path"],
        "/custom/metrics",
        "used as is, no /v1/metrics added"
    );
}

#[test]
fn headers_from_the_environment() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let receiver = Receiver::start("");
    with_env(
        &[(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-api-key=abc%20def,x-tenant=env",
        )],
        || {
            flush_once(
                OtlpExporter::builder()
                    .registry(&registry())
                    .endpoint(receiver.endpoint())
                    .header("x-tenant", "builder"),
            );
        },
    );
    let headers = &receiver.requests()[0]["headers"];
    assert_eq!(headers["x-api-key"], "abc def", "percent-decoded");
    assert_eq!(headers["x-tenant"], "builder", "the builder wins");
}

#[test]
fn interval_from_the_environment() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let receiver = Receiver::start("");
    let interval = with_env(&[("OTEL_METRIC_EXPORT_INTERVAL", "200")], || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let registry = registry();
        let exporter = rt.block_on(async {
            OtlpExporter::builder()
                .registry(&registry)
                .endpoint(receiver.endpoint())
                .spawn()
                .unwrap()
        });
        let interval = exporter.interval();
        // Periodic exports arrive without any flush.
        receiver.wait_for(2, Duration::from_secs(10));
        drop(exporter);
        interval
    });
    assert_eq!(interval, Duration::from_millis(200));
    let builder_wins = with_env(&[("OTEL_METRIC_EXPORT_INTERVAL", "200")], || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            OtlpExporter::builder()
                .registry(&registry())
                .endpoint(receiver.endpoint())
                .interval(Duration::from_secs(7))
                .spawn()
                .unwrap()
                .interval()
        })
    });
    assert_eq!(builder_wins, Duration::from_secs(7));
}

#[test]
fn service_name_and_resource_attributes_from_the_environment() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let receiver = Receiver::start("");
    with_env(
        &[
            ("OTEL_SERVICE_NAME", "env-service"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=staging,service.name=ignored",
            ),
        ],
        || {
            flush_once(
                OtlpExporter::builder()
                    .registry(&registry())
                    .endpoint(receiver.endpoint()),
            );
            flush_once(
                OtlpExporter::builder()
                    .registry(&registry())
                    .endpoint(receiver.endpoint())
                    .service_name("builder-service"),
            );
        },
    );
    let requests = receiver.requests();
    assert_eq!(
        resource_attribute(&requests[0], "service.name").as_deref(),
        Some("env-service")
    );
    assert_eq!(
        resource_attribute(&requests[0], "deployment.environment").as_deref(),
        Some("staging")
    );
    assert_eq!(
        resource_attribute(&requests[1], "service.name").as_deref(),
        Some("builder-service")
    );
}

#[test]
fn timeout_and_compression_from_the_environment() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    // Two requests that never get an answer, then one that does: with a
    // 300 ms request timeout from the environment, the flush gets through.
    let receiver = Receiver::start("hang,hang,200");
    let started = std::time::Instant::now();
    with_env(
        &[
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "300"),
        ],
        || {
            flush_once(
                OtlpExporter::builder()
                    .registry(&registry())
                    .endpoint(receiver.endpoint())
                    .interval(Duration::from_secs(5))
                    .retry_backoff(Duration::from_millis(10), Duration::from_millis(10)),
            )
        },
    );
    let took = started.elapsed();
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[2]["headers"]["content-encoding"], "gzip");
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

#[test]
fn histogram_aggregation_from_the_environment() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let receiver = Receiver::start("");
    let registry = Registry::new();
    registry
        .histogram(
            Opts::new("env_latency", "x"),
            beluga_metrics::Buckets::default(),
        )
        .unwrap()
        .record(0.25);
    const KEY: &str = "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION";
    with_env(&[(KEY, "base2_exponential_bucket_histogram")], || {
        flush_once(
            OtlpExporter::builder()
                .registry(&registry)
                .endpoint(receiver.endpoint()),
        );
    });
    let request = &receiver.requests()[0];
    let latency = common::metric(request, "env_latency");
    assert_eq!(
        common::int(&latency["exponential_histogram"]["data_points"][0]["count"]),
        1
    );

    let refused = with_env(&[(KEY, "sparse_histogram")], || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            OtlpExporter::builder()
                .registry(&registry)
                .endpoint(receiver.endpoint())
                .spawn()
                .err()
        })
    });
    let message = refused
        .expect("an unknown aggregation is refused")
        .to_string();
    assert!(
        message.contains(KEY) && message.contains("sparse_histogram"),
        "{message}"
    );
}

#[test]
fn temporality_export_timeout_and_sdk_disabled_from_the_environment() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let receiver = Receiver::start("");
    with_env(
        &[("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")],
        || {
            flush_once(
                OtlpExporter::builder()
                    .registry(&registry())
                    .endpoint(receiver.endpoint()),
            );
        },
    );
    let sum = &common::metric(&receiver.requests()[0], "env_test")["sum"];
    assert_eq!(
        sum["aggregation_temporality"],
        "AGGREGATION_TEMPORALITY_DELTA"
    );

    // Disabled: the export succeeds and sends nothing.
    let quiet = Receiver::start("");
    with_env(&[("OTEL_SDK_DISABLED", "true")], || {
        flush_once(
            OtlpExporter::builder()
                .registry(&registry())
                .endpoint(quiet.endpoint()),
        );
    });
    assert!(quiet.requests().is_empty());

    // A collector that never answers: the export gives up at the export
    // timeout (300 ms), not at the request timeout (10 s) or the interval.
    let hanging = Receiver::start("hang,hang,hang,hang");
    let took = with_env(&[("OTEL_METRIC_EXPORT_TIMEOUT", "300")], || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let exporter = OtlpExporter::builder()
                .registry(&registry())
                .endpoint(hanging.endpoint())
                .interval(Duration::from_secs(60))
                .spawn()
                .unwrap();
            let started = std::time::Instant::now();
            let result = exporter.force_flush().await;
            assert!(result.is_err(), "{result:?}");
            started.elapsed()
        })
    });
    assert!(took < Duration::from_secs(2), "{took:?}");
}
