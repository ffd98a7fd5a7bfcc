//! Real servers on 127.0.0.1 for the tests: Prometheus and the
//! Pushgateway as child processes (killed when dropped), a hostile HTTP
//! peer ([`FakePeer`]), and a minimal blocking HTTP client. Everything polls
//! for readiness.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub use crate::{free_port, poll};

/// A directory removed when dropped.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory under the system's temporary one, named after `tag`.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "beluga-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed when dropped.
#[derive(Debug)]
pub struct Process {
    child: Child,
    /// Where its standard output and error go.
    pub log: PathBuf,
}

impl Process {
    /// Starts `program` with `args`, its output in `log`; panics, saying how to install it, if it cannot start.
    pub fn spawn(program: &str, args: &[String], log: PathBuf) -> Process {
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {program} ({e}): run scripts/test.sh, which installs it")
            });
        Process { child, log }
    }

    /// What the process wrote so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process has exited (it is not waited for twice: `Drop`
    /// then gets the same status).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

/// How many ports a server that failed to bind one is started on, each
/// chosen afresh, before the test gives up.
const BIND_ATTEMPTS: usize = 5;

/// Starts a server on a port [`free_port`] chose, until one start answers:
/// `launch(port)` returns `Err(log)` when the server exited before
/// answering. The port is free when chosen, but another test's server may
/// take it before this one binds it; then this one exits (and a readiness
/// probe must not mistake the other for it: each launch checks identity).
fn start_on_a_free_port<T>(what: &str, mut launch: impl FnMut(u16) -> Result<T, String>) -> T {
    let mut failures = Vec::new();
    for _ in 0..BIND_ATTEMPTS {
        let port = free_port();
        match launch(port) {
            Ok(started) => return started,
            Err(log) if log.contains("address already in use") => failures.push(port),
            Err(log) => panic!("{what} exited before it was ready:\n{log}"),
        }
    }
    panic!("{what} found each of the ports {failures:?} taken when it started")
}

/// Polls until `process` answers on `addr` as itself (`is_me`, given the
/// response to `GET identity_path`): `Err(log)` if it exits first.
fn wait_until_ready(
    what: &str,
    process: &mut Process,
    addr: SocketAddr,
    identity_path: &str,
    is_me: impl Fn(&serde_json::Value) -> bool,
) -> Result<(), String> {
    poll(what, Duration::from_secs(30), || {
        if process.exited() {
            return Some(Err(process.log_text()));
        }
        request(addr, "GET", "/-/ready", &[], b"")
            .ok()
            .filter(|r| r.status == 200)?;
        let identity = request(addr, "GET", identity_path, &[], b"")
            .ok()
            .filter(|r| r.status == 200)?;
        let json: serde_json::Value = serde_json::from_slice(&identity.body).ok()?;
        // Another test's server on this port answers, but not as this one:
        // keep polling until this one exits (or the other goes away).
        is_me(&json).then_some(Ok(()))
    })
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response as [`request`] read it.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lower-case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The whole body, de-chunked.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 (lossy).
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }
}

/// Sends one raw HTTP/1.1 request (with `Connection: close`) and reads the
/// whole response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw, method == "HEAD")
}

fn parse_response(raw: &[u8], head_only: bool) -> std::io::Result<HttpResponse> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("non-UTF-8 head"))?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked && !head_only {
        body = dechunk(&body).ok_or_else(|| bad("bad chunked body"))?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).ok()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// `GET target` on `addr` with these headers; panics if no response comes.
pub fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> HttpResponse {
    request(addr, "GET", target, headers, b"").expect("GET failed")
}

/// `text` percent-encoded for a URL query (everything but unreserved characters).
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A real Prometheus server started for one test.
#[derive(Debug)]
pub struct Prometheus {
    /// Where it listens.
    pub addr: SocketAddr,
    _process: Option<Process>,
    _dir: TempDir,
    args: Vec<String>,
}

impl Prometheus {
    /// Starts Prometheus with a 1 s scrape interval and these
    /// `scrape_configs` entries (YAML, already indented as list items).
    pub fn start(scrape_configs: &str) -> Prometheus {
        Prometheus::start_with(scrape_configs, &[])
    }

