//! A dependency that only knows the `metrics` macros, a recorder installed
//! globally, and a real `/metrics` endpoint read over HTTP.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use beluga_exporter_prometheus::PrometheusExporter;
use beluga_metrics::Registry;
use beluga_metrics_facade::BelugaRecorder;

fn scrape(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to /metrics");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

#[test]
fn a_third_party_crates_metrics_calls_are_served_on_metrics() {
    let registry = Registry::new();
    BelugaRecorder::builder()
        .registry(&registry)
        .build()
        .expect("recorder")
        .install()
        .expect("the only global recorder in this test binary");
    let exporter = PrometheusExporter::builder()
        .registry(&registry)
        .listen("127.0.0.1:0")
        .serve_in_thread()
        .expect("exporter");

    third_party_crate::describe();
    third_party_crate::query("docs", Duration::from_millis(20), 3);
    third_party_crate::query("docs", Duration::from_millis(40), 5);
    std::thread::spawn(|| third_party_crate::query("code", Duration::from_millis(300), 1))
        .join()
        .expect("thread");

    let body = scrape(exporter.local_addr());
    for line in [
        "# HELP vector_store_queries_total Queries sent to the vector store.\n",
        "# TYPE vector_store_queries_total counter\n",
        "vector_store_queries_total{collection=\"docs\"} 2\n",
        "vector_store_queries_total{collection=\"code\"} 1\n",
        "# HELP vector_store_query_duration_seconds Time a vector store query took.\n",
        "vector_store_query_duration_seconds_count 3\n",
        "vector_store_query_duration_seconds_bucket{le=\"0.025\"} 1\n",
        "vector_store_query_duration_seconds_bucket{le=\"0.05\"} 2\n",
        "vector_store_query_duration_seconds_bucket{le=\"0.5\"} 3\n",
        "vector_store_last_hits{collection=\"docs\"} 5.0\n",
        "vector_store_last_hits{collection=\"code\"} 1.0\n",
    ] {
        assert!(body.contains(line), "missing {line:?} in\n{body}");
    }
    assert!(
        !body.contains("beluga_metrics_facade_rejected_total{"),
        "nothing should be rejected:\n{body}"
    );
    exporter.shutdown();
}
