//! Remote write into a real Prometheus 2.42 started with
//! `--web.enable-remote-write-receiver`: the stored totals equal the
//! process's, also across a receiver restart mid-run, and what the queue
//! had to drop is counted.
#![cfg(feature = "remote-write")]

mod common;

use std::time::Duration;

use beluga_exporter_prometheus::{RemoteWriteBuilder, RemoteWriteError};
use beluga_metrics::{Buckets, Opts, Registry};
use common::{value_of, Prometheus};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

const RECEIVER: &str = "--web.enable-remote-write-receiver";

fn total(prometheus: &Prometheus, expr: &str) -> Option<f64> {
    prometheus.query(expr).first().map(value_of)
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn wait_total(prometheus: &Prometheus, expr: &str, want: f64) {
    common::poll(
        &format!("{expr} == {want}"),
        Duration::from_secs(60),
        || (total(prometheus, expr) == Some(want)).then_some(()),
    );
}

#[test]
fn totals_survive_a_receiver_restart() {
    beluga_test_support::require!(beluga_test_support::External::Prometheus);
    let mut prometheus = Prometheus::start_with("  []\n", &[RECEIVER]);
    let registry = Registry::new();
    let requests = registry
        .counter_family(Opts::new("rw_requests_total", "Requests.").labels(["model"]))
        .unwrap();
    let latency = registry
        .histogram(
            Opts::new("rw_latency_seconds", "Latency."),
            Buckets::new([0.1, 1.0]),
        )
        .unwrap();
    let rt = runtime();
    let writer = rt.block_on(async {
        RemoteWriteBuilder::new(format!("http://{}/api/v1/write", prometheus.addr))
            .registry(&registry)
            .external_label("job", "agent")
            .external_label("instance", "worker-1")
            .interval(Duration::from_millis(200))
            .retry_backoff(Duration::from_millis(20), Duration::from_millis(100))
            .spawn()
            .unwrap()
    });
    requests.with_labels(&["gpt-4o"]).unwrap().add(100);
    latency.record(0.05);
    wait_total(
        &prometheus,
        "sum(rw_requests_total{job=\"agent\",instance=\"worker-1\"})",
        100.0,
    );
    wait_total(
        &prometheus,
        "sum(rw_latency_seconds_bucket{le=\"0.1\"})",
        1.0,
    );

    // The receiver goes away; the worker keeps recording.
    prometheus.stop();
    requests.with_labels(&["gpt-4o"]).unwrap().add(50);
    requests.with_labels(&["claude"]).unwrap().add(7);
    latency.record(3.0);
    // Readings pile up in the queue while nothing can be delivered.
    common::poll("readings to queue up", Duration::from_secs(30), || {
        (writer.samples_queued() >= 3 * 8).then_some(())
    });
    let while_down = unix_now();
    prometheus.restart();
    wait_total(&prometheus, "sum(rw_requests_total)", 157.0);
    // The readings taken while the receiver was down were delivered, not
    // just the next one: at a moment before the restart, Prometheus now has
    // the totals recorded after the stop.
    assert_eq!(
        prometheus
            .query_at("sum(rw_requests_total)", while_down)
            .first()
            .map(value_of),
        Some(157.0)
    );
    wait_total(&prometheus, "rw_latency_seconds_count", 2.0);
    wait_total(
        &prometheus,
        "sum(rw_latency_seconds_bucket{le=\"+Inf\"})",
        2.0,
    );
    assert_eq!(
        writer.samples_dropped(),
        0,
        "the queue bound was not reached"
    );
    assert_eq!(writer.samples_failed(), 0);

    requests.with_labels(&["claude"]).unwrap().add(1);
    rt.block_on(writer.shutdown(Duration::from_secs(5)))
        .unwrap();
    wait_total(&prometheus, "sum(rw_requests_total)", 158.0);
}

#[test]
fn a_full_queue_drops_the_oldest_batches_and_counts_them() {
    beluga_test_support::require!(beluga_test_support::External::Prometheus);
    let mut prometheus = Prometheus::start_with("  []\n", &[RECEIVER]);
    let registry = Registry::new();
    let jobs = registry
        .counter(Opts::new("rw_jobs_total", "Jobs."))
        .unwrap();
    let rt = runtime();
    prometheus.stop();
    let writer = rt.block_on(async {
        RemoteWriteBuilder::new(format!("http://{}/api/v1/write", prometheus.addr))
            .registry(&registry)
            .interval(Duration::from_millis(100))
            .retry_backoff(Duration::from_millis(10), Duration::from_millis(50))
            // Room for about two readings of this registry.
            .max_queued_samples(8)
            .spawn()
            .unwrap()
    });
    jobs.add(42);
    common::poll("batches to be dropped", Duration::from_secs(30), || {
        (writer.samples_dropped() > 0).then_some(())
    });
    prometheus.restart();
    // Dropped batches lose resolution, not totals.
    wait_total(&prometheus, "rw_jobs_total", 42.0);
    let text = registry.encode(beluga_metrics::Format::PrometheusText);
    assert!(
        text.contains("beluga_remote_write_samples_total{outcome=\"dropped\"} "),
        "{text}"
    );
    rt.block_on(writer.shutdown(Duration::from_secs(5)))
        .unwrap();
}

#[test]
fn a_refusing_receiver_is_not_retried_and_shutdown_reports_what_is_left() {
    beluga_test_support::require!(beluga_test_support::External::Prometheus);
    let rt = runtime();
    // Prometheus without the receiver flag answers 404 on the write path.
    let prometheus = Prometheus::start_with("  []\n", &[]);
    let registry = Registry::new();
    registry
        .counter(Opts::new("rw_refused_total", "x"))
        .unwrap()
        .inc();
    let writer = rt.block_on(async {
        RemoteWriteBuilder::new(format!("http://{}/api/v1/write", prometheus.addr))
            .registry(&registry)
            .interval(Duration::from_millis(100))
            .spawn()
            .unwrap()
    });
    common::poll(
        "refused samples to be counted",
        Duration::from_secs(30),
        || (writer.samples_failed() > 0).then_some(()),
    );
    assert_eq!(writer.samples_sent(), 0);
    assert_eq!(
        writer.samples_dropped(),
        0,
        "refused batches are not kept to be dropped later"
    );
    // Everything was refused: shutdown says so, with the count.
    let failed = writer.samples_failed();
    let result = rt.block_on(writer.shutdown(Duration::from_secs(2)));
    match result {
        Err(RemoteWriteError::Rejected { samples, last }) => {
            assert!(samples >= failed, "{samples} < {failed}");
            assert!(last.contains("404"), "{last}");
        }
        other => panic!("a receiver refusing everything: {other:?}"),
    }

    // Nothing listening at all: shutdown gives up at its deadline and says
    // how many samples were left.
    let port = common::free_port();
    let writer = rt.block_on(async {
        RemoteWriteBuilder::new(format!("http://127.0.0.1:{port}/api/v1/write"))
            .registry(&registry)
            .interval(Duration::from_secs(3600))
            .spawn()
            .unwrap()
    });
    let started = std::time::Instant::now();
    let result = rt.block_on(writer.shutdown(Duration::from_millis(500)));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(result, Err(RemoteWriteError::Undelivered { samples, .. }) if samples > 0),
        "{result:?}"
    );

    let bad = RemoteWriteBuilder::new("http://127.0.0.1:1/w").external_label("__x", "y");
    let refused = rt.block_on(async { bad.spawn() });
    assert!(matches!(
        refused,
        Err(RemoteWriteError::InvalidLabel { .. })
    ));
}

