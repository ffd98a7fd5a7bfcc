//! Helpers shared by the workspace's test suites. Not published; every
//! crate takes it as a dev-dependency only.
//!
//! # Outside programs
//!
//! Some tests check the project against the real thing: Prometheus,
//! `promtool`, the Pushgateway, and a Python OTLP receiver built on the
//! `opentelemetry-proto` package. [`available`] tells a test whether the
//! program it needs is here. Under plain `cargo test` a missing program
//! skips the test with one line on stderr saying what it needs and how to
//! get it, so `cargo test --workspace` passes on a machine with only Rust;
//! `scripts/test.sh` installs every program and sets
//! `BELUGA_REQUIRE_EXTERNAL=1`, which turns a missing one into a failure, so
//! CI can never pass by skipping.
//!
//! ```
//! use beluga_test_support::{require, External};
//! fn a_test() {
//!     require!(External::Prometheus);
//!     // ... start Prometheus and scrape ...
//! }
//! # a_test();
//! ```

#![deny(missing_docs)]
// One `unsafe impl`: the counting allocator (`alloc.rs`), which forwards to
// the system allocator.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod alloc;
pub mod exposition;
pub mod otlp;
pub mod servers;

use std::fmt;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The environment variable that makes a missing outside program a test
/// failure instead of a skip (`scripts/test.sh` sets it).
pub const REQUIRE_ENV: &str = "BELUGA_REQUIRE_EXTERNAL";

/// An outside program some tests need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum External {
    /// The `prometheus` server (Debian's `prometheus` package).
    Prometheus,
    /// `promtool` (Debian's `prometheus` package).
    Promtool,
    /// `prometheus-pushgateway` (Debian's package of that name).
    Pushgateway,
    /// A Python with `opentelemetry-proto`, `grpcio` and `grpcio-status`
    /// ([`otlp_python`]): the OTLP receivers the exporter is checked
    /// against.
    OtlpPython,
}

impl fmt::Display for External {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            External::Prometheus => "the `prometheus` server (Debian package `prometheus`)",
            External::Promtool => "`promtool` (Debian package `prometheus`)",
            External::Pushgateway => "`prometheus-pushgateway` (Debian package of that name)",
            External::OtlpPython => {
                "a Python with opentelemetry-proto, grpcio and grpcio-status (the .venv scripts/test.sh creates)"
            }
        })
    }
}

/// The Python the OTLP receivers run on: `BELUGA_OTLP_PYTHON`, else the
/// workspace's `.venv` (which `scripts/test.sh` creates).
///
/// ```
/// assert!(beluga_test_support::otlp_python().to_string_lossy().contains("python"));
/// ```
pub fn otlp_python() -> PathBuf {
    std::env::var_os("BELUGA_OTLP_PYTHON").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python")),
        PathBuf::from,
    )
}

/// Whether `program args` runs and exits successfully.
fn runs(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn present(tool: External) -> bool {
    static FOUND: [OnceLock<bool>; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    *FOUND[tool as usize].get_or_init(|| match tool {
        External::Prometheus => runs("prometheus", &["--version"]),
        External::Promtool => runs("promtool", &["--version"]),
        External::Pushgateway => runs("prometheus-pushgateway", &["--version"]),
        External::OtlpPython => runs(
            otlp_python(),
            &[
                "-c",
                "import opentelemetry.proto.collector.metrics.v1.metrics_service_pb2_grpc, grpc, grpc_status",
            ],
        ),
    })
}

/// Whether `tool` is here. When it is not: with `BELUGA_REQUIRE_EXTERNAL`
/// set this panics (the test fails, saying what is missing); otherwise it
/// prints one line saying the calling test is skipped and why, and returns
/// false. Use [`require!`] at the top of a test.
///
/// ```
/// use beluga_test_support::{available, External};
/// if available(External::Promtool) {
///     // ... pipe an exposition through `promtool check metrics` ...
/// }
/// ```
pub fn available(tool: External) -> bool {
    if present(tool) {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string();
    if std::env::var_os(REQUIRE_ENV).is_some_and(|v| !v.is_empty() && v != "0") {
        panic!("{test} needs {tool}, which is missing ({REQUIRE_ENV} is set); run scripts/test.sh, which installs it");
    }
    // Straight to the process's stderr: the test harness captures what
    // `eprintln!` prints in a passing test, and this line must show.
    // One write, so that lines of tests running in parallel never mix.
    let line = format!("skipped {test}: needs {tool}; scripts/test.sh installs it\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    false
}

/// Returns from the calling test (skipping it, with one line saying why)
/// unless every outside program named is here; see [`available`].
///
/// ```
/// fn needs_both() {
///     beluga_test_support::require!(
///         beluga_test_support::External::Prometheus,
///         beluga_test_support::External::Pushgateway
///     );
/// }
/// # needs_both();
/// ```
#[macro_export]
macro_rules! require {
    ($($tool:expr),+ $(,)?) => {
        $(
            if !$crate::available($tool) {
                return;
            }
        )+
    };
}

/// Runs `promtool check metrics` on `exposition` and returns its report
/// (empty when promtool has nothing to say), or panics with the report and
/// the exposition when promtool finds a problem. Without promtool (plain
/// `cargo test` on a machine that lacks it) the check is skipped with a
/// line saying so, and the report is empty; see [`available`].
///
/// ```
/// let report = beluga_test_support::promtool_check("# HELP up Up.\n# TYPE up gauge\nup 1\n");
/// assert!(report.trim().is_empty(), "{report}");
/// ```
pub fn promtool_check(exposition: &str) -> String {
    if !available(External::Promtool) {
        return String::new();
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(exposition.as_bytes())
        .expect("promtool reads the exposition");
    let out = child.wait_with_output().expect("promtool finishes");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\n{report}\n--- exposition ---\n{exposition}",
        out.status
    );
    report
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after
/// `limit` saying what it waited for: tests wait for readiness this way,
/// never by sleeping and hoping.
///
/// ```
/// use std::time::Duration;
/// let mut n = 0;
/// let three = beluga_test_support::poll("n to reach 3", Duration::from_secs(5), || {
///     n += 1;
///     (n == 3).then_some(n)
/// });
/// assert_eq!(three, 3);
/// ```
pub fn poll<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago. Another process can
/// take it before the caller binds it: servers started on it must check
/// that what answers is them.
///
/// ```
/// assert_ne!(beluga_test_support::free_port(), 0);
/// ```
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}
