//! The HTTP side: accept loop, routing, limits, content negotiation.

use std::convert::Infallible;
use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use beluga_metrics::{Encoder, Exposition, Registry};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::auth::{authorized, Auth};
use crate::self_metrics::SelfMetrics;
use crate::unsent::{ConnectionShare, UnsentBudget, PRESSURE_WRITE_TIMEOUT};

/// Everything a request handler needs, shared by all connections.
pub(crate) struct Shared {
    pub(crate) registry: Registry,
    pub(crate) path: String,
    pub(crate) auth: Option<(Auth, String)>,
    /// Encodes running at once; a permit lives as long as its encode, even
    /// one that outlives the response timeout.
    pub(crate) scrape_slots: Arc<Semaphore>,
    pub(crate) queue_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) gzip: bool,
    /// Native-histogram schema of protobuf scrapes (`None`: classic only).
    pub(crate) native_schema: Option<i8>,
    /// Encoders (and their grown buffers) reused from scrape to scrape.
    pub(crate) encoders: parking_lot::Mutex<Vec<Encoder>>,
    pub(crate) metrics: SelfMetrics,
    pub(crate) deliveries: Arc<Deliveries>,
    /// Response bytes handed to connections and not yet written.
    pub(crate) unsent: Arc<UnsentBudget>,
}

/// Which `GET` scrapes were delivered: each `GET` of the metrics path gets a
/// sequence number when its encode starts, and the highest number whose
/// whole body was handed to the connection is kept. So "a scrape that began
/// after X was delivered" can be asked without counting `HEAD` requests,
/// errors, or encodes that began before X.
#[derive(Debug, Default)]
pub(crate) struct Deliveries {
    begun: AtomicU64,
    delivered: AtomicU64,
}

impl Deliveries {
    /// The sequence number of the last `GET` encode begun so far.
    pub(crate) fn mark(&self) -> u64 {
        self.begun.load(Ordering::SeqCst)
    }

    /// Whether a `GET` whose encode began after `mark` was delivered.
    pub(crate) fn delivered_since(&self, mark: u64) -> bool {
        self.delivered.load(Ordering::SeqCst) > mark
    }

    fn begin(&self) -> u64 {
        self.begun.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// A response body that records, for a `GET` scrape, when all of it has
/// been handed to the connection.
pub(crate) struct ScrapeBody {
    inner: Full<Bytes>,
    delivery: Option<(Arc<Deliveries>, u64)>,
}

impl ScrapeBody {
    fn new(bytes: Bytes) -> Self {
        ScrapeBody {
            inner: Full::new(bytes),
            delivery: None,
        }
    }
}

impl Body for ScrapeBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            if let Some((deliveries, sequence)) = self.delivery.take() {
                deliveries.delivered.fetch_max(sequence, Ordering::SeqCst);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
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
    pub(crate) max_connections: usize,
    pub(crate) write_timeout: Duration,
    pub(crate) idle_timeout: Duration,
}

/// A connection's stream, stamped with when it last moved bytes and since
/// when a write has been waiting on the client, so the connection's
/// watchdog can close a client that stopped reading or went quiet. Only
/// bytes count as progress: hyper polls (and flushes) an idle connection
/// whenever its task wakes, which must not keep it alive.
struct WatchedStream {
    stream: tokio::net::TcpStream,
    activity: Arc<Activity>,
}

/// Milliseconds since the connection was accepted.
struct Activity {
    last_progress: AtomicU64,
    /// 0 when no write is blocked.
    write_blocked_since: AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
    /// The response bytes this connection holds unwritten.
    unsent: ConnectionShare,
}

impl Activity {
    fn new(budget: Arc<UnsentBudget>) -> Activity {
        Activity {
            last_progress: AtomicU64::new(0),
            write_blocked_since: AtomicU64::new(0),
            epoch: std::sync::OnceLock::new(),
            unsent: ConnectionShare::new(budget),
        }
    }

    fn now(&self) -> u64 {
        let epoch = self.epoch.get_or_init(Instant::now);
        // +1 so that 0 can mean "not blocked".
        epoch.elapsed().as_millis() as u64 + 1
    }

    fn progressed(&self) {
        self.last_progress.store(self.now(), Ordering::Relaxed);
    }

    fn write_blocked(&self, blocked: bool) {
        if !blocked {
            self.write_blocked_since.store(0, Ordering::Relaxed);
        } else if self.write_blocked_since.load(Ordering::Relaxed) == 0 {
            self.write_blocked_since
                .store(self.now(), Ordering::Relaxed);
        }
    }

    /// Why the connection should be closed now, if it should.
    fn expired(&self, limits: &ConnectionLimits) -> Option<&'static str> {
        let now = self.now();
        let blocked = self.write_blocked_since.load(Ordering::Relaxed);
        // Clients that hold unsent bodies while the budget runs low get
        // less time: they are what fills it.
        let write_timeout = if self.unsent.holds_bytes() && self.unsent.budget().under_pressure() {
            limits.write_timeout.min(PRESSURE_WRITE_TIMEOUT)
        } else {
            limits.write_timeout
        };
        if blocked != 0 && now - blocked > write_timeout.as_millis() as u64 {
            return Some("write_timeout");
        }
        let last = self.last_progress.load(Ordering::Relaxed);
        (now.saturating_sub(last) > limits.idle_timeout.as_millis() as u64)
            .then_some("idle_timeout")
    }
}

impl tokio::io::AsyncRead for WatchedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.progressed();
        }
        polled
    }
}

