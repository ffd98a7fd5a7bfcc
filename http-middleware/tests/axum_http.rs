//! The layer on a real axum server, driven by a real HTTP client over
//! loopback, read back through `/metrics` on the same router.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use beluga_http_middleware::MetricsLayer;
use beluga_metrics::Format;
use beluga_monitor::Monitor;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

struct Server {
    addr: SocketAddr,
    client: HttpClient,
    /// Each permit lets `/v1/stream` send one more chunk.
    chunks: Arc<Semaphore>,
}

/// The API under test: route templates, a handler-made 404 and 500, a
/// streamed body paced by the test, and one that fails mid-stream.
async fn start() -> Server {
    let monitor = Monitor::builder()
        .registry(&Default::default())
        .build()
        .unwrap();
    let chunks = Arc::new(Semaphore::new(0));
    let gate = chunks.clone();
    let broken_gate = chunks.clone();
    let app = Router::new()
        .route(
            "/v1/agents/{id}",
            get(
                |axum::extract::Path(id): axum::extract::Path<u32>| async move {
                    match id {
                        0 => (StatusCode::NOT_FOUND, "no such agent"),
                        500 => (StatusCode::INTERNAL_SERVER_ERROR, "broken"),
                        _ => (StatusCode::OK, "agent"),
                    }
                },
            ),
        )
        .route(
            "/v1/stream",
            get(move || {
                let gate = gate.clone();
                async move {
                    let chunks = futures_util::stream::unfold((gate, 0), |(gate, i)| async move {
                        if i == 3 {
                            return None;
                        }
                        gate.acquire().await.ok()?.forget();
                        Some((Ok::<_, Infallible>(format!("chunk {i}\n")), (gate, i + 1)))
                    });
                    Body::from_stream(chunks)
                }
            }),
        )
        .route(
            "/v1/broken-stream",
            get(move || {
                let gate = broken_gate.clone();
                async move {
                    // One chunk, then (when the test says) an error.
                    let chunks = futures_util::stream::unfold((gate, 0), |(gate, i)| async move {
                        match i {
                            0 => Some((Ok(Bytes::from_static(b"first ")), (gate, 1))),
                            1 => {
                                gate.acquire().await.ok()?.forget();
                                let e = std::io::Error::other("the model backend went away");
                                Some((Err(e), (gate, 2)))
                            }
                            _ => None,
                        }
                    });
                    Body::from_stream(chunks)
                }
            }),
        )
        .route(
            "/v1/endless",
            get(|| async {
                let chunks = futures_util::stream::unfold((), |()| async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    Some((Ok::<_, Infallible>("token "), ()))
                });
                Body::from_stream(chunks)
            }),
        )
        .layer(MetricsLayer::new(&monitor).unwrap());
    let scraped = monitor.clone();
    let app = app.route(
        "/metrics",
        get(move || async move { scraped.registry().encode(Format::PrometheusText) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        addr,
        // A new connection per request: a connection the server closes
        // after a failed body must not be reused for the next scrape.
        client: Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build_http(),
        chunks,
    }
}

impl Server {
    async fn send(&self, method: &str, path: &str) -> http::Response<hyper::body::Incoming> {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .body(Empty::new())
            .unwrap();
        self.client.request(request).await.unwrap()
    }

    async fn status(&self, method: &str, path: &str) -> u16 {
        let response = self.send(method, path).await;
        let status = response.status().as_u16();
        response.into_body().collect().await.unwrap();
        status
    }

    async fn metrics(&self) -> String {
        let response = self.send("GET", "/metrics").await;
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// The value of one series, 0 if absent.
    async fn value(&self, series: &str) -> f64 {
        let text = self.metrics().await;
        let prefix = format!("{series} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .map_or(0.0, |v| v.parse().unwrap())
    }

    /// Polls until `series` reads `want` (the layer records when the server
    /// is done with a body, which may be just after the client is).
    async fn wait_for(&self, series: &str, want: f64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.value(series).await;
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{series} is {got}, want {want}\n{}",
                self.metrics().await
            );
            tokio::task::yield_now().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_statuses_and_methods_are_labelled_with_templates() {
    let s = start().await;
    assert_eq!(s.status("GET", "/v1/agents/42").await, 200);
    assert_eq!(s.status("GET", "/v1/agents/7").await, 200);
    assert_eq!(s.status("GET", "/v1/agents/0").await, 404);
    assert_eq!(s.status("GET", "/v1/agents/500").await, 500);
    assert_eq!(s.status("PURGE", "/v1/agents/1").await, 405);

    let text = s.metrics().await;
    for line in [
        "monitoring_api_requests_total{method=\"GET\",endpoint=\"/v1/agents/{id}\",status=\"200\"} 2\n",
        "monitoring_api_requests_total{method=\"GET\",endpoint=\"/v1/agents/{id}\",status=\"404\"} 1\n",
        "monitoring_api_requests_total{method=\"GET\",endpoint=\"/v1/agents/{id}\",status=\"500\"} 1\n",
        "monitoring_api_requests_total{method=\"OTHER\",endpoint=\"/v1/agents/{id}\",status=\"405\"} 1\n",
        "monitoring_response_time_seconds_count{type=\"api\",method=\"GET\",endpoint=\"/v1/agents/{id}\"} 4\n",
        "monitoring_errors_total{component=\"api\",error_type=\"server_error\"} 1\n",
        "monitoring_api_requests_in_flight{method=\"GET\",endpoint=\"/v1/agents/{id}\"} 0.0\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(
        !text.contains("/metrics"),
        "the scrape route is outside the layer"
    );
    assert!(
        !text.contains("endpoint=\"/v1/agents/42\""),
        "raw paths never become labels"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_paths_fold_into_one_endpoint_value() {
    let s = start().await;
    for i in 0..300u64 {
        let path = format!("/scan/{}/{}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15), i);
        assert_eq!(s.status("GET", &path).await, 404);
    }
    let text = s.metrics().await;
    assert!(
        text.contains("monitoring_api_requests_total{method=\"GET\",endpoint=\"unmatched\",status=\"404\"} 300\n"),
        "{text}"
    );
    let series = text
        .lines()
        .filter(|l| l.starts_with("monitoring_api_requests_total{"))
        .count();
    assert_eq!(series, 1, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_is_in_flight_until_its_last_chunk_and_timed_to_it() {
    let s = start().await;
    let in_flight = "monitoring_api_requests_in_flight{method=\"GET\",endpoint=\"/v1/stream\"}";
    let requests =
        "monitoring_api_requests_total{method=\"GET\",endpoint=\"/v1/stream\",status=\"200\"}";
    let started = Instant::now();
    let mut body = s.send("GET", "/v1/stream").await.into_body();
    s.chunks.add_permits(1);
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"chunk 0\n");
    // Headers and a chunk are out, the body is not done: in flight, not counted.
    assert_eq!(s.value(in_flight).await, 1.0);
    assert_eq!(s.value(requests).await, 0.0);
    tokio::time::sleep(Duration::from_millis(300)).await; // the model "thinks"
    s.chunks.add_permits(2);
    while body.frame().await.is_some() {}
    let held = started.elapsed().as_secs_f64();
    s.wait_for(requests, 1.0).await;
    assert_eq!(s.value(in_flight).await, 0.0);
    let timed = s
        .value("monitoring_response_time_seconds_sum{type=\"api\",method=\"GET\",endpoint=\"/v1/stream\"}")
        .await;
    assert!(
        timed >= 0.3 && timed <= held,
        "timed {timed} s, held {held} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_failing_mid_stream_is_counted_as_an_error() {
    let s = start().await;
    let response = s.send("GET", "/v1/broken-stream").await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    body.frame().await.unwrap().unwrap();
    s.chunks.add_permits(1);
    assert!(body.collect().await.is_err(), "the client sees the failure");
    s.wait_for(
        "monitoring_errors_total{component=\"api\",error_type=\"body_error\"}",
        1.0,
    )
    .await;
    s.wait_for(
        "monitoring_api_requests_total{method=\"GET\",endpoint=\"/v1/broken-stream\",status=\"200\"}",
        1.0,
    )
    .await;
    assert_eq!(
        s.value("monitoring_api_requests_in_flight{method=\"GET\",endpoint=\"/v1/broken-stream\"}")
            .await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_stream_is_counted_as_cancelled() {
    let s = start().await;
    let mut body = s.send("GET", "/v1/endless").await.into_body();
    body.frame().await.unwrap().unwrap();
    drop(body); // the client goes away mid-answer; the server's writes fail
    s.wait_for(
        "monitoring_errors_total{component=\"api\",error_type=\"cancelled\"}",
        1.0,
    )
    .await;
    s.wait_for(
        "monitoring_api_requests_in_flight{method=\"GET\",endpoint=\"/v1/endless\"}",
        0.0,
    )
    .await;
    assert_eq!(
        s.value(
            "monitoring_api_requests_total{method=\"GET\",endpoint=\"/v1/endless\",status=\"200\"}"
        )
        .await,
        1.0
    );
}
