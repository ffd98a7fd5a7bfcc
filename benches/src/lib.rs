//! Shared harness for the criterion benchmarks in `benches/`.
//!
//! Run them with `cargo bench -p beluga-benches`; set `BELUGA_BENCH_QUICK=1`
//! for a smoke run (a fraction of a second per benchmark) as CI does.

#![deny(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::Criterion;

/// Whether `BELUGA_BENCH_QUICK` asks for a smoke run.
pub fn quick() -> bool {
    std::env::var_os("BELUGA_BENCH_QUICK").is_some_and(|v| v != "0")
}

/// Where results go: `target/criterion` (criterion's default, what
/// `scripts/bench-report.py` reads), or `target/criterion-quick` in quick
/// mode, so that a smoke run never becomes the baseline a real run is
/// compared against.
pub fn output_directory() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join(if quick() {
        "criterion-quick"
    } else {
        "criterion"
    })
}

/// A criterion configuration: the default, or a short one in quick mode.
pub fn criterion() -> Criterion {
    let c = Criterion::default()
        .output_directory(&output_directory())
        .configure_from_args();
    if quick() {
        c.warm_up_time(Duration::from_millis(50))
            .measurement_time(Duration::from_millis(200))
            .sample_size(10)
    } else {
        c.warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
    }
}

/// Threads to contend with: every core the machine offers.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `op` `iters` times on each of `threads` threads started together,
/// and returns the longest thread's time: criterion then reports the time
/// per operation *per thread* while all threads contend.
pub fn contended<F>(threads: usize, iters: u64, op: F) -> Duration
where
    F: Fn(u64) + Sync,
{
    contended_with(threads, iters, || (), op)
}

/// Like [`contended`], with `setup` run once on each thread before the
/// timed loop and its result held until the loop ends (a thread-local
/// recorder guard, for instance).
pub fn contended_with<S, G, F>(threads: usize, iters: u64, setup: S, op: F) -> Duration
where
    S: Fn() -> G + Sync,
    F: Fn(u64) + Sync,
{
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let _held = setup();
                    barrier.wait();
                    let start = Instant::now();
                    for i in 0..iters {
                        op(i);
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("benchmark thread panicked"))
            .max()
            .unwrap_or_default()
    })
}

/// A registry holding `series` two-label counter series (`endpoint` x
/// `status`, five statuses per endpoint), as the encoding and scrape
/// benchmarks use.
pub fn counter_series(
    registry: &beluga_metrics::Registry,
    series: usize,
) -> beluga_metrics::Family<beluga_metrics::Counter> {
    let family = registry
        .counter_family(
            beluga_metrics::Opts::new("bench_requests_total", "Requests.")
                .labels(["endpoint", "status"])
                .cardinality_limit(series.max(1)),
        )
        .expect("a fresh registry");
    for i in 0..series {
        let status = ["200", "400", "404", "429", "500"][i % 5];
        family
            .with_labels(&[format!("/api/v1/endpoint/{}", i / 5).as_str(), status])
            .expect("two labels")
            .add(i as u64 / 5 + 1);
    }
    family
}
