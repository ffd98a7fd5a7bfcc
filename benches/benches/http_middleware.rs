//! Per-request cost of HTTP metrics middleware on an axum router, in one
//! run: the bare router, the router with beluga's `MetricsLayer`, and the
//! router with `axum-prometheus`'s `PrometheusMetricLayer` (which records
//! through the `metrics` facade into `metrics-exporter-prometheus`).
//! Requests go through the router in memory (`tower::ServiceExt::oneshot`,
//! body collected), so the difference from the bare row is the middleware.

use std::hint::black_box;

use axum::routing::get;
use axum::Router;
use criterion::Throughput;
use http_body_util::BodyExt;
use tower::ServiceExt;

fn api() -> Router {
    Router::new()
        .route("/v1/agents/{id}", get(|| async { "agent" }))
        .route("/v1/chat", get(|| async { "answer" }))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let monitor = beluga_monitor::Monitor::builder()
        .registry(&Default::default())
        .build()
        .expect("monitor");
    // axum-prometheus spawns its recorder's upkeep task: it needs a runtime.
    let _in_runtime = runtime.enter();
    let (peer_layer, _peer_handle) = axum_prometheus::PrometheusMetricLayer::pair();
    let apps = [
        ("bare-router", api()),
        (
            "beluga",
            api().layer(beluga_http_middleware::MetricsLayer::new(&monitor).expect("layer")),
        ),
        ("axum-prometheus", api().layer(peer_layer)),
    ];

    let mut c = beluga_benches::criterion();
    for (row, path) in [
        ("route_200", "/v1/agents/42"),
        ("unmatched_404", "/scan/wp-login.php"),
    ] {
        let mut group = c.benchmark_group(format!("http_middleware/{row}"));
        group.throughput(Throughput::Elements(1));
        for (name, app) in &apps {
            group.bench_function(*name, |b| {
                b.iter(|| {
                    runtime.block_on(async {
                        let request = axum::http::Request::get(path)
                            .body(axum::body::Body::empty())
                            .expect("request");
                        let response = app.clone().oneshot(request).await.expect("infallible");
                        black_box(response.into_body().collect().await.expect("body"))
                    })
                })
            });
        }
        group.finish();
    }
    c.final_summary();
}
