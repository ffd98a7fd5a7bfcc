//! Push mode against a real Pushgateway, then into a real Prometheus.
#![cfg(feature = "push-gateway")]

mod common;

use std::time::Duration;

use beluga_exporter_prometheus::{PushError, PushGateway};
use beluga_metrics::{Opts, Registry};
use common::{free_port, get, value_of, Prometheus, Pushgateway};

fn batch_registry() -> (Registry, beluga_metrics::Counter) {
    let registry = Registry::new();
    let processed = registry
        .counter(Opts::new(
            "batch_items_processed_total",
            "Items the batch job processed.",
        ))
        .unwrap();
    processed.add(42);
    (registry, processed)
}

#[test]
fn pushed_values_reach_the_gateway_and_prometheus() {
    beluga_test_support::require!(
        beluga_test_support::External::Pushgateway,
        beluga_test_support::External::Prometheus
    );
    let gateway = Pushgateway::start();
    let (registry, _) = batch_registry();
    let client = PushGateway::builder(format!("http://{}", gateway.addr), "nightly_batch")
        .grouping_label("instance", "worker/1")
        .registry(&registry)
        .build()
        .unwrap();
    client.push_blocking().unwrap();

    let on_gateway = get(gateway.addr, "/metrics", &[]).text();
    assert!(
        on_gateway
            .contains(r#"batch_items_processed_total{instance="worker/1",job="nightly_batch"} 42"#),
        "{on_gateway}"
    );

    let prometheus = Prometheus::start(&format!(
        "  - job_name: pushgateway\n    honor_labels: true\n    static_configs: [{{targets: ['{}']}}]\n",
        gateway.addr
    ));
    let series = prometheus.wait_for(
        r#"batch_items_processed_total{job="nightly_batch",instance="worker/1"}"#,
        Duration::from_secs(60),
    );
    assert_eq!(value_of(&series[0]), 42.0);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(client.delete()).unwrap();
    let after = get(gateway.addr, "/metrics", &[]).text();
    assert!(!after.contains("batch_items_processed_total{"), "{after}");
}

#[test]
fn refused_pushes_are_not_retried_and_unreachable_gateways_are_retried() {
    beluga_test_support::require!(beluga_test_support::External::Pushgateway);
    let gateway = Pushgateway::start();
    let (registry, _) = batch_registry();
    let bad = PushGateway::builder(format!("http://{}", gateway.addr), "j")
        .grouping_label("not-a-label-name", "x")
        .registry(&registry)
        .build()
        .unwrap();
    match bad.push_blocking() {
        Err(PushError::Rejected { status, .. }) => assert_eq!(status, 400),
        other => panic!("expected a 400 rejection, got {other:?}"),
    }

    let closed = free_port();
    let unreachable = PushGateway::builder(format!("http://127.0.0.1:{closed}"), "j")
        .registry(&registry)
        .retries(2)
        .backoff(Duration::from_millis(10))
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    match unreachable.push_blocking() {
        Err(PushError::Unavailable { attempts, last }) => {
            assert_eq!(attempts, 3);
            assert!(last.contains("connect"), "{last}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[test]
fn periodic_push_makes_a_final_push_on_shutdown() {
    beluga_test_support::require!(beluga_test_support::External::Pushgateway);
    let gateway = Pushgateway::start();
    let (registry, processed) = batch_registry();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let periodic = PushGateway::builder(format!("http://{}", gateway.addr), "short_job")
            .registry(&registry)
            .build()
            .unwrap()
            .spawn_periodic(Duration::from_secs(3600));
        // The first tick pushes at once; then the job does more work.
        processed.add(58);
        periodic.shutdown(Duration::from_secs(5)).await.unwrap();
    });
    let on_gateway = get(gateway.addr, "/metrics", &[]).text();
    assert!(
        on_gateway.contains(r#"batch_items_processed_total{instance="",job="short_job"} 100"#),
        "{on_gateway}"
    );
}

/// The test fixtures start servers on ports chosen beforehand; another
/// test's server may take one first. The fixture must then see its own
/// server exit, and must not take the other one, which answers on that
/// port, for its own.
#[test]
fn a_gateway_whose_port_is_taken_exits_and_is_not_mistaken_for_the_one_there() {
    beluga_test_support::require!(beluga_test_support::External::Pushgateway);
    let first = Pushgateway::start();
    match Pushgateway::start_on(first.addr.port()) {
        Ok(_) => panic!("a second Pushgateway on a taken port was taken for ready"),
        Err(log) => assert!(log.contains("address already in use"), "{log}"),
    }
    // The first one still serves.
    assert_eq!(get(first.addr, "/-/ready", &[]).status, 200);
}
