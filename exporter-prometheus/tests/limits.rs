//! Limits that protect the endpoint on a bad day: the encode concurrency cap
//! holds even when encodes outlive the response timeout, connections are
//! capped, clients that stop reading or go quiet are disconnected, and only
//! a complete `GET` counts as a delivered scrape.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use beluga_exporter_prometheus::PrometheusExporter;
use beluga_metrics::{Format, Opts, Registry};
use beluga_test_support::alloc::{live_bytes, peak_bytes, reset_peak};
use common::{big_registry, get, poll, request};

#[global_allocator]
static ALLOCATOR: beluga_test_support::alloc::Counting = beluga_test_support::alloc::Counting;

/// Serialises the tests of this file: the peak-memory test must not see
/// another test's allocations.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn errors(r: &Registry, reason: &str) -> u64 {
    let text = r.encode(Format::PrometheusText);
    let prefix = format!("beluga_exporter_errors_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.parse().unwrap())
}

#[test]
fn encodes_that_outlive_the_response_timeout_keep_their_slot() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let r = big_registry();
    let builder = || {
        PrometheusExporter::builder()
            .registry(&r)
            .listen("127.0.0.1:0")
            .max_concurrent_scrapes(1)
            .gzip(false)
    };
    // What one whole scrape costs at its peak, the client's copy included.
    let normal = builder().serve_in_thread().unwrap();
    let base = live_bytes();
    reset_peak();
    assert_eq!(get(normal.local_addr(), "/metrics", &[]).status, 200);
    let one = peak_bytes() - base;
    assert!(one > 1 << 20, "one scrape peaked at only {one} bytes");
    normal.shutdown();

    // Thirty at once, each giving up on its encode at once: with a cap of 1
    // the encodes must still run one after the other, so together they peak
    // below one whole scrape (whose figure includes the client's copy).
    let impatient = builder()
        .queue_timeout(Duration::from_secs(60))
        .response_timeout(Duration::from_micros(1))
        .serve_in_thread()
        .unwrap();
    let addr = impatient.local_addr();
    let base = live_bytes();
    reset_peak();
    std::thread::scope(|s| {
        for _ in 0..30 {
            s.spawn(move || assert_eq!(get(addr, "/metrics", &[]).status, 503));
        }
    });
    // The slot is handed out in order, so when this one gets it every
    // earlier encode has ended.
    assert_eq!(get(addr, "/metrics", &[]).status, 503);
    let all = peak_bytes() - base;
    assert!(
        all < one,
        "31 timed-out scrapes peaked at {all} bytes, one whole scrape at {one}: \
         encodes ran beyond the cap"
    );
    assert!(errors(&r, "timeout") >= 31);
    impatient.shutdown();
}

#[test]
fn connections_past_the_cap_are_closed_at_once() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let r = Registry::new();
    let exporter = PrometheusExporter::builder()
        .registry(&r)
        .listen("127.0.0.1:0")
        .max_connections(4)
        .header_read_timeout(Duration::from_secs(30))
        .serve_in_thread()
        .unwrap();
    let addr = exporter.local_addr();
    let idle: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
    // Wait until the server holds the four (each one accepted and counted).
    poll(
        "the four connections to be accepted",
        Duration::from_secs(10),
        || {
            let mut extra = TcpStream::connect(addr).unwrap();
            extra
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut byte = [0u8; 1];
            // Refused: closed before any request, so the read sees EOF (or a reset).
            matches!(extra.read(&mut byte), Ok(0) | Err(_)).then_some(())
        },
    );
    assert!(errors(&r, "connection_limit") >= 1);
    drop(idle);
    // With the idle clients gone, scrapes are served again.
    poll(
        "a scrape to be served again",
        Duration::from_secs(10),
        || {
            request(addr, "GET", "/metrics", &[], b"")
                .ok()
                .filter(|r| r.status == 200)
        },
    );
    exporter.shutdown();
}

#[test]
fn clients_that_stop_reading_or_go_quiet_are_disconnected() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let r = big_registry();
    let exporter = PrometheusExporter::builder()
        .registry(&r)
        .listen("127.0.0.1:0")
        .gzip(false)
        .write_timeout(Duration::from_millis(300))
        .idle_timeout(Duration::from_millis(600))
        .header_read_timeout(Duration::from_secs(30))
        .serve_in_thread()
        .unwrap();
    let addr = exporter.local_addr();

    // Pipelines 20 scrapes of several MB each and never reads.
    let mut stalled = TcpStream::connect(addr).unwrap();
    let one = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stalled.write_all(one.repeat(20).as_bytes()).unwrap();
    poll(
        "the stalled client to be cut off",
        Duration::from_secs(30),
        || (errors(&r, "write_timeout") >= 1).then_some(()),
    );

    // Connects and never sends anything.
    let mut quiet = TcpStream::connect(addr).unwrap();
    quiet
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(matches!(quiet.read(&mut byte), Ok(0) | Err(_)));
    assert!(errors(&r, "idle_timeout") >= 1);
    assert_eq!(get(addr, "/healthz", &[]).status, 200);
    drop(stalled);
    exporter.shutdown();
}

