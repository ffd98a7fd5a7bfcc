//! The endpoint's HTTP behaviour: negotiation, headers, limits, bad
//! requests, authentication, shutdown.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use beluga_exporter_prometheus::{Auth, ExporterError, PrometheusExporter};
use beluga_metrics::{Format, Opts, Registry};
use common::{big_registry, get, request};

fn serve(registry: &Registry) -> beluga_exporter_prometheus::ExporterThread {
    PrometheusExporter::builder()
        .registry(registry)
        .listen("127.0.0.1:0")
        .header_read_timeout(Duration::from_millis(500))
        .serve_in_thread()
        .unwrap()
}

fn registry() -> Registry {
    let r = Registry::new();
    r.counter(Opts::new("hits_total", "Hits.")).unwrap().add(3);
    r
}

const PROMETHEUS_2_42_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[test]
fn content_negotiation_and_exact_content_types() {
    let r = registry();
    let exporter = serve(&r);
    let addr = exporter.local_addr();

    let om = get(addr, "/metrics", &[("Accept", PROMETHEUS_2_42_ACCEPT)]);
    assert_eq!(om.status, 200);
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(om.text().ends_with("# EOF\n"));
    assert!(om.text().contains("hits_total 3\n"));

    let text = get(addr, "/metrics", &[("Accept", "text/plain;version=0.0.4")]);
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(!text.text().contains("# EOF"));

    let none = get(addr, "/metrics", &[]);
    assert_eq!(
        none.header("content-type"),
        Some(Format::PROMETHEUS_TEXT_CONTENT_TYPE)
    );

    let low_q = get(
        addr,
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;q=0.1,text/plain;q=0.9",
        )],
    );
    assert_eq!(
        low_q.header("content-type"),
        Some(Format::PROMETHEUS_TEXT_CONTENT_TYPE)
    );

    let forced = get(
        addr,
        "/metrics?format=text",
        &[("Accept", PROMETHEUS_2_42_ACCEPT)],
    );
    assert_eq!(
        forced.header("content-type"),
        Some(Format::PROMETHEUS_TEXT_CONTENT_TYPE)
    );
    assert_eq!(om.header("vary"), Some("Accept, Accept-Encoding"));
    exporter.shutdown();
}

#[test]
fn gzip_when_allowed() {
    let r = registry();
    let exporter = serve(&r);
    let response = get(
        exporter.local_addr(),
        "/metrics",
        &[("Accept-Encoding", "gzip, deflate")],
    );
    assert_eq!(response.header("content-encoding"), Some("gzip"));
    let mut decoded = String::new();
    flate2::read::GzDecoder::new(&response.body[..])
        .read_to_string(&mut decoded)
        .unwrap();
    assert!(decoded.contains("hits_total 3\n"));
    let refused = get(
        exporter.local_addr(),
        "/metrics",
        &[("Accept-Encoding", "gzip;q=0, identity")],
    );
    assert_eq!(refused.header("content-encoding"), None);
    assert!(refused.text().contains("hits_total 3\n"));
    exporter.shutdown();
}

#[test]
fn head_healthz_not_found_and_wrong_methods() {
    let r = registry();
    let exporter = serve(&r);
    let addr = exporter.local_addr();
    let head = request(addr, "HEAD", "/metrics", &[], b"").unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-type"),
        Some(Format::PROMETHEUS_TEXT_CONTENT_TYPE)
    );
    assert_eq!(get(addr, "/healthz", &[]).status, 200);
    assert_eq!(get(addr, "/nope", &[]).status, 404);
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let response = request(addr, method, "/metrics", &[], b"").unwrap();
        assert_eq!(response.status, 405, "{method}");
        assert_eq!(response.header("allow"), Some("GET, HEAD"));
    }
    let with_body = request(addr, "GET", "/metrics", &[], b"unexpected").unwrap();
    assert_eq!(with_body.status, 413);
    // Still serving after all of that.
    assert_eq!(get(addr, "/metrics", &[]).status, 200);
    let text = r.encode(Format::PrometheusText);
    assert!(
        text.contains("beluga_exporter_errors_total{reason=\"method_not_allowed\"} 4"),
        "{text}"
    );
    exporter.shutdown();
}

#[test]
fn huge_headers_and_silent_clients_are_cut_off_and_the_server_keeps_serving() {
    let r = registry();
    let exporter = serve(&r);
    let addr = exporter.local_addr();

    let huge = "x".repeat(64 * 1024);
    match request(addr, "GET", "/metrics", &[("X-Huge", &huge)], b"") {
        Ok(response) => assert_eq!(response.status, 431),
        // Closing the connection on an oversized head is also a refusal.
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::InvalidData
            ),
            "{e}"
        ),
    }

    // Connect and send nothing: the server hangs up after the header timeout.
    let started = Instant::now();
    let mut silent = TcpStream::connect(addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = silent.read(&mut buf).unwrap_or(0);
    let waited = started.elapsed();
    assert!(
        n == 0 || String::from_utf8_lossy(&buf[..n]).contains("408"),
        "unexpected reply"
    );
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    // A half-sent request head is cut off the same way.
    let mut partial = TcpStream::connect(addr).unwrap();
    partial
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    partial
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = partial.read(&mut buf);

    assert_eq!(get(addr, "/metrics", &[]).status, 200);
    exporter.shutdown();
}