impl tokio::io::AsyncWrite for WatchedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.note_write(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.note_write(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl WatchedStream {
    fn note_write(&self, polled: &Poll<std::io::Result<usize>>) {
        match polled {
            Poll::Ready(Ok(written)) => {
                self.activity.write_blocked(false);
                if *written > 0 {
                    self.activity.progressed();
                    self.activity.unsent.written(*written as u64);
                }
            }
            Poll::Ready(Err(_)) => self.activity.write_blocked(false),
            Poll::Pending => self.activity.write_blocked(true),
        }
    }
}

type HttpResponse = Response<ScrapeBody>;

fn plain(status: StatusCode, body: &'static str) -> HttpResponse {
    let mut response = Response::new(ScrapeBody::new(Bytes::from_static(body.as_bytes())));
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
    let limits = Arc::new(limits);
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
                while connections.try_join_next().is_some() {}
                if connections.len() >= limits.max_connections {
                    // Closed at once: a flood of clients must not take every
                    // file descriptor from the scrapes that matter.
                    shared.metrics.error("connection_limit");
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let mut shutdown = shutdown.clone();
                let limits = limits.clone();
                connections.spawn(async move {
                    let activity = Arc::new(Activity::new(shared.unsent.clone()));
                    activity.progressed();
                    let io = TokioIo::new(WatchedStream {
                        stream,
                        activity: activity.clone(),
                    });
                    let metrics = shared.metrics.clone();
                    let share = activity.clone();
                    let service = service_fn(move |req| {
                        let (shared, share) = (shared.clone(), share.clone());
                        async move { Ok::<_, Infallible>(handle(&shared, &share.unsent, req).await) }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(limits.header_read_timeout)
                        .max_buf_size(limits.max_header_bytes)
                        .serve_connection(io, service);
                    tokio::pin!(connection);
                    let check_every = limits
                        .write_timeout
                        .min(limits.idle_timeout)
                        .min(PRESSURE_WRITE_TIMEOUT)
                        .div_f64(4.0)
                        .max(Duration::from_millis(10));
                    let mut watchdog = tokio::time::interval(check_every);
                    loop {
                        tokio::select! {
                            _ = connection.as_mut() => return,
                            _ = watchdog.tick() => {
                                if let Some(reason) = activity.expired(&limits) {
                                    metrics.error(reason);
                                    return; // drops the connection
                                }
                            }
                            _ = shutdown.changed() => {
                                connection.as_mut().graceful_shutdown();
                                let _ = connection.await;
                                return;
                            }
                        }
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
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

async fn handle(shared: &Shared, unsent: &ConnectionShare, req: Request<Incoming>) -> HttpResponse {
    let path = req.uri().path();
    if path == shared.path {
        scrape(shared, unsent, req).await
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

/// The exposition asked for by a `format=text|openmetrics|protobuf` query
/// parameter (for scrape configs that cannot set `Accept`), else by
/// `Accept`.
fn requested_exposition(req: &Request<Incoming>) -> Exposition {
    let query = req.uri().query().unwrap_or("");
    for pair in query.split('&') {
        match pair {
            "format=text" => return Exposition::PrometheusText,
            "format=openmetrics" => return Exposition::OpenMetrics,
            "format=protobuf" => return Exposition::Protobuf,
            _ => {}
        }
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    Exposition::from_accept(accept)
}

/// Whether `Accept-Encoding` allows gzip, as RFC 9110 reads it: an explicit
/// `gzip` (or `x-gzip`) entry decides by its q-value; otherwise `*` does;
/// `q=0` refuses. Coding and parameter names are case-insensitive; a q-value
/// that does not parse counts as 0.
fn accepts_gzip(req: &Request<Incoming>) -> bool {
    let Some(value) = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    gzip_allowed(value)
}

fn gzip_allowed(accept_encoding: &str) -> bool {
    let mut explicit = None;
    let mut wildcard = None;
    for item in accept_encoding.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, q)| q.trim().parse::<f32>().unwrap_or(0.0));
        match coding.as_str() {
            "gzip" | "x-gzip" => explicit = Some(explicit.map_or(q, |e: f32| e.max(q))),
            "*" => wildcard = Some(q),
            _ => {}
        }
    }
    explicit.or(wildcard).is_some_and(|q| q > 0.0)
}

/// `503` with `Retry-After: 1` for a scrape refused by a limit, counted
/// under `reason`.
fn unavailable(shared: &Shared, reason: &'static str, why: &'static str) -> HttpResponse {
    shared.metrics.error(reason);
    let mut response = plain(StatusCode::SERVICE_UNAVAILABLE, why);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// `503` for a scrape whose body would pass the unsent-bytes budget.
fn over_unsent_budget(shared: &Shared) -> HttpResponse {
    unavailable(
        shared,
        "unsent_bytes",
        "too many scrape responses are waiting on clients that do not read them\n",
    )
}

async fn scrape(shared: &Shared, unsent: &ConnectionShare, req: Request<Incoming>) -> HttpResponse {
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
    let exposition = requested_exposition(&req);
    let gzip = shared.gzip && accepts_gzip(&req);
    // A HEAD's body is never written, so only a GET holds bytes.
    let sends_body = req.method() == Method::GET;
    if sends_body && shared.unsent.full() {
        return over_unsent_budget(shared);
    }

    let permit = match tokio::time::timeout(
        shared.queue_timeout,
        shared.scrape_slots.clone().acquire_owned(),
    )
    .await
    {
        Ok(Ok(permit)) => permit,
        _ => return unavailable(shared, "busy", "too many concurrent scrapes\n"),
    };

    let started = Instant::now();
    let sequence = (req.method() == Method::GET).then(|| shared.deliveries.begin());
    let registry = shared.registry.clone();
    let mut encoder = shared
        .encoders
        .lock()
        .pop()
        .unwrap_or_else(|| Encoder::new().native_histograms(shared.native_schema));
    // Encoding walks every series: run it off the runtime's worker threads.
    // The permit moves with it, so an encode that outlives the response
    // timeout still holds its slot until it really ends.
    let encode = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let encoded = encoder.encode_exposition(&registry, exposition);
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
    if sends_body && !unsent.reserve(body.len() as u64) {
        return over_unsent_budget(shared);
    }

    let format_label = match exposition {
        Exposition::PrometheusText => "text",
        Exposition::OpenMetrics => "openmetrics",
        Exposition::Protobuf => "protobuf",
    };
    let _ = shared.metrics.scrapes.with(&[format_label], |c| c.inc());
    shared.metrics.encoded_bytes.add(plain_len as u64);
    shared.metrics.duration.record_duration(started.elapsed());

    let mut body = ScrapeBody::new(body);
    body.delivery = sequence.map(|sequence| (shared.deliveries.clone(), sequence));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(exposition.content_type()),
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

#[cfg(test)]
mod tests {
    use super::gzip_allowed;

    #[test]
    fn accept_encoding_follows_rfc_9110() {
        let cases = [
            ("gzip", true),
            ("GZIP", true),
            ("x-gzip", true),
            ("deflate, gzip;q=0.5", true),
            ("*", true),
            ("gzip;q=0", false),
            ("gzip;q=0.000", false),
            ("gzip;Q=0", false),
            ("gzip ; q = 0", false),
            ("gzip;q=0, *", false),
            ("*, gzip;q=0", false),
            ("*;q=0", false),
            ("identity", false),
            ("gzip;q=nonsense", false),
            ("br, *;q=0.1", true),
            ("", false),
        ];
        for (header, expected) in cases {
            assert_eq!(gzip_allowed(header), expected, "{header:?}");
        }
    }
}