#[test]
fn server_errors_and_429_are_retried_and_keep_the_reading_a_400_is_not() {
    use common::{FakePeer, Misbehaviour};
    use std::sync::atomic::Ordering::SeqCst;
    let rt = runtime();
    // A registry per writer: the self-metric counts per registry.
    let fresh = || {
        let registry = Registry::new();
        registry
            .counter(Opts::new("rw_retry_total", "x"))
            .unwrap()
            .inc();
        registry
    };
    for status in [503u16, 429] {
        let registry = fresh();
        let peer = FakePeer::start(Misbehaviour::EndlessBody(status));
        let writer = rt.block_on(async {
            RemoteWriteBuilder::new(format!("http://{}/api/v1/write", peer.addr))
                .registry(&registry)
                .interval(Duration::from_secs(3600))
                .retry_backoff(Duration::from_millis(10), Duration::from_millis(40))
                .spawn()
                .unwrap()
        });
        common::poll(
            &format!("{status} to be retried"),
            Duration::from_secs(30),
            || (peer.connections.load(SeqCst) >= 3).then_some(()),
        );
        assert_eq!(
            (writer.samples_sent(), writer.samples_failed()),
            (0, 0),
            "{status}"
        );
        assert!(
            writer.samples_queued() > 0,
            "{status}: the reading stays queued"
        );
        let _ = rt.block_on(writer.shutdown(Duration::from_millis(300)));
    }
    let registry = fresh();
    let peer = FakePeer::start(Misbehaviour::EndlessBody(400));
    let writer = rt.block_on(async {
        RemoteWriteBuilder::new(format!("http://{}/api/v1/write", peer.addr))
            .registry(&registry)
            .interval(Duration::from_secs(3600))
            .spawn()
            .unwrap()
    });
    common::poll("the 400 to be counted", Duration::from_secs(30), || {
        (writer.samples_failed() > 0).then_some(())
    });
    assert_eq!(peer.connections.load(SeqCst), 1, "a 400 is not retried");
    assert_eq!(writer.samples_queued(), 0);
    let _ = rt.block_on(writer.shutdown(Duration::from_millis(300)));
}

