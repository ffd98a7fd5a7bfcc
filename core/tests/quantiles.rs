//! Quantiles from the merged per-thread HDR data agree with exact ones.

use beluga_metrics::{Buckets, Opts, Registry, Unit};
use proptest::prelude::*;

fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    // The smallest value with at least q of the observations at or below it.
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn quantiles_are_within_one_percent(
        per_thread in prop::collection::vec(prop::collection::vec(0.001f64..80.0, 1..300), 1..4)
    ) {
        let registry = Registry::new();
        let h = registry
            .histogram(
                Opts::new("llm_seconds", "LLM latency.").unit(Unit::SECONDS),
                Buckets::gen_ai_operation_duration(),
            )
            .unwrap();
        let threads: Vec<_> = per_thread
            .iter()
            .cloned()
            .map(|values| {
                let h = h.clone();
                std::thread::spawn(move || values.into_iter().for_each(|v| h.record(v)))
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut all: Vec<f64> = per_thread.concat();
        all.sort_by(f64::total_cmp);
        let q = h.quantiles();
        prop_assert_eq!(q.count(), all.len() as u64);
        prop_assert_eq!(q.max(), *all.last().unwrap());
        for p in [0.5, 0.95, 0.99] {
            let exact = exact_quantile(&all, p);
            let approx = q.quantile(p);
            // HDR keeps 2 significant figures (1/128 relative), plus the
            // 1.2 µs resolution for tiny values.
            prop_assert!(
                (approx - exact).abs() <= exact / 64.0 + 2e-6,
                "p{} exact {} approx {}", p * 100.0, exact, approx
            );
        }
    }
}

#[test]
fn empty_histogram_quantiles_are_zero() {
    let h = Registry::new()
        .histogram(Opts::new("h", "h"), Buckets::default())
        .unwrap();
    let q = h.quantiles();
    assert_eq!((q.count(), q.p50(), q.p99(), q.max()), (0, 0.0, 0.0, 0.0));
}

#[test]
fn values_beyond_the_tracked_range_keep_an_exact_max() {
    let h = Registry::new()
        .histogram(Opts::new("h", "h"), Buckets::new([1.0]))
        .unwrap();
    h.record(0.5);
    h.record(1e9);
    let q = h.quantiles();
    assert_eq!(q.max(), 1e9);
    assert_eq!(h.get().bucket_counts(), &[1, 1]);
}
