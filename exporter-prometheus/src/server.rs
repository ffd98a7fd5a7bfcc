//! The HTTP side: accept loop, routing, limits, content negotiation.

use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use beluga_metrics::{Encoder, Format, Registry};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::auth::{authorized, Auth};
use crate::self_metrics::SelfMetrics;

/// Everything a request handler needs, shared by all connections.
pub(crate) struct Shared {
    pub(crate) registry: Registry,
    pub(crate) path: String,
    pub(crate) auth: Option<(Auth, String)>,
    pub(crate) scrape_slots: Semaphore,
    pub(crate) queue_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) gzip: bool,
    /// Encoders (and their grown buffers) reused from scrape to scrape.
    pub(crate) encoders: parking_lot::Mutex<Vec<Encoder>>,
    pub(crate) metrics: SelfMetrics,
}

impl Shared {
    pub(crate) fn scrapes_served(&self) -> u64 {
        ["text", "openmetrics"]
            .iter()
            .map(|format| {
                self.metrics
                    .scrapes
                    .with(&[format], |c| c.get())
                    .unwrap_or(0)
            })
            .sum()
    }
}

pub(crate) struct ConnectionLimits {
    pub(crate) header_read_timeout: Duration,
    pub(crate) max_header_bytes: usize,
    pub(crate) drain_timeout: Duration,
}

type HttpResponse = Response<Full<Bytes>>;

fn plain(status: StatusCode, body: &'static str) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Serves until `shutdown` flips, then lets in-flight requests finish
/// (up to `drain_timeout`).
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        // Out of file descriptors and the like: back off briefly.
                        shared.metrics.error("accept");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let mut shutdown = shutdown.clone();
                let header_read_timeout = limits.header_read_timeout;
                let max_header_bytes = limits.max_header_bytes;
                connections.spawn(async move {
                    let service = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(header_read_timeout)
                        .max_buf_size(max_header_bytes)
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(connection);
                    tokio::select! {
                        _ = connection.as_mut() => {}
                        _ = shutdown.changed() => {
                            connection.as_mut().graceful_shutdown();
                            let _ = connection.await;
                        }
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.drain_timeout, drained)
        .await
        .is_err()
    {
        connections.abort_all();
    }
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> HttpResponse {
    let path = req.uri().path();
    if path == shared.path {
        scrape(shared, req).await
    } else if path == "/healthz" {
        match *req.method() {
            Method::GET | Method::HEAD => plain(StatusCode::OK, "ok\n"),
            _ => method_not_allowed(shared),
        }
    } else {
        shared.metrics.error("not_found");
        plain(
            StatusCode::NOT_FOUND,
            "not found: metrics are served at the configured path\n",
        )
    }
}

fn method_not_allowed(shared: &Shared) -> HttpResponse {
    shared.metrics.error("method_not_allowed");
    let mut response = plain(
        StatusCode::METHOD_NOT_ALLOWED,
        "only GET and HEAD are allowed\n",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

/// The format asked for by a `format=text|openmetrics` query parameter
/// (for scrape configs that cannot set `Accept`), else by `Accept`.
fn requested_format(req: &Request<Incoming>) -> Format {
    let query = req.uri().query().unwrap_or("");
    for pair in query.split('&') {
        match pair {
            "format=text" => return Format::PrometheusText,
            "format=openmetrics" => return Format::OpenMetrics,
            _ => {}
        }
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    Format::from_accept(accept)
}

/// Whether `Accept-Encoding` allows gzip (explicitly or through `*`), q > 0.
fn accepts_gzip(req: &Request<Incoming>) -> bool {
    let Some(value) = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    value.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("").to_ascii_lowercase();
        let q = parts
            .find_map(|p| {
                p.strip_prefix("q=")
                    .map(|q| q.parse::<f32>().unwrap_or(0.0))
            })
            .unwrap_or(1.0);
        (coding == "gzip" || coding == "*") && q > 0.0
    })
}

async fn scrape(shared: &Shared, req: Request<Incoming>) -> HttpResponse {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return method_not_allowed(shared);
    }
    let has_body =
        req.body().size_hint().lower() > 0 || req.headers().contains_key(header::TRANSFER_ENCODING);
    if has_body {
        shared.metrics.error("body_refused");
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "scrape requests take no body\n",
        );
    }
    if let Some((auth, expected)) = &shared.auth {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        if !given.is_some_and(|g| authorized(expected, g)) {
            shared.metrics.error("unauthorized");
            let mut response = plain(StatusCode::UNAUTHORIZED, "credentials required\n");
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(auth.challenge()),
            );
            return response;
        }
    }
    let format = requested_format(&req);
    let gzip = shared.gzip && accepts_gzip(&req);

    let permit =
        match tokio::time::timeout(shared.queue_timeout, shared.scrape_slots.acquire()).await {
            Ok(Ok(permit)) => permit,
            _ => {
                shared.metrics.error("busy");
                let mut response = plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many concurrent scrapes\n",
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
        };

    let started = Instant::now();
    let registry = shared.registry.clone();
    let mut encoder = shared.encoders.lock().pop().unwrap_or_default();
    // Encoding walks every series: run it off the runtime's worker threads.
    let encode = tokio::task::spawn_blocking(move || {
        let encoded = encoder.encode(&registry, format);
        let plain_len = encoded.len();
        let body = if gzip {
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(plain_len / 4),
                flate2::Compression::fast(),
            );
            gz.write_all(encoded)
                .and_then(|()| gz.finish())
                .map(Bytes::from)
        } else {
            Ok(Bytes::copy_from_slice(encoded))
        };
        (encoder, plain_len, body)
    });
    let outcome = tokio::time::timeout(shared.response_timeout, encode).await;
    drop(permit);
    let (encoder, plain_len, body) = match outcome {
        Ok(Ok((encoder, plain_len, Ok(body)))) => (encoder, plain_len, body),
        Ok(_) => {
            shared.metrics.error("internal");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n");
        }
        Err(_) => {
            shared.metrics.error("timeout");
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "encoding took longer than the response timeout\n",
            );
        }
    };
    shared.encoders.lock().push(encoder);

    let format_label = match format {
        Format::PrometheusText => "text",
        Format::OpenMetrics => "openmetrics",
    };
    let _ = shared.metrics.scrapes.with(&[format_label], |c| c.inc());
    shared.metrics.encoded_bytes.add(plain_len as u64);
    shared.metrics.duration.record_duration(started.elapsed());

    let mut response = Response::new(Full::new(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}
