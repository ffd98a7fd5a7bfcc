//! An agent API on axum whose requests are recorded by `MetricsLayer`, with
//! `/metrics` served on the same router.
//!
//! ```sh
//! cargo run -p beluga-http-middleware --example axum_agent   # listens on 127.0.0.1:3000
//! curl -s localhost:3000/v1/agents/42
//! curl -sN -X POST localhost:3000/v1/chat                   # a streamed answer
//! curl -s localhost:3000/metrics | grep monitoring_api
//! ```
//!
//! `BELUGA_EXAMPLE_LISTEN=127.0.0.1:0` picks a free port (printed).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use beluga_http_middleware::MetricsLayer;
use beluga_metrics::Format;
use beluga_monitor::Monitor;

/// The API: an agent lookup, a streamed chat answer, a health check.
fn api() -> Router {
    Router::new()
        .route("/v1/agents/{id}", get(agent))
        .route("/v1/chat", post(chat))
        .route("/healthz", get(|| async { "ok" }))
}

async fn agent(Path(id): Path<u64>) -> Response {
    if id == 0 {
        return (StatusCode::NOT_FOUND, "no agent 0").into_response();
    }
    format!("{{\"id\":{id},\"state\":\"idle\"}}").into_response()
}

/// Streams an answer in chunks, as an LLM proxy does; the response time
/// recorded is the time to the last chunk.
async fn chat() -> Response {
    let chunks = futures_util::stream::unfold(0u32, |i| async move {
        if i == 5 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        Some((Ok::<_, Infallible>(format!("token-{i} ")), i + 1))
    });
    Body::from_stream(chunks).into_response()
}

/// `/metrics`: the monitor's registry in the format `Accept` asks for.
async fn metrics(monitor: Monitor, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let body = monitor.registry().encode(format);
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let monitor = Monitor::builder().service_name("axum-agent").build()?;
    beluga_process_metrics::register(monitor.registry())?;
    beluga_process_metrics::RuntimeCollector::register(
        monitor.registry(),
        "main",
        &tokio::runtime::Handle::current(),
    )?;

    let scrape = monitor.clone();
    let app = api()
        // Only the API is recorded: the layer goes on before `/metrics`.
        .layer(MetricsLayer::new(&monitor)?)
        .route(
            "/metrics",
            get(move |headers| metrics(scrape.clone(), headers)),
        );

    let listen = std::env::var("BELUGA_EXAMPLE_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
