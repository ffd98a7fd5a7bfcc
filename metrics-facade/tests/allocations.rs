//! A macro call whose key is built without allocating (literal name and
//! labels) allocates nothing in the recorder once its series exists; one
//! with owned label values allocates only what the macro itself does.

use beluga_metrics::Registry;
use beluga_metrics_facade::BelugaRecorder;

#[global_allocator]
static GLOBAL: beluga_test_support::alloc::Counting = beluga_test_support::alloc::Counting;

/// Allocation calls the calling thread makes while `f` runs.
fn allocations_during(f: impl FnOnce()) -> u64 {
    beluga_test_support::alloc::on_this_thread(f).2
}

#[test]
fn macro_calls_allocate_nothing_the_key_does_not() {
    let registry = Registry::new();
    let recorder = BelugaRecorder::builder()
        .registry(&registry)
        .build()
        .expect("recorder");
    metrics::with_local_recorder(&recorder, || {
        let calls = |n: u64| {
            for i in 0..n {
                metrics::counter!("plain").increment(1);
                metrics::counter!("labelled", "model" => "gpt", "tenant" => "free").increment(1);
                metrics::gauge!("level", "pool" => "a").set(i as f64);
                metrics::histogram!("latency", "model" => "gpt").record(0.25);
            }
        };
        // First use: families, series, this thread's cache entries, and the
        // histogram's shared wide counts (allocated at its first carry,
        // after 255 records of one bucket on a thread).
        calls(1_000);
        assert_eq!(allocations_during(|| calls(10_000)), 0);

        let owned = |n: u64| {
            for _ in 0..n {
                let tenant = String::from("pro"); // the caller's own allocation
                metrics::counter!("labelled", "model" => "gpt", "tenant" => tenant).increment(1);
            }
        };
        owned(1);
        // Per call: the caller's `String` and the macro's label `Vec`.
        assert_eq!(allocations_during(|| owned(1_000)), 2 * 1_000);
    });
}
