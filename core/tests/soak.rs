//! Churn soak: tenants arrive, record a little and leave, from several
//! threads, while an encoder scrapes; idle expiry keeps the family, and the
//! heap, from growing with the number of tenants ever seen.
//!
//! The short form runs in CI (about 50,000 tenants in 2 s). The long form
//! (`BELUGA_SOAK_TENANTS=1000000 cargo test --release -p beluga-metrics
//! --test soak -- --nocapture`) prints the heap curve recorded in
//! `docs/benchmarks.md`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use beluga_metrics::{Format, Opts, Registry};
use beluga_test_support::alloc::live_bytes;

#[global_allocator]
static ALLOCATOR: beluga_test_support::alloc::Counting = beluga_test_support::alloc::Counting;

const THREADS: u64 = 4;
/// Tenants each thread serves at once.
const WINDOW: u64 = 64;
/// Records each tenant gets before it leaves.
const RECORDS: u64 = 10;

#[test]
fn churning_tenants_keep_memory_flat_and_totals_exact() {
    let tenants: u64 = std::env::var("BELUGA_SOAK_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let verbose = std::env::var_os("BELUGA_SOAK_TENANTS").is_some();
    let registry = Registry::new();
    let family = registry
        .counter_family(
            Opts::new("soak_requests_total", "Requests per tenant.")
                .labels(["tenant"])
                .cardinality_limit(20_000)
                .expire_after_idle(Duration::from_millis(50)),
        )
        .unwrap();
    let per_thread = tenants / THREADS;
    let started_tenants = AtomicU64::new(0);
    let mut samples: Vec<(f64, u64, i64, usize)> = Vec::new();
    let start = Instant::now();

    let windows: Vec<HashMap<u64, u64>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (family, started_tenants) = (&family, &started_tenants);
                s.spawn(move || {
                    // tenant id -> records so far, for the tenants in the window
                    let mut window: HashMap<u64, u64> = HashMap::new();
                    let mut next = t * per_thread;
                    let end = (t + 1) * per_thread;
                    loop {
                        while window.len() < WINDOW as usize && next < end {
                            window.insert(next, 0);
                            next += 1;
                            started_tenants.fetch_add(1, Relaxed);
                        }
                        if window.is_empty() {
                            return window;
                        }
                        for (tenant, count) in window.iter_mut() {
                            let name = tenant.to_string();
                            family.with(&[name.as_str()], |c| c.inc()).unwrap();
                            *count += 1;
                        }
                        window.retain(|_, count| *count < RECORDS);
                        if next >= end && window.is_empty() {
                            return window;
                        }
                        // Paced like agents between LLM calls.
                        std::thread::sleep(Duration::from_millis(1));
                    }
                })
            })
            .collect();
        // This thread scrapes every 20 ms and samples the heap after each.
        while workers.iter().any(|w| !w.is_finished()) {
            registry.encode(Format::PrometheusText);
            samples_push(&family, &started_tenants, start, &mut samples);
            std::thread::sleep(Duration::from_millis(20));
        }
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert!(
        windows.iter().all(HashMap::is_empty),
        "every tenant finished"
    );
    assert_eq!(started_tenants.load(Relaxed), per_thread * THREADS);

    if verbose {
        println!("seconds,tenants_started,heap_bytes,live_series");
        for (t, started, heap, live) in &samples {
            println!("{t:.2},{started},{heap},{live}");
        }
    }
    // Memory after warm-up stays flat: the peak of the last half is within
    // 25 % (plus 1 MiB of slack for the allocator's own rounding) of the
    // peak between a quarter and a half of the run.
    let n = samples.len();
    assert!(n >= 8, "too few samples: {n}");
    let peak = |range: &[(f64, u64, i64, usize)]| range.iter().map(|s| s.2).max().unwrap();
    let warm = peak(&samples[n / 4..n / 2]);
    let late = peak(&samples[n / 2..]);
    assert!(
        late <= warm + warm / 4 + (1 << 20),
        "heap grew after warm-up: {warm} -> {late} bytes ({} tenants)",
        per_thread * THREADS
    );
    // Live series stay bounded by the tenants active within the idle time.
    let most_live = samples.iter().map(|s| s.3).max().unwrap();
    assert!(most_live < 10_000, "{most_live} series live at once");
    assert_eq!(
        family.refused_label_sets(),
        0,
        "never hit the cardinality limit"
    );

    // Every series still exposed has exactly its tenant's records.
    let text = registry.encode(Format::PrometheusText);
    for line in text
        .lines()
        .filter(|l| l.starts_with("soak_requests_total{"))
    {
        assert!(line.ends_with(&format!(" {RECORDS}")), "{line}");
    }
}

fn samples_push(
    family: &beluga_metrics::Family<beluga_metrics::Counter>,
    started: &AtomicU64,
    start: Instant,
    into: &mut Vec<(f64, u64, i64, usize)>,
) {
    into.push((
        start.elapsed().as_secs_f64(),
        started.load(Relaxed),
        live_bytes(),
        family.len(),
    ));
}
