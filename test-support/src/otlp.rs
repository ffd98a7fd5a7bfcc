//! The Python OTLP receivers (HTTP and gRPC) as test fixtures. They decode
//! with the PyPI `opentelemetry-proto` package, independently of the
//! exporter's code, and record every request as a JSON line.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::poll;
use crate::servers::Process;

/// Starts `exporter-otlp/tests/<receiver>` (a Python receiver decoding with
/// the PyPI `opentelemetry-proto` package) on `port` (0: one the OS
/// chooses), recording into a fresh JSON-lines file; returns that file, the
/// file the receiver writes its bound port to once listening, and the
/// process (its output in a log beside the records).
fn spawn_python(receiver: &str, port: u16, script: &str) -> (PathBuf, PathBuf, Process) {
    static N: AtomicU32 = AtomicU32::new(0);
    let python = crate::otlp_python().display().to_string();
    let out = std::env::temp_dir().join(format!(
        "beluga-otlp-{}-{}.jsonl",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&out);
    let ready = out.with_extension("port");
    let _ = std::fs::remove_file(&ready);
    // The receivers live beside the exporter's tests.
    let path = format!(
        "{}/../exporter-otlp/tests/{receiver}",
        env!("CARGO_MANIFEST_DIR")
    );
    let args = [
        path,
        "--port".into(),
        port.to_string(),
        "--out".into(),
        out.display().to_string(),
        "--script".into(),
        script.into(),
        "--ready".into(),
        ready.display().to_string(),
    ];
    let process = Process::spawn(&python, &args, out.with_extension("log"));
    (out, ready, process)
}

/// The JSON lines a Python receiver appended to `out`, in order.
fn read_records(out: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Polls until `out` holds at least `n` records.
fn wait_for_records(out: &std::path::Path, n: usize, limit: Duration) -> Vec<Value> {
    poll(&format!("{n} OTLP request(s)"), limit, || {
        Some(read_records(out)).filter(|r| r.len() >= n)
    })
}

/// A running Python receiver and the JSON-lines file it records into; the
/// HTTP and gRPC fixtures both deref to it.
#[derive(Debug)]
pub struct ReceiverProcess {
    /// The port the receiver listens on (127.0.0.1).
    pub port: u16,
    out: PathBuf,
    process: Process,
}

impl ReceiverProcess {
    /// Starts a receiver and waits until it listens. With `port` 0 the OS
    /// chooses the port as the receiver binds, so no other process can
    /// take it in between (a port picked beforehand could be, and a test
    /// then talked to another test's receiver); a given port that is taken
    /// fails here, clearly.
    fn spawn(receiver: &str, port: u16, script: &str) -> ReceiverProcess {
        let (out, ready, mut process) = spawn_python(receiver, port, script);
        let port = poll(
            &format!("the OTLP receiver {receiver} to listen"),
            Duration::from_secs(20),
            || {
                if process.exited() {
                    panic!(
                        "the receiver {receiver} exited before listening on port {port}:\n{}",
                        process.log_text()
                    );
                }
                std::fs::read_to_string(&ready)
                    .ok()?
                    .trim()
                    .parse::<u16>()
                    .ok()
            },
        );
        let _ = std::fs::remove_file(&ready);
        ReceiverProcess { port, out, process }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request (or call) received so far, in order.
    pub fn requests(&self) -> Vec<Value> {
        read_records(&self.out)
    }

    /// Waits until at least `n` requests (or calls) have arrived.
    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<Value> {
        wait_for_records(&self.out, n, limit)
    }
}

impl Drop for ReceiverProcess {
    /// Removes the records and the log; the process is killed as its field
    /// drops.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.out);
        let _ = std::fs::remove_file(&self.process.log);
    }
}

/// The Python OTLP/HTTP receiver as a test fixture.
#[derive(Debug)]
pub struct Receiver(ReceiverProcess);

impl std::ops::Deref for Receiver {
    type Target = ReceiverProcess;
    fn deref(&self) -> &ReceiverProcess {
        &self.0
    }
}

impl Receiver {
    /// A receiver on a port the OS chooses.
    pub fn start(script: &str) -> Receiver {
        Receiver::start_on(0, script)
    }

    /// A receiver on `port`, answering its readiness check.
    pub fn start_on(port: u16, script: &str) -> Receiver {
        let receiver = Receiver(ReceiverProcess::spawn("otlp_receiver.py", port, script));
        assert!(
            receiver.ready(),
            "the OTLP receiver listens but does not answer"
        );
        receiver
    }

    fn ready(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = stream.write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200")
    }
}

/// The metrics of the request's single resource and scope, by name.
pub fn metrics(request: &Value) -> Vec<Value> {
    request["request"]["resource_metrics"][0]["scope_metrics"][0]["metrics"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The metric `name` in a request; panics, showing the request, if it is missing.
pub fn metric(request: &Value, name: &str) -> Value {
    metrics(request)
        .into_iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("metric {name} not in the request: {request:#}"))
}

/// The string value of the resource attribute `key`, if there is one.
pub fn resource_attribute(request: &Value, key: &str) -> Option<String> {
    request["request"]["resource_metrics"][0]["resource"]["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .and_then(|a| a["value"]["string_value"].as_str().map(str::to_string))
}

/// An int64/uint64 field, which protobuf's JSON mapping writes as a string.
pub fn int(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap(),
        Value::Number(n) => n.as_u64().unwrap(),
        Value::Null => 0,
        other => panic!("not an integer: {other}"),
    }
}

/// The string value of the data point attribute `key`, if there is one.
pub fn attribute(point: &Value, key: &str) -> Option<String> {
    point["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .and_then(|a| a["value"]["string_value"].as_str().map(str::to_string))
}

/// The Python OTLP/gRPC receiver (grpcio + opentelemetry-proto) as a test
/// fixture; requests land in the same JSON-lines form as [`Receiver`]'s,
/// with the call's metadata under `metadata`.
#[derive(Debug)]
pub struct GrpcReceiver(ReceiverProcess);

impl std::ops::Deref for GrpcReceiver {
    type Target = ReceiverProcess;
    fn deref(&self) -> &ReceiverProcess {
        &self.0
    }
}

impl GrpcReceiver {
    /// A receiver on a port the OS chooses.
    pub fn start(script: &str) -> GrpcReceiver {
        GrpcReceiver::start_on(0, script)
    }

    /// A receiver on `port`.
    pub fn start_on(port: u16, script: &str) -> GrpcReceiver {
        GrpcReceiver(ReceiverProcess::spawn(
            "otlp_grpc_receiver.py",
            port,
            script,
        ))
    }
}