    /// Like [`start`](Self::start), with extra command-line flags (e.g.
    /// `--enable-feature=native-histograms`).
    pub fn start_with(scrape_configs: &str, flags: &[&str]) -> Prometheus {
        let dir = TempDir::new("prometheus");
        let config = dir.0.join("prometheus.yml");
        std::fs::write(
            &config,
            format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{scrape_configs}"),
        )
        .unwrap();
        let mut prometheus = Prometheus {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            _process: None,
            _dir: dir,
            args: Vec::new(),
        };
        start_on_a_free_port("Prometheus", |port| {
            prometheus.addr = SocketAddr::from(([127, 0, 0, 1], port));
            prometheus.args = [
                format!("--config.file={}", config.display()),
                format!("--storage.tsdb.path={}", prometheus.data_dir()),
                format!("--web.listen-address={}", prometheus.addr),
            ]
            .into_iter()
            .chain(flags.iter().map(|f| f.to_string()))
            .collect();
            prometheus.launch()
        });
        prometheus
    }

    /// Stops the server (its data directory stays).
    #[allow(dead_code)]
    pub fn stop(&mut self) {
        self._process = None;
    }

    /// Starts the server again on the same port and data directory (after
    /// [`stop`](Self::stop)), and waits until it is ready.
    pub fn restart(&mut self) {
        if let Err(log) = self.launch() {
            panic!("Prometheus exited before it was ready:\n{log}");
        }
    }

    /// Its data directory, which also tells it apart from another test's
    /// Prometheus.
    fn data_dir(&self) -> String {
        self._dir.0.join("data").display().to_string()
    }

    /// Starts the server with `args` and waits until it is ready, answering
    /// as itself (its data directory): `Err(log)` if it exits first.
    fn launch(&mut self) -> Result<(), String> {
        self._process = None;
        let mut process =
            Process::spawn("prometheus", &self.args, self._dir.0.join("prometheus.log"));
        let data = self.data_dir();
        let ready = wait_until_ready(
            "Prometheus to be ready",
            &mut process,
            self.addr,
            "/api/v1/status/flags",
            |flags| flags["data"]["storage.tsdb.path"] == data.as_str(),
        );
        self._process = Some(process);
        ready
    }

    /// Runs an instant query and returns `data.result`.
    pub fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        self.results(
            expr,
            &format!("/api/v1/query?query={}", percent_encode(expr)),
        )
    }

    /// An instant query evaluated at `time` (Unix seconds): `data.result`.
    pub fn query_at(&self, expr: &str, time: f64) -> Vec<serde_json::Value> {
        self.results(
            expr,
            &format!("/api/v1/query?query={}&time={time}", percent_encode(expr)),
        )
    }

    /// `data.result` of the query API at `path` (asking for `expr`).
    fn results(&self, expr: &str, path: &str) -> Vec<serde_json::Value> {
        let response = get(self.addr, path, &[]);
        assert_eq!(response.status, 200, "query {expr}: {}", response.text());
        let json: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// `/api/v1/query_exemplars` for `query` over the last hour (what
    /// Grafana asks to draw a panel's exemplars): every exemplar of every
    /// series, as `(series labels, exemplar)` pairs.
    pub fn exemplars(&self, query: &str) -> Vec<(serde_json::Value, serde_json::Value)> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let response = get(
            self.addr,
            &format!(
                "/api/v1/query_exemplars?query={}&start={}&end={}",
                percent_encode(query),
                now - 3600,
                now + 60
            ),
            &[],
        );
        assert_eq!(response.status, 200, "{}", response.text());
        let json: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        json["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .flat_map(|series| {
                let labels = series["seriesLabels"].clone();
                series["exemplars"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |e| (labels.clone(), e))
            })
            .collect()
    }

    /// Polls until `expr` returns at least one series.
    pub fn wait_for(&self, expr: &str, limit: Duration) -> Vec<serde_json::Value> {
        poll(
            &format!("Prometheus to return data for {expr}"),
            limit,
            || Some(self.query(expr)).filter(|r| !r.is_empty()),
        )
    }

    /// What Prometheus logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.0.join("prometheus.log")).unwrap_or_default()
    }
}

/// The value of an instant-query result as a float.
pub fn value_of(series: &serde_json::Value) -> f64 {
    series["value"][1].as_str().unwrap().parse().unwrap()
}

/// A real Pushgateway started for one test.
#[derive(Debug)]
pub struct Pushgateway {
    /// Where it listens.
    pub addr: SocketAddr,
    _process: Process,
    _dir: TempDir,
}

impl Pushgateway {
    /// A Pushgateway on a free port, polled until it answers as itself.
    pub fn start() -> Pushgateway {
        start_on_a_free_port("the Pushgateway", Pushgateway::start_on)
    }

