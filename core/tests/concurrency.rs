//! Property tests: several threads recording at random; every read is exact.

use std::sync::{Arc, Barrier};

use beluga_metrics::{Buckets, Opts, Registry};
use proptest::prelude::*;

/// Values on a 1/8 grid, so every sum is exact whatever the order, and many
/// of them fall exactly on a bucket boundary.
fn value() -> impl Strategy<Value = f64> {
    (-8i32..200).prop_map(|n| f64::from(n) / 8.0)
}

const BOUNDS: [f64; 6] = [0.0, 0.5, 1.0, 2.5, 10.0, 20.0];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn concurrent_counters_and_histograms_sum_exactly(
        work in prop::collection::vec(
            (prop::collection::vec(0u64..1000, 0..200), prop::collection::vec(value(), 0..200)),
            1..6,
        )
    ) {
        let registry = Registry::new();
        let counters = registry
            .counter_family(Opts::new("c_total", "c").labels(["k"]))
            .unwrap();
        let histogram = registry
            .histogram(Opts::new("h", "h"), Buckets::new(BOUNDS))
            .unwrap();
        let barrier = Arc::new(Barrier::new(work.len()));
        let threads: Vec<_> = work
            .iter()
            .cloned()
            .map(|(adds, values)| {
                let (counters, histogram, barrier) = (counters.clone(), histogram.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let shared = counters.with_labels(&["shared"]).unwrap();
                    barrier.wait();
                    for n in adds {
                        shared.add(n);
                    }
                    for v in values {
                        histogram.record(v);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }

        // Reference computed from the same inputs.
        let total: u64 = work.iter().flat_map(|(a, _)| a).sum();
        let values: Vec<f64> = work.iter().flat_map(|(_, v)| v.iter().copied()).collect();
        let mut per_bucket = vec![0u64; BOUNDS.len() + 1];
        for v in &values {
            let i = BOUNDS.iter().position(|b| v <= b).unwrap_or(BOUNDS.len());
            per_bucket[i] += 1;
        }

        prop_assert_eq!(counters.with_labels(&["shared"]).unwrap().get(), total);
        let h = histogram.get();
        prop_assert_eq!(h.bucket_counts(), &per_bucket[..]);
        prop_assert_eq!(h.count(), values.len() as u64);
        prop_assert_eq!(h.sum(), values.iter().sum::<f64>());
        if !values.is_empty() {
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            prop_assert_eq!((h.min(), h.max()), (Some(min), Some(max)));
            prop_assert_eq!(histogram.quantiles().count(), values.len() as u64);
        }
    }
}

/// Data recorded by threads that have exited is still there, and their slots
/// are reused by new threads without losing either thread's counts.
#[test]
fn exited_threads_lose_nothing() {
    let registry = Registry::new();
    let c = registry.counter(Opts::new("c_total", "c")).unwrap();
    let h = registry
        .histogram(Opts::new("h", "h"), Buckets::new([1.0]))
        .unwrap();
    for round in 0..50 {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (c, h) = (c.clone(), h.clone());
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        c.inc();
                        h.record(0.5);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.get(), (round + 1) * 400);
        assert_eq!(h.get().count(), (round + 1) * 400);
    }
}

/// A reader racing writers never sees a counter go backwards.
#[test]
fn reads_never_go_backwards_under_writes() {
    let registry = Registry::new();
    let c = registry.counter(Opts::new("c_total", "c")).unwrap();
    let h = registry
        .histogram(Opts::new("h", "h"), Buckets::new([1.0]))
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|_| {
            let (c, h, stop) = (c.clone(), h.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    c.inc();
                    h.record(2.0);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let (mut last_c, mut last_h) = (0, 0);
    for _ in 0..20_000 {
        let (now_c, now_h) = (c.get(), h.get().count());
        assert!(now_c >= last_c && now_h >= last_h);
        (last_c, last_h) = (now_c, now_h);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let recorded: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!((c.get(), h.get().count()), (recorded, recorded));
}