/// A receiver's `Retry-After` can name any wait: the largest ones never
/// stop the writer (each interval tries again, and shutdown counts what is
/// left), and a wait of zero or a date in the past waits the writer's own
/// backoff instead of turning the retries into a flood.
#[test]
fn retry_after_from_the_receiver_is_bounded_both_ways() {
    use common::{FakePeer, Misbehaviour};
    use std::sync::atomic::Ordering::SeqCst;
    let rt = runtime();
    let registry = Registry::new();
    registry
        .counter(Opts::new("rw_wait_total", "x"))
        .unwrap()
        .inc();
    for wait in [
        "18446744073709551615",
        "99999999999999999999999",
        "Fri, 31 Dec 9999 23:59:59 GMT",
    ] {
        let peer = FakePeer::start(Misbehaviour::RetryAfter(503, wait));
        let writer = rt.block_on(async {
            RemoteWriteBuilder::new(format!("http://{}/api/v1/write", peer.addr))
                .registry(&registry)
                .interval(Duration::from_millis(50))
                .retry_backoff(Duration::from_millis(10), Duration::from_millis(40))
                .spawn()
                .unwrap()
        });
        common::poll(
            &format!("Retry-After: {wait}: sends in three intervals"),
            Duration::from_secs(30),
            || (peer.requests.load(SeqCst) >= 3).then_some(()),
        );
        let result = rt.block_on(writer.shutdown(Duration::from_millis(300)));
        assert!(
            matches!(&result, Err(RemoteWriteError::Undelivered { samples, last: Some(last) })
                if *samples > 0 && last.contains("503")),
            "Retry-After: {wait}: {result:?}"
        );
    }
    for wait in ["0", "Thu, 01 Jan 1970 00:00:00 GMT"] {
        let peer = FakePeer::start(Misbehaviour::RetryAfter(503, wait));
        let writer = rt.block_on(async {
            RemoteWriteBuilder::new(format!("http://{}/api/v1/write", peer.addr))
                .registry(&registry)
                .interval(Duration::from_secs(3600))
                .retry_backoff(Duration::from_millis(50), Duration::from_millis(200))
                .spawn()
                .unwrap()
        });
        // Two seconds of retries, bounded by the shutdown deadline.
        let result = rt.block_on(writer.shutdown(Duration::from_secs(2)));
        assert!(
            matches!(result, Err(RemoteWriteError::Undelivered { .. })),
            "{result:?}"
        );
        // Backoff 50 ms doubling to 200 ms, jitter at least 0.5: at most
        // about 25 requests in 2 s (a zero wait made thousands).
        let requests = peer.requests.load(SeqCst);
        assert!(
            (3..=30).contains(&requests),
            "Retry-After: {wait}: {requests} requests in 2 s"
        );
    }
}

/// A read is sent as requests of at most `max_samples_per_request` samples,
/// and a read larger than the queue keeps its newest batches.
#[test]
fn a_read_is_split_into_bounded_requests_and_bounded_in_the_queue() {
    use common::{FakePeer, Misbehaviour};
    use std::sync::atomic::Ordering::SeqCst;
    let rt = runtime();
    let registry = Registry::new();
    let family = registry
        .counter_family(Opts::new("rw_split_total", "x").labels(["i"]))
        .unwrap();
    for i in 0..25 {
        family.with_labels(&[i.to_string()]).unwrap().inc();
    }
    let accepting = FakePeer::start(Misbehaviour::RetryAfter(204, "0"));
    let writer = rt.block_on(async {
        RemoteWriteBuilder::new(format!("http://{}/api/v1/write", accepting.addr))
            .registry(&registry)
            .interval(Duration::from_secs(3600))
            .max_samples_per_request(10)
            .spawn()
            .unwrap()
    });
    // The 25 series and the self-metrics the registry holds beside them.
    let per_read = common::poll("the first read to be sent", Duration::from_secs(10), || {
        Some(writer_sent(&registry)).filter(|sent| *sent > 25.0)
    }) as u64;
    assert_eq!(accepting.requests.load(SeqCst), per_read.div_ceil(10));
    rt.block_on(writer.shutdown(Duration::from_secs(5)))
        .unwrap();
    // Shutdown's read, as many requests more.
    assert_eq!(accepting.requests.load(SeqCst), 2 * per_read.div_ceil(10));
    assert_eq!(writer_sent(&registry) as u64, 2 * per_read);

    let port = common::free_port();
    let writer = rt.block_on(async {
        RemoteWriteBuilder::new(format!("http://127.0.0.1:{port}/api/v1/write"))
            .registry(&registry)
            .interval(Duration::from_secs(3600))
            .max_samples_per_request(10)
            .max_queued_samples(15)
            .spawn()
            .unwrap()
    });
    // Batches of 10 (the last one smaller) into a queue of 15: the oldest
    // go until the rest fits.
    let mut kept = per_read;
    while kept > 15 {
        kept -= 10;
    }
    common::poll(
        "the oldest batches to be dropped",
        Duration::from_secs(10),
        || (writer.samples_dropped() == per_read - kept).then_some(()),
    );
    assert_eq!(writer.samples_queued(), kept);
    let _ = rt.block_on(writer.shutdown(Duration::from_millis(200)));
}

/// The writer's own count of delivered samples, as the registry exposes it.
fn writer_sent(registry: &Registry) -> f64 {
    let text = registry.encode(beluga_metrics::Format::PrometheusText);
    text.lines()
        .find_map(|l| l.strip_prefix("beluga_remote_write_samples_total{outcome=\"sent\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sent count in\n{text}"))
}