#[test]
fn only_a_complete_get_counts_as_delivered() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let r = Registry::new();
    r.counter(Opts::new("jobs_total", "Jobs.")).unwrap().inc();
    let exporter = PrometheusExporter::builder()
        .registry(&r)
        .listen("127.0.0.1:0")
        .serve_in_thread()
        .unwrap();
    let addr = exporter.local_addr();
    let mark = exporter.scrape_mark();
    assert!(!exporter.delivered_since(mark));
    assert_eq!(
        request(addr, "HEAD", "/metrics", &[], b"").unwrap().status,
        200
    );
    assert_eq!(get(addr, "/healthz", &[]).status, 200);
    assert_eq!(get(addr, "/nope", &[]).status, 404);
    assert!(
        !exporter.delivered_since(mark),
        "HEAD, /healthz and 404 are not scrapes"
    );
    assert_eq!(get(addr, "/metrics", &[]).status, 200);
    assert!(exporter.delivered_since(mark));
    let later = exporter.scrape_mark();
    assert!(!exporter.delivered_since(later));
    exporter.shutdown();
}

fn unsent_bytes(r: &Registry) -> f64 {
    let text = r.encode(Format::PrometheusText);
    text.lines()
        .find_map(|l| l.strip_prefix("beluga_exporter_unsent_bytes "))
        .map_or(0.0, |v| v.parse().unwrap())
}

fn scrapes(r: &Registry) -> u64 {
    let text = r.encode(Format::PrometheusText);
    text.lines()
        .find_map(|l| l.strip_prefix("beluga_exporter_scrapes_total{format=\"text\"} "))
        .map_or(0, |v| v.parse().unwrap())
}

/// 100 clients that send a GET and never read: without a bound each would
/// hold a whole body (megabytes with 200,000 series) until its write
/// timeout. The bodies held stay within `max_unsent_bytes`, the rest get
/// `503`, the heap grows by no more than the budget and the encoders'
/// buffers, and once the non-readers are cut off a scraper that reads is
/// served again.
#[test]
fn clients_that_never_read_hold_at_most_the_unsent_budget() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let r = big_registry();
    let budget: u64 = 16 << 20;
    let exporter = PrometheusExporter::builder()
        .registry(&r)
        .listen("127.0.0.1:0")
        .gzip(false)
        .max_concurrent_scrapes(1)
        .queue_timeout(Duration::from_secs(30))
        .max_unsent_bytes(budget)
        .serve_in_thread()
        .unwrap();
    let addr = exporter.local_addr();
    let body = get(addr, "/metrics", &[]).body.len() as i64;
    assert!(body > 4 << 20, "a body of {body} bytes");
    let base = live_bytes();
    reset_peak();
    let served_before = scrapes(&r);

    let attackers: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            let get = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n");
            stream.write_all(get.as_bytes()).unwrap();
            stream
        })
        .collect();
    let mut highest = 0.0f64;
    poll(
        "every attacker's GET to be answered or refused",
        Duration::from_secs(60),
        || {
            highest = highest.max(unsent_bytes(&r));
            let answered = scrapes(&r) - served_before + errors(&r, "unsent_bytes");
            (answered >= 100).then_some(())
        },
    );
    // Bodies whose bytes went into the clients' socket buffers are no
    // longer held here, so more than budget / body were served.
    let refused = errors(&r, "unsent_bytes");
    assert!(refused > 0, "nothing refused");
    assert!(highest <= budget as f64, "{highest} bytes held");
    let grown = peak_bytes() - base;
    // The budget, the one encoder's buffer (grown by doubling) and the
    // copy it hands over, and slack. Unbounded, 100 bodies would be held.
    let encoder = 2 * (body as u64).next_power_of_two() as i64 + body;
    let bound = budget as i64 + encoder + (8 << 20);
    assert!(
        grown <= bound,
        "the heap grew by {grown} bytes with 100 clients not reading (bound {bound})"
    );
    eprintln!("100 non-readers: heap +{grown} bytes (bound {bound}), {refused} refused, {highest} bytes held at most");

    // Under pressure the non-readers are cut after 2 s, and a scraper that
    // reads gets its scrape.
    poll(
        "a reading scrape to be served",
        Duration::from_secs(30),
        || (get(addr, "/metrics", &[]).status == 200).then_some(()),
    );
    assert!(errors(&r, "write_timeout") >= 1);
    drop(attackers);
    poll("the budget to be released", Duration::from_secs(30), || {
        (unsent_bytes(&r) == 0.0).then_some(())
    });
    exporter.shutdown();
}
