//! Under load: 2 threads record as fast as they can while 64 concurrent
//! clients scrape for 10 s. No scrape fails, every scrape parses, counters
//! never go backwards, and the final scrape equals the recorded totals.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use beluga_exporter_prometheus::PrometheusExporter;
use beluga_metrics::{Buckets, Opts, Registry};
use common::get;

/// `name{labels} value` lines of a text exposition, as (series, value).
fn parse(text: &str) -> Vec<(String, f64)> {
    text.split('\n')
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("unparsable line {l:?}"));
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("unparsable value in {l:?}")),
            };
            (series.to_string(), value)
        })
        .collect()
}

#[test]
fn scrapes_under_load_never_fail_and_never_go_backwards() {
    let registry = Registry::new();
    let requests = registry
        .counter_family(Opts::new("load_requests_total", "Requests.").labels(["worker"]))
        .unwrap();
    let latency = registry
        .histogram(
            Opts::new("load_latency", "Latency."),
            Buckets::new([0.25, 0.5, 0.75]),
        )
        .unwrap();
    let exporter = PrometheusExporter::builder()
        .registry(&registry)
        .listen("127.0.0.1:0")
        .serve_in_thread()
        .unwrap();
    let addr = exporter.local_addr();
    let stop = Arc::new(AtomicBool::new(false));

    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (requests, latency, stop) = (requests.clone(), latency.clone(), stop.clone());
            std::thread::spawn(move || {
                let counter = requests.with_labels(&[w.to_string()]).unwrap();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    counter.inc();
                    latency.record((n % 4) as f64 * 0.25);
                    n += 1;
                }
                n
            })
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(10);
    let scrapers: Vec<_> = (0..64)
        .map(|_| {
            std::thread::spawn(move || {
                let mut last: std::collections::HashMap<String, f64> = Default::default();
                let mut scrapes = 0u32;
                while Instant::now() < deadline {
                    let response = get(addr, "/metrics", &[]);
                    assert_eq!(response.status, 200, "scrape failed: {}", response.text());
                    for (series, value) in parse(&response.text()) {
                        let monotonic = series.starts_with("load_requests_total")
                            || series.starts_with("load_latency_count")
                            || series.starts_with("load_latency_bucket");
                        if monotonic {
                            let before = last.insert(series.clone(), value).unwrap_or(0.0);
                            assert!(value >= before, "{series} went from {before} to {value}");
                        }
                    }
                    scrapes += 1;
                }
                scrapes
            })
        })
        .collect();
    let scrapes: u32 = scrapers
        .into_iter()
        .map(|s| s.join().expect("a scraper failed"))
        .sum();
    stop.store(true, Ordering::Relaxed);
    let recorded: Vec<u64> = writers.into_iter().map(|w| w.join().unwrap()).collect();

    let last = parse(&get(addr, "/metrics", &[]).text());
    let value = |series: &str| {
        last.iter()
            .find(|(s, _)| s == series)
            .map(|(_, v)| *v)
            .unwrap()
    };
    assert_eq!(
        value("load_requests_total{worker=\"0\"}"),
        recorded[0] as f64
    );
    assert_eq!(
        value("load_requests_total{worker=\"1\"}"),
        recorded[1] as f64
    );
    assert_eq!(
        value("load_latency_count"),
        (recorded[0] + recorded[1]) as f64
    );
    assert!(scrapes > 64, "only {scrapes} scrapes in 10 s");
    exporter.shutdown();
}