    /// Starts a Pushgateway on `port` and waits until it answers as itself:
    /// `Err(log)` if it exits first (when the port is taken, say).
    pub fn start_on(port: u16) -> Result<Pushgateway, String> {
        let dir = TempDir::new("pushgateway");
        let persistence = dir.0.join("pg.data").display().to_string();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut process = Process::spawn(
            "prometheus-pushgateway",
            &[
                format!("--web.listen-address={addr}"),
                format!("--persistence.file={persistence}"),
            ],
            dir.0.join("pushgateway.log"),
        );
        wait_until_ready(
            "the Pushgateway to be ready",
            &mut process,
            addr,
            "/api/v1/status",
            |status| status["data"]["flags"]["persistence.file"] == persistence.as_str(),
        )?;
        Ok(Pushgateway {
            addr,
            _process: process,
            _dir: dir,
        })
    }
}

/// How a [`FakePeer`] answers every request.
#[derive(Debug, Clone, Copy)]
pub enum Misbehaviour {
    /// Reads the request and never answers.
    Hang,
    /// Answers with this status and a chunked body that never ends (bounded
    /// at 4 GiB so that the test stops by itself even if the client never
    /// hangs up).
    EndlessBody(u16),
    /// Answers every request (keep-alive) with this status, an empty body
    /// and this `Retry-After` value; counts requests in `FakePeer::requests`.
    RetryAfter(u16, &'static str),
}

/// A hostile HTTP peer on 127.0.0.1: a gateway or collector that hangs or
/// streams an endless answer. It counts connections and the body bytes it
/// managed to write before the client hung up.
#[derive(Debug)]
pub struct FakePeer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Connections accepted.
    pub connections: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Requests answered (`RetryAfter` only).
    pub requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Body bytes written before the client hung up (`EndlessBody`).
    pub written: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Connections whose handler has finished (the client hung up).
    pub finished: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FakePeer {
    /// Starts the peer on a port the OS chooses, misbehaving as `behaviour` says.
    pub fn start(behaviour: Misbehaviour) -> FakePeer {
        use std::sync::atomic::{AtomicBool, AtomicU64};
        use std::sync::Arc;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (connections, requests, written, finished) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let peer = FakePeer {
            addr,
            connections: connections.clone(),
            requests: requests.clone(),
            written: written.clone(),
            finished: finished.clone(),
            stop: stop.clone(),
        };
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                connections.fetch_add(1, Ordering::SeqCst);
                let (written, finished, stop) = (written.clone(), finished.clone(), stop.clone());
                let requests = requests.clone();
                std::thread::spawn(move || {
                    if !read_head(&mut stream) {
                        finished.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    match behaviour {
                        Misbehaviour::RetryAfter(status, wait) => loop {
                            requests.fetch_add(1, Ordering::SeqCst);
                            let answer = format!(
                                "HTTP/1.1 {status} Scripted\r\nretry-after: {wait}\r\ncontent-length: 0\r\n\r\n"
                            );
                            if stop.load(Ordering::SeqCst)
                                || stream.write_all(answer.as_bytes()).is_err()
                                || !read_head(&mut stream)
                            {
                                break;
                            }
                        },
                        Misbehaviour::Hang => {
                            // Hold the connection until the client leaves or the peer stops.
                            let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
                            let mut byte = [0u8; 1];
                            while !stop.load(Ordering::SeqCst) {
                                match stream.read(&mut byte) {
                                    Ok(0) => break,
                                    Ok(_) => {}
                                    Err(e)
                                        if e.kind() == std::io::ErrorKind::WouldBlock
                                            || e.kind() == std::io::ErrorKind::TimedOut => {}
                                    Err(_) => break,
                                }
                            }
                        }
                        Misbehaviour::EndlessBody(status) => {
                            let head = format!(
                                "HTTP/1.1 {status} Scripted\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"
                            );
                            let chunk = format!("{:x}\r\n{}\r\n", 16384, "x".repeat(16384));
                            if stream.write_all(head.as_bytes()).is_ok() {
                                for _ in 0..(1u64 << 18) {
                                    if stop.load(Ordering::SeqCst)
                                        || stream.write_all(chunk.as_bytes()).is_err()
                                    {
                                        break;
                                    }
                                    written.fetch_add(16384, Ordering::SeqCst);
                                }
                            }
                        }
                    }
                    finished.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        peer
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
    }
}

/// Reads a request head and its `Content-Length` body; false when the
/// client hung up first.
fn read_head(stream: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).is_ok()
}