#[test]
fn bearer_and_basic_auth() {
    let r = registry();
    let bearer = PrometheusExporter::builder()
        .registry(&r)
        .listen("127.0.0.1:0")
        .auth(Auth::Bearer("s3cret".into()))
        .serve_in_thread()
        .unwrap();
    let addr = bearer.local_addr();
    let denied = get(addr, "/metrics", &[]);
    assert_eq!(denied.status, 401);
    assert_eq!(
        denied.header("www-authenticate"),
        Some("Bearer realm=\"metrics\"")
    );
    assert_eq!(
        get(addr, "/metrics", &[("Authorization", "Bearer wrong")]).status,
        401
    );
    assert_eq!(
        get(addr, "/metrics", &[("Authorization", "Bearer s3cret")]).status,
        200
    );
    assert_eq!(get(addr, "/healthz", &[]).status, 200, "health stays open");
    bearer.shutdown();

    let basic = PrometheusExporter::builder()
        .registry(&r)
        .listen("127.0.0.1:0")
        .auth(Auth::Basic {
            username: "prom".into(),
            password: "pa:ss".into(),
        })
        .serve_in_thread()
        .unwrap();
    // base64("prom:pa:ss")
    let ok = get(
        basic.local_addr(),
        "/metrics",
        &[("Authorization", "Basic cHJvbTpwYTpzcw==")],
    );
    assert_eq!(ok.status, 200);
    assert_eq!(get(basic.local_addr(), "/metrics", &[]).status, 401);
    assert!(!format!("{:?}", Auth::Bearer("s3cret".into())).contains("s3cret"));
    basic.shutdown();
}

#[test]
fn bind_errors_name_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let err = PrometheusExporter::builder()
        .registry(&Registry::new())
        .listen(address.clone())
        .serve_in_thread()
        .unwrap_err();
    assert!(matches!(err, ExporterError::Bind { .. }));
    assert!(err.to_string().contains(&address), "{err}");
    let err = PrometheusExporter::builder()
        .registry(&Registry::new())
        .listen("no-such-host.invalid:1")
        .serve_in_thread()
        .unwrap_err();
    assert!(matches!(err, ExporterError::Bind { .. }));
    assert!(matches!(
        PrometheusExporter::builder()
            .path("metrics")
            .serve_in_thread(),
        Err(ExporterError::InvalidPath(_))
    ));
    assert!(matches!(
        PrometheusExporter::builder()
            .registry(&Registry::new())
            .listen("127.0.0.1:0")
            .spawn(),
        Err(ExporterError::NoRuntime)
    ));
}

#[test]
fn custom_path() {
    let r = registry();
    let exporter = PrometheusExporter::builder()
        .registry(&r)
        .listen("127.0.0.1:0")
        .path("/internal/metrics")
        .serve_in_thread()
        .unwrap();
    assert_eq!(
        get(exporter.local_addr(), "/internal/metrics", &[]).status,
        200
    );
    assert_eq!(get(exporter.local_addr(), "/metrics", &[]).status, 404);
    exporter.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_on_the_current_runtime_and_shut_down_gracefully() {
    let r = registry();
    let exporter = PrometheusExporter::builder()
        .registry(&r)
        .listen("127.0.0.1:0")
        .spawn()
        .unwrap();
    let addr = exporter.local_addr();
    let response = tokio::task::spawn_blocking(move || get(addr, "/metrics", &[]))
        .await
        .unwrap();
    assert!(response.text().contains("hits_total 3\n"));
    tokio::time::timeout(Duration::from_secs(5), exporter.shutdown())
        .await
        .expect("shutdown finishes");
    assert!(
        TcpStream::connect(addr).is_err(),
        "the port is closed after shutdown"
    );
}

#[test]
fn scrapes_beyond_the_concurrency_cap_get_503_after_the_queue_timeout() {
    let r = big_registry();
    let exporter = PrometheusExporter::builder()
        .registry(&r)
        .listen("127.0.0.1:0")
        .max_concurrent_scrapes(1)
        .queue_timeout(Duration::from_millis(1))
        .serve_in_thread()
        .unwrap();
    let addr = exporter.local_addr();
    let statuses: Vec<(u16, Option<String>)> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(move || {
                    let r = get(addr, "/metrics", &[]);
                    (r.status, r.header("retry-after").map(str::to_string))
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    assert!(statuses.iter().any(|(s, _)| *s == 200), "{statuses:?}");
    let busy: Vec<_> = statuses.iter().filter(|(s, _)| *s == 503).collect();
    assert!(!busy.is_empty(), "no scrape was turned away: {statuses:?}");
    assert!(busy.iter().all(|(_, retry)| retry.as_deref() == Some("1")));
    assert!(r
        .encode(Format::PrometheusText)
        .contains("beluga_exporter_errors_total{reason=\"busy\"}"));
    exporter.shutdown();
}

#[test]
fn an_encode_slower_than_the_response_timeout_gets_503() {
    let r = big_registry();
    let exporter = PrometheusExporter::builder()
        .registry(&r)
        .listen("127.0.0.1:0")
        .response_timeout(Duration::from_micros(10))
        .serve_in_thread()
        .unwrap();
    let response = get(exporter.local_addr(), "/metrics", &[]);
    assert_eq!(response.status, 503, "{}", response.text());
    assert!(response.text().contains("response timeout"));
    assert_eq!(get(exporter.local_addr(), "/healthz", &[]).status, 200);
    exporter.shutdown();
}
