//! A full HTTP scrape of 10,000 series over loopback: connect, request,
//! encode on the exporter, read the whole response.

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use beluga_exporter_prometheus::PrometheusExporter;
use beluga_metrics::Registry;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn scrape_once(addr: SocketAddr, request: &[u8], buffer: &mut Vec<u8>) -> usize {
    buffer.clear();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(request).expect("send");
    stream.read_to_end(buffer).expect("receive");
    assert!(buffer.starts_with(b"HTTP/1.1 200"), "scrape failed");
    buffer.len()
}

fn scrape(c: &mut Criterion) {
    let registry = Registry::new();
    beluga_benches::counter_series(&registry, 10_000);
    let exporter = PrometheusExporter::builder()
        .registry(&registry)
        .listen("127.0.0.1:0")
        .serve_in_thread()
        .unwrap();
    let addr = exporter.local_addr();
    let mut buffer = Vec::with_capacity(1 << 20);
    let mut group = c.benchmark_group("http_scrape_10k_series");
    for (name, accept) in [
        ("text", "text/plain;version=0.0.4"),
        ("openmetrics", "application/openmetrics-text;version=1.0.0"),
    ] {
        let request = format!(
            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
        );
        let bytes = scrape_once(addr, request.as_bytes(), &mut buffer);
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(name, |b| {
            b.iter(|| black_box(scrape_once(addr, request.as_bytes(), &mut buffer)))
        });
    }
    let gzip = format!(
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
    );
    group.bench_function("text_gzip", |b| {
        b.iter(|| black_box(scrape_once(addr, gzip.as_bytes(), &mut buffer)))
    });
    group.finish();
    exporter.shutdown();
}

criterion_group! {
    name = benches;
    config = beluga_benches::criterion();
    targets = scrape
}
criterion_main!(benches);
